//! Open arbitrary bytes as an embedded envelope under the fixed fuzz KEK.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::open(data);
});
