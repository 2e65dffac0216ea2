//! Documents decrypted, and encrypted then decrypted, by a fixed document cipher.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::document::cipher_end_to_end(data);
});
