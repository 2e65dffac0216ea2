//! Key Vault `get` and `wrapKey` response bodies, as the SDK reads them and the crate checks them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::keys::key_vault_response(data);
});
