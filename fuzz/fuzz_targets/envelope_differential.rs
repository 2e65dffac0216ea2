//! Every decryption path of an edited envelope must agree
//! (`cmk_envelope::fuzzing::differential`).
#![no_main]

use cmk_envelope::fuzzing::differential::{envelope, EnvelopeCase};

libfuzzer_sys::fuzz_target!(|case: EnvelopeCase| {
    envelope(&case);
});
