//! Blob metadata holding the envelope header, and the Content-Range header.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::keys::blob_metadata(data);
});
