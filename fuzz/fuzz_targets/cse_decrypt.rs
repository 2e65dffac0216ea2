//! Azure CSE: any bytes as `encryptiondata` and a body, decrypted by every
//! path, which must agree (`cmk_envelope::fuzzing::azure_cse::decrypt`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::azure_cse::decrypt(data);
});
