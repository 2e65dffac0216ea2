//! Azure SDK errors to crate errors, with URLs and SAS signatures kept out.

use azure_core::error::ErrorKind;

use crate::error::{Error, StorageError, StorageErrorKind};
use crate::http::StatusKind;
use crate::scope::Etag;

/// Whether `e` is a lost compare-and-swap: `412 Precondition Failed`
/// (`If-Match` failed) or `409 BlobAlreadyExists` (`If-None-Match: *`
/// failed).
pub(super) fn is_conflict(e: &azure_core::Error) -> bool {
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let s = u16::from(*status);
            s == 412 || (s == 409 && error_code.as_deref() == Some("BlobAlreadyExists"))
        }
        _ => false,
    }
}

/// Whether `e` says the blob does not exist. A missing container is not
/// that: it is a configuration error, reported as a storage error rather
/// than as a missing scope record.
pub(super) fn is_not_found(e: &azure_core::Error) -> bool {
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => u16::from(*status) == 404 && error_code.as_deref() != Some("ContainerNotFound"),
        _ => false,
    }
}

/// A crate error for the failed operation `op` (a fixed name such as
/// `"download"`). An HTTP failure's kind comes from the crate's one status
/// table (the Key Vault backend reads it too), and only the status and the
/// service's error code are kept; other failures keep their text with any
/// SAS signature redacted.
pub(super) fn storage(op: &'static str, e: azure_core::Error) -> Error {
    let (kind, status, message) = match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let s = u16::from(*status);
            let code = error_code.as_deref().unwrap_or("no error code");
            (
                StatusKind::of(s).into(),
                Some(s),
                format!("{op}: {}", redact(code)),
            )
        }
        ErrorKind::Io | ErrorKind::Connection => (
            StorageErrorKind::Transient,
            None,
            format!("{op}: {}", redact(&e.to_string())),
        ),
        ErrorKind::Credential => (
            StorageErrorKind::Unauthenticated,
            None,
            format!(
                "{op}: the token credential failed: {}",
                redact(&e.to_string())
            ),
        ),
        _ => (
            StorageErrorKind::Other,
            None,
            format!("{op}: {}", redact(&e.to_string())),
        ),
    };
    Error::Storage(StorageError::new(kind, status, message))
}

/// A storage error for a stored object this crate cannot use.
pub(super) fn not_envelope(message: &'static str) -> Error {
    Error::Storage(StorageError::new(
        StorageErrorKind::NotAnEnvelope,
        None,
        message,
    ))
}

/// The ETag a successful response must carry, as this crate's [`Etag`].
pub(super) fn require_etag<E: ToString>(etag: Option<E>) -> crate::Result<Etag> {
    etag.map(|e| Etag(e.to_string()))
        .ok_or_else(|| not_envelope("the service returned no ETag"))
}

/// [`Error::BlobConflict`] for blob `name` when `e` is a lost
/// compare-and-swap ([`is_conflict`]), else the storage error of `op`.
pub(super) fn conflict_or_storage(name: &str, op: &'static str, e: azure_core::Error) -> Error {
    if is_conflict(&e) {
        Error::BlobConflict {
            blob: name.to_owned(),
        }
    } else {
        storage(op, e)
    }
}

/// Replaces the value of every `sig=` query parameter (the SAS signature)
/// in `text` by `REDACTED`, so an SDK message quoting a SAS URL does not
/// leak the signature (the rest of a SAS — permissions, expiry — is not
/// secret).
pub(crate) fn redact(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("sig=") {
        let start = i + found + 4;
        out.push_str(&text[i..start]);
        out.push_str("REDACTED");
        let end = text[start..]
            .find(|c: char| c == '&' || c == '"' || c == ')' || c.is_whitespace())
            .map_or(text.len(), |n| start + n);
        i = end;
    }
    out.push_str(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::StatusCode;

    fn http(status: u16, code: &str) -> azure_core::Error {
        let kind = ErrorKind::HttpResponse {
            status: StatusCode::from(status),
            error_code: Some(code.to_owned()),
            raw_response: None,
        };
        azure_core::Error::with_message(kind, "the service said no")
    }

    fn kind_of(e: Error) -> (StorageErrorKind, bool) {
        match e {
            Error::Storage(s) => (s.kind(), s.is_retryable()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statuses_follow_the_crate_table() {
        use StorageErrorKind::*;
        for (status, kind, retryable) in [
            (401, Unauthenticated, false),
            (403, PermissionDenied, false),
            (404, NotFound, false),
            (408, Transient, true),
            (429, Throttled, true),
            (500, Transient, true),
            (501, Other, false),
            (503, Transient, true),
            (505, Other, false),
            (507, Transient, true),
        ] {
            let got = kind_of(storage("download", http(status, "Code")));
            assert_eq!(got, (kind, retryable), "HTTP {status}");
        }
        let token = azure_core::Error::with_message(ErrorKind::Credential, "no token");
        assert_eq!(
            kind_of(storage("download", token)),
            (Unauthenticated, false)
        );
    }

    #[test]
    fn lost_compare_and_swap_is_a_conflict() {
        for e in [http(412, "ConditionNotMet"), http(409, "BlobAlreadyExists")] {
            assert!(matches!(
                conflict_or_storage("b", "download", e),
                Error::BlobConflict { blob } if blob == "b"
            ));
        }
        assert!(matches!(
            conflict_or_storage("b", "download", http(409, "LeaseIdMissing")),
            Error::Storage(_)
        ));
    }

    #[test]
    fn redacts_signatures() {
        let s = "error sending request for url (http://h/c/b?sv=2020&sig=abc%2Bdef&se=1)";
        let r = redact(s);
        assert!(!r.contains("abc"), "{r}");
        assert!(r.contains("sig=REDACTED&se=1)"), "{r}");
        assert_eq!(redact("SIG=x y"), "SIG=REDACTED y");
        assert_eq!(redact("no secret"), "no secret");
    }
}
