//! The one table from an HTTP status to what it means here, used by every
//! HTTP backend (Azure Key Vault, Azure Blob Storage, Azure Cosmos DB), for
//! the error kind a caller sees and for whether the call is retried:
//!
//! | status | kind | retried |
//! |---|---|---|
//! | 401 | not authenticated | no |
//! | 403 | permission denied | no |
//! | 404 | not found | no |
//! | 429 | throttled | yes |
//! | 408, 500, 502, 503, 504, 506–599 | transient | yes |
//! | 501 (not implemented), 505 (HTTP version not supported) | other | no: the same request fails the same way |
//! | any other | other | no |
//!
//! A backend reads service-specific meanings before the table (a 400 from
//! Key Vault's `unwrapKey` is a wrapped key that does not open; a 412 or a
//! 409 `BlobAlreadyExists` from Blob Storage is a lost compare-and-swap).

use crate::error::{KekErrorKind, StorageErrorKind};

/// What an HTTP status means to the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusKind {
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Throttled,
    Transient,
    Other,
}

impl StatusKind {
    /// The row of `status` in the table.
    pub(crate) fn of(status: u16) -> StatusKind {
        match status {
            401 => StatusKind::Unauthenticated,
            403 => StatusKind::PermissionDenied,
            404 => StatusKind::NotFound,
            429 => StatusKind::Throttled,
            408 | 500 | 502..=504 | 506..=599 => StatusKind::Transient,
            _ => StatusKind::Other,
        }
    }

    /// Whether the same request may succeed later.
    pub(crate) fn is_retryable(self) -> bool {
        matches!(self, StatusKind::Throttled | StatusKind::Transient)
    }
}

impl From<StatusKind> for KekErrorKind {
    fn from(k: StatusKind) -> KekErrorKind {
        match k {
            StatusKind::Unauthenticated => KekErrorKind::Unauthenticated,
            StatusKind::PermissionDenied => KekErrorKind::PermissionDenied,
            StatusKind::NotFound => KekErrorKind::NotFound,
            StatusKind::Throttled => KekErrorKind::Throttled,
            StatusKind::Transient => KekErrorKind::Transient,
            StatusKind::Other => KekErrorKind::Other,
        }
    }
}

impl From<StatusKind> for StorageErrorKind {
    fn from(k: StatusKind) -> StorageErrorKind {
        match k {
            StatusKind::Unauthenticated => StorageErrorKind::Unauthenticated,
            StatusKind::PermissionDenied => StorageErrorKind::PermissionDenied,
            StatusKind::NotFound => StorageErrorKind::NotFound,
            StatusKind::Throttled => StorageErrorKind::Throttled,
            StatusKind::Transient => StorageErrorKind::Transient,
            StatusKind::Other => StorageErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use StatusKind::*;
        for (status, kind) in [
            (400, Other),
            (401, Unauthenticated),
            (403, PermissionDenied),
            (404, NotFound),
            (408, Transient),
            (409, Other),
            (412, Other),
            (429, Throttled),
            (500, Transient),
            (501, Other),
            (502, Transient),
            (503, Transient),
            (504, Transient),
            (505, Other),
            (506, Transient),
            (599, Transient),
            (600, Other),
        ] {
            assert_eq!(StatusKind::of(status), kind, "HTTP {status}");
        }
        let retried: Vec<u16> = (100..700)
            .filter(|s| StatusKind::of(*s).is_retryable())
            .collect();
        assert!(!retried.contains(&501) && !retried.contains(&505));
        assert_eq!(
            retried.len(),
            1 + 1 + 1 + 3 + 94,
            "408, 429, 500, 502-504, 506-599"
        );
    }

    #[test]
    fn key_vault_and_blob_errors_agree_on_retries() {
        use crate::error::{KekError, StorageError};
        for status in 100..700 {
            let k = StatusKind::of(status);
            let kek = KekError::new("test", k.into(), "m");
            let storage = StorageError::new(k.into(), Some(status), "m");
            assert_eq!(kek.is_retryable(), k.is_retryable(), "HTTP {status}");
            assert_eq!(storage.is_retryable(), k.is_retryable(), "HTTP {status}");
        }
    }
}
