//! Header parse / re-encode round trip (from bytes and from a stream).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::header(data);
});
