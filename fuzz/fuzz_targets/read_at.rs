//! Random-access reads over arbitrary bytes taken as an envelope (2 control bytes first).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::read_at(data);
});
