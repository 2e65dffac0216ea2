//! Cosmos DB items decrypted, and encrypted then decrypted, under a fixed policy.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::cosmos_ae::item(data);
});
