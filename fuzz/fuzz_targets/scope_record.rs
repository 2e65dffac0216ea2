//! Scope key records read from a shared store: parse, encode, parse again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cmk_envelope::fuzzing::keys::scope_record(data);
});
