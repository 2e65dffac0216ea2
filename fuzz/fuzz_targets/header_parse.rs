//! Header parse / re-encode round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::__private::fuzz_header(data);
});
