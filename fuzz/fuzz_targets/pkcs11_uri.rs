//! PKCS#11 URIs: parse, canonical form, parse again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::keys::pkcs11_uri(data);
});
