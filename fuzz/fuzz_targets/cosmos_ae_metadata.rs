//! Cosmos DB Always Encrypted keys, policies and containers: parse, encode, parse again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::cosmos_ae::metadata(data);
});
