//! Cosmos DB SDK errors to crate errors: the operation, the HTTP status and
//! the service's error code, nothing else.

use azure_data_cosmos::CosmosError;

use crate::error::{Error, StorageError, StorageErrorKind};
use crate::http::StatusKind;

/// The name errors of this module start with.
const SERVICE: &str = "Cosmos DB";

/// Whether `e` is a lost compare-and-swap: `412 Precondition Failed`
/// (`If-Match` failed) or `409 Conflict` (a create found the id taken).
pub(super) fn is_conflict(e: &CosmosError) -> bool {
    let s = e.status();
    e.is_from_wire() && (s.is_precondition_failed() || s.is_conflict())
}

/// Whether `e` says the item does not exist: a `404` without a sub-status.
/// A `404` with one (the container or database is missing, a session
/// could not be read) is not that: it is reported as a storage error
/// rather than as a missing record.
pub(super) fn is_not_found(e: &CosmosError) -> bool {
    let s = e.status();
    e.is_from_wire() && s.is_not_found() && s.sub_status().is_none_or(|sub| sub.value() == 0)
}

/// A crate error for the failed operation `op` (a fixed name such as
/// `"read scope record"`).
///
/// A service response keeps its HTTP status, its sub-status and the
/// service's error code (the body's `code`, kept only when it is a short
/// identifier). A failure before any response (connection, TLS, token,
/// timeout) keeps the SDK's status for it, a number and a fixed name. The
/// SDK's messages are not kept: they may quote request details.
pub(super) fn storage(op: &'static str, e: &CosmosError) -> Error {
    let status = e.status();
    let http = u16::from(status.status_code());
    if !e.is_from_wire() {
        let message = format!("{op}: no response from the service (SDK status {status})");
        let kind = StatusKind::of(http).into();
        return Error::Storage(StorageError::new(kind, None, message).in_service(SERVICE));
    }
    let body = e.response().and_then(|r| r.body().clone().single().ok());
    let sub = status.sub_status().map(|s| u32::from(s.value()));
    answered(op, http, sub, body.as_deref().unwrap_or_default())
}

/// A crate error for a failed REST request `op` that the service answered
/// with `status` (and `x-ms-substatus` `sub`) and `body`: the status, the
/// sub-status and the body's error code, nothing else.
pub(super) fn answered(op: &'static str, status: u16, sub: Option<u32>, body: &[u8]) -> Error {
    let code = service_code(body).unwrap_or("no error code");
    let message = match sub.filter(|&s| s != 0) {
        Some(s) => format!("{op}: {code} (status {status}, sub-status {s})"),
        None => format!("{op}: {code}"),
    };
    Error::Storage(
        StorageError::new(StatusKind::of(status).into(), Some(status), message).in_service(SERVICE),
    )
}

/// A storage error for an item this crate cannot use.
pub(super) fn not_ours(message: &'static str) -> Error {
    Error::Storage(
        StorageError::new(StorageErrorKind::NotAnEnvelope, None, message).in_service(SERVICE),
    )
}

/// The `code` of a Cosmos DB error body (`{"code": "PreconditionFailed",
/// "message": ...}`), when it is 1 to 64 ASCII letters and digits
/// ([`crate::untrusted::service_code`]): the body comes from the network,
/// so nothing else of it reaches an error.
fn service_code(body: &[u8]) -> Option<&str> {
    code_field(body).and_then(crate::untrusted::service_code)
}

/// The string value of the top-level `code` member of a JSON object, if it
/// is one without escapes.
fn code_field(body: &[u8]) -> Option<&str> {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        code: Option<&'a str>,
    }
    serde_json::from_slice::<Body<'_>>(body).ok()?.code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_are_short_identifiers_only() {
        assert_eq!(
            service_code(br#"{"code":"PreconditionFailed","message":"x"}"#),
            Some("PreconditionFailed")
        );
        assert_eq!(service_code(br#"{"message":"no code"}"#), None);
        assert_eq!(service_code(br#"{"code":"a b"}"#), None);
        assert_eq!(service_code(br#"{"code":"\u001b[31mred"}"#), None);
        assert_eq!(service_code(b"not json"), None);
        let long = format!(r#"{{"code":"{}"}}"#, "A".repeat(65));
        assert_eq!(service_code(long.as_bytes()), None);
    }
}
