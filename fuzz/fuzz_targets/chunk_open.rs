//! Decrypt arbitrary bytes as a raw C2SP chunked-encryption ciphertext.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::chunk_open(data);
});
