//! JSON Web Key files: parse, write back, parse again; accepted keys wrap and unwrap.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::keys::jwk(data);
});
