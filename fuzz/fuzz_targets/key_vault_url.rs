//! Key Vault and Managed HSM key URLs: parse, print, parse again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::keys::key_vault_url(data);
});
