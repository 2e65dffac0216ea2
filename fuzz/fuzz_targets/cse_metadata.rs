//! Azure CSE `encryptiondata`: parse, encode, parse again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::azure_cse::metadata(data);
});
