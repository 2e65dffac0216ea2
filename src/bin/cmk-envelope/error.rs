//! The tool's error: one line for stderr, derived from the crate's
//! [`Error`] and prefixed with what failed from the user's point of view.

use std::fmt;
use std::io;

use cmk_envelope::Error;

/// A failure, already rendered as the single line printed after
/// `cmk-envelope: error: `. It never contains key material: the crate's
/// errors carry none, and the tool adds only paths and option names.
#[derive(Debug)]
pub(crate) struct CliError(String);

impl CliError {
    /// A message written by the tool itself.
    pub(crate) fn msg(m: impl Into<String>) -> CliError {
        CliError(m.into())
    }

    /// A crate error; a plain I/O error is prefixed with `context` (for
    /// example "cannot read input.bin"), the others are classified.
    pub(crate) fn with_context(context: &str, e: Error) -> CliError {
        match e {
            Error::Io(io) => CliError::from_plain_io(context, io),
            other => CliError::from(other),
        }
    }

    /// An `io::Error`, which may carry a crate error inside it (from a
    /// `Read`/`Write` adapter): that one is recovered and classified.
    pub(crate) fn io(context: &str, e: io::Error) -> CliError {
        CliError::with_context(context, Error::from(e))
    }

    fn from_plain_io(context: &str, e: io::Error) -> CliError {
        CliError(format!("{context}: I/O error: {e}"))
    }
}

/// What failed, for the user, by crate error variant.
fn classify(e: &Error) -> &'static str {
    match e {
        Error::UnwrapFailed { .. } => "wrong key",
        Error::CommitmentMismatch => "wrong context or profile",
        Error::MalformedHeader(_) | Error::Truncated | Error::ChunkAuthentication { .. } => {
            "corrupted or truncated input"
        }
        Error::CseRegion { .. } => "corrupted, tampered or truncated input",
        Error::CseMetadata(_) | Error::CosmosAeMetadata(_) => "bad encryption metadata",
        Error::FieldAuthentication { .. } => "corrupted or tampered input",
        Error::DocumentField { .. } => "bad item",
        Error::TooLarge(_) => "input too large",
        Error::UnknownKek { .. } => "unknown kid",
        Error::KeyFile { .. } => "bad key file",
        Error::InvalidKey(_) => "invalid key", // Display starts with it
        Error::Kek(_) => "key-encryption key failed",
        Error::ApiMisuse(_) | Error::Internal(_) => "internal error",
        Error::Io(_) => "I/O error",
        _ => "failed",
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> CliError {
        match e {
            // Their Display already starts with the category.
            Error::Io(_) | Error::InvalidKey(_) => CliError(e.to_string()),
            _ => CliError(format!("{}: {e}", classify(&e))),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exactly one line, whatever an inner message contains.
        let mut first = true;
        for part in self.0.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(part)?;
            first = false;
        }
        Ok(())
    }
}
