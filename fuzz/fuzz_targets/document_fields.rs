//! A document's `_cmk` header and `cmke1:` field values: parse and re-encode.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::document::fields(data);
});
