//! Azure CSE v2: whole, streamed and ranged decryption of an edited blob
//! must agree (`cmk_envelope::fuzzing::azure_cse::differential`).
#![no_main]

use cmk_envelope::fuzzing::azure_cse::{differential, CseCase};

libfuzzer_sys::fuzz_target!(|case: CseCase| {
    differential(&case);
});
