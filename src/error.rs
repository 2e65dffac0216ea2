//! The crate's one error type.
//!
//! Variants are grouped by **who must act** (the rustls convention):
//!
//! | group | variants | who acts |
//! |---|---|---|
//! | bad or tampered input | [`Error::MalformedHeader`], [`Error::Truncated`], [`Error::CommitmentMismatch`], [`Error::ChunkAuthentication`], [`Error::TooLarge`], [`Error::FieldAuthentication`], [`Error::DocumentField`], [`Error::CseMetadata`], [`Error::CseRegion`], [`Error::CosmosAeMetadata`] | nobody can "fix" these: the data is not what it claims to be |
//! | keys | [`Error::UnknownKek`], [`Error::UnwrapFailed`], [`Error::KeyFile`], [`Error::InvalidKey`] | the operator (wrong key, wrong allow-list, bad key file) |
//! | key hierarchy | [`Error::ScopeConflict`] (retry), [`Error::ScopeNotFound`], [`Error::KeyPolicy`] | the caller or operator |
//! | key-encryption key backends | [`Error::Kek`] | the operator, or a retry when [`Error::is_retryable`] says so |
//! | object storage | [`Error::BlobConflict`] (re-read and retry), [`Error::Storage`] | the caller (conflict), the operator, or a retry when [`Error::is_retryable`] says so |
//! | caller bugs | [`Error::ApiMisuse`] | the programmer; never caused by untrusted data |
//! | internal failures | [`Error::Internal`] | this crate's maintainers, or the author of a key-encryption key that broke its contract |
//! | I/O | [`Error::Io`] | the environment |
//!
//! Authentication failures are deliberately coarse: they say *which check*
//! failed (commitment, or the tag of chunk *n*) because a user needs that to
//! tell "wrong context" from "corrupted file", but never carry key bytes,
//! plaintext, expected tags or anything else derived from secrets.
//! No variant ever holds key material or credentials.
//!
//! Strings that come from untrusted input (the key ids of a header, Azure
//! client-side encryption metadata, document paths) are escaped and
//! truncated before an error holds them: control characters, terminal
//! escape sequences and bidirectional-text overrides are printed as
//! `\u{..}` escapes, and no such string is longer than 256 characters
//! (`…` marks a cut).
//!
//! The `Read`/`Write` adapters must return `io::Error`; they carry this
//! crate's error inside it, and `From<io::Error> for Error` (what `?` uses)
//! gives it back. So `?` on a read of a tampered body yields
//! [`Error::ChunkAuthentication`], never an [`Error::Io`] hiding it.

use std::fmt;
use std::path::PathBuf;

/// Shorthand for `Result<T, cmk_envelope::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error this crate returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- bad or tampered input -----
    /// The envelope header is malformed (FORMAT.md, "A reader rejects the
    /// header when…"). Detected before any key-encryption key is called.
    #[error("malformed envelope header: {0}")]
    MalformedHeader(&'static str),

    /// The body ends where no valid envelope can end: inside the salt or
    /// commitment, inside a chunk tag, or right after a full chunk (the final
    /// chunk, which is always shorter than 16 KiB, is missing).
    #[error("envelope is truncated or has an invalid length")]
    Truncated,

    /// The key commitment did not match. The data key unwrapped, but it does
    /// not belong to this object: the `app_context` or profile differs from
    /// the one used to encrypt, or header and body come from different
    /// envelopes. Nothing was decrypted.
    #[error("key commitment check failed: wrong context or profile, or the header does not belong to this body")]
    CommitmentMismatch,

    /// The authentication tag of a chunk did not verify: the chunk was
    /// modified, reordered, duplicated, spliced from another envelope, or
    /// trailing data follows the final chunk. No plaintext from this chunk
    /// was released.
    #[error("chunk {chunk} failed authentication: the envelope is corrupted or was tampered with")]
    ChunkAuthentication {
        /// Index of the chunk that failed (not secret: it is a position).
        chunk: u64,
    },

    /// The message exceeds a limit of the format (2^38 chunks) or a limit
    /// the caller set.
    #[error("envelope exceeds a size limit: {0}")]
    TooLarge(&'static str),

    /// An encrypted document field did not verify: its value was modified,
    /// or it was moved from another path or another document. No plaintext
    /// was released.
    #[error("document field `{path}` failed authentication: it was modified, or moved from another path or document")]
    FieldAuthentication {
        /// The field's JSON Pointer (a position, not a value).
        path: String,
    },

    /// A JSON document or a document policy is unusable: a path to encrypt
    /// is missing, a field the policy encrypts holds no ciphertext, a path
    /// is refused by the policy. The message names the JSON Pointer and the
    /// problem, never a value.
    #[error("document field `{path}`: {problem}")]
    DocumentField {
        /// The field's JSON Pointer.
        path: String,
        /// What is wrong.
        problem: &'static str,
    },

    /// Azure Storage client-side encryption metadata (the `encryptiondata`
    /// blob metadata value) is malformed, unsupported, or does not match
    /// the key: bad JSON, a missing or mistyped field, a protocol other
    /// than 2.0/2.1, an algorithm other than `AES_GCM_256`, a wrong
    /// `KeyId`, or a protocol prefix in the wrapped key that differs from
    /// the one the metadata claims ("encryption metadata has been
    /// tampered"). The message names fields, never key bytes.
    #[error("Azure client-side encryption metadata: {0}")]
    CseMetadata(String),

    /// A Cosmos DB Always Encrypted resource is malformed or unsupported:
    /// a client encryption key (bad JSON, a missing or mistyped field, an
    /// algorithm other than `AEAD_AES_256_CBC_HMAC_SHA256`, a wrapped key
    /// that is not base64) or a client encryption policy (a version other
    /// than 1 or 2, a nested or duplicate path, `/id` or a partition key
    /// path that version 1 cannot encrypt or that is not deterministic), or
    /// a key the policy names is missing. The message names fields, never
    /// values or key bytes.
    #[error("Cosmos DB Always Encrypted metadata: {0}")]
    CosmosAeMetadata(String),

    /// A region of an Azure Storage client-side encrypted blob was refused:
    /// its tag did not verify (modified data or wrong key), its nonce does
    /// not follow the encoding the other regions follow at its position
    /// (reordered, dropped, duplicated or spliced regions), or the blob's
    /// length is not one a writer produces (truncated). No plaintext of the
    /// region was released.
    #[error("Azure client-side encrypted blob, region {region}: {problem}")]
    CseRegion {
        /// Index of the region (a position, not a secret).
        region: u64,
        /// What is wrong.
        problem: &'static str,
    },

    // ----- keys -----
    /// None of the key ids in the header is known to the caller's
    /// [`KeyResolver`](crate::KeyResolver). No key was contacted.
    #[error("no known key-encryption key for this envelope (header names: {})", .kek_ids.join(", "))]
    UnknownKek {
        /// The key ids the header names (identifiers, not secrets).
        kek_ids: Vec<String>,
    },

    /// A known key-encryption key refused the wrapped data key: it is the
    /// wrong key, or the wrapped key in the header was modified.
    #[error("key-encryption key `{kek_id}` could not unwrap the data key: wrong key, or the wrapped key was modified")]
    UnwrapFailed {
        /// The key id of the KEK that refused.
        kek_id: String,
    },

    /// A key file could not be used. The message names the file and the
    /// problem, never the key material.
    #[error("key file {}: {problem}", .path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// Key material passed in memory is unusable (wrong size, wrong type).
    #[error("invalid key: {0}")]
    InvalidKey(String),

    // ----- backends -----
    /// A key-encryption key backend (Key Vault, HSM, local) failed.
    #[error(transparent)]
    Kek(#[from] KekError),

    // ----- key hierarchy -----
    /// A compare-and-swap write of a scope key record lost a race: another
    /// process changed the record first. Nothing was written; re-read and
    /// retry.
    #[error("scope `{scope_id}` was changed concurrently; re-read it and retry")]
    ScopeConflict {
        /// The scope.
        scope_id: String,
    },

    /// The scope has no key record: it was never created, or it was
    /// destroyed (crypto-shredded).
    #[error("scope `{scope_id}` has no key record (never created, or destroyed)")]
    ScopeNotFound {
        /// The scope.
        scope_id: String,
    },

    /// An operation breaks a rule of customer-managed keys (rotation to
    /// another vault, a switch between service- and customer-managed keys,
    /// an unconfirmed destruction). The message says which rule.
    #[error("refused by key policy: {0}")]
    KeyPolicy(String),

    // ----- object storage -----
    /// A conditional write to blob storage lost a race: the blob's ETag no
    /// longer matches the one read (another writer changed it), or the blob
    /// already exists where none was expected. Nothing was written; re-read
    /// the blob and retry.
    #[error("blob `{blob}` was changed concurrently (its ETag no longer matches, or it already exists); nothing was written: re-read it and retry")]
    BlobConflict {
        /// The blob's name in its container (never its URL, which may
        /// carry a SAS).
        blob: String,
    },

    /// A conditional write to Cosmos DB lost a race: the item or client
    /// encryption key changed since its ETag was read, was deleted since,
    /// or (for a create) already exists. Nothing was written; re-read it
    /// and retry.
    #[error("Cosmos DB {resource}{} was changed concurrently (its ETag no longer matches, it was deleted, or it already exists); nothing was written: re-read it and retry", .id.as_deref().map(|i| format!(" `{i}`")).unwrap_or_default())]
    CosmosConflict {
        /// What it is: `"item"` or `"client encryption key"`.
        resource: &'static str,
        /// Its id, when the id is stored in clear (an id the container
        /// encrypts is left out: it is plaintext), escaped and truncated as
        /// untrusted strings are.
        id: Option<String>,
    },

    /// A storage request (Azure Blob Storage, Cosmos DB) failed. The
    /// message names the service, the operation and the HTTP status or
    /// service error code; URLs, SAS signatures, account keys and tokens are
    /// never included.
    #[error(transparent)]
    Storage(#[from] StorageError),

    // ----- caller bugs -----
    /// The caller used the API in a way it does not allow. Never caused by
    /// untrusted data.
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),

    /// A query on an encrypted Cosmos DB container was refused before it
    /// was sent: it filters, orders, groups or computes on an encrypted
    /// path, compares one with something other than a parameter bound to
    /// it, or holds something the check does not read. The message names
    /// the policy path and the rule, never the query text.
    #[error("query refused: {0}")]
    QueryRefused(String),

    // ----- internal failures -----
    /// A cryptographic primitive failed where it cannot fail on valid
    /// arguments, an internal invariant broke (a worker thread panicked),
    /// or a key-encryption key broke its contract (returned a wrapped key
    /// of another algorithm). Neither the caller nor the data can cause it;
    /// the message says which one happened.
    #[error("internal error: {0}")]
    Internal(&'static str),

    // ----- environment -----
    /// An I/O error from the underlying reader or writer (never one of
    /// this crate's own errors: see `From<io::Error>`).
    #[error("I/O error: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for Error {
    /// Gives back this crate's error when `e` carries one (the errors of
    /// [`DecryptingReader`](crate::DecryptingReader),
    /// [`EncryptingWriter`](crate::EncryptingWriter) and the other
    /// adapters do), so that `?` on a read of a tampered body yields
    /// [`Error::ChunkAuthentication`] rather than an [`Error::Io`] that
    /// hides it. Any other I/O error becomes [`Error::Io`].
    fn from(e: std::io::Error) -> Error {
        if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Io(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(ours)) => *ours,
            // Unreachable after the check above; keep whatever is left.
            Some(Err(other)) => Error::Io(std::io::Error::new(kind, other)),
            None => Error::Io(kind.into()),
        }
    }
}

impl Error {
    /// [`Error::ScopeConflict`] for `scope_id`: a scope store's
    /// compare-and-swap lost (every store reports it the same way).
    pub(crate) fn scope_conflict(scope_id: &str) -> Error {
        Error::ScopeConflict {
            scope_id: scope_id.to_owned(),
        }
    }

    /// [`Error::UnknownKek`] for key ids read from a header or metadata
    /// (escaped and truncated: they are untrusted).
    pub(crate) fn unknown_kek<'a>(kek_ids: impl IntoIterator<Item = &'a str>) -> Error {
        Error::UnknownKek {
            kek_ids: kek_ids.into_iter().map(crate::untrusted::escape).collect(),
        }
    }

    /// [`Error::UnwrapFailed`] for a key id read from a header or metadata
    /// (escaped and truncated: it is untrusted).
    pub(crate) fn unwrap_failed(kek_id: &str) -> Error {
        Error::UnwrapFailed {
            kek_id: crate::untrusted::escape(kek_id),
        }
    }

    /// Whether retrying the same operation may succeed (throttling, a
    /// transient backend or network failure). Authentication failures,
    /// malformed input and permission errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Kek(e) => e.retryable,
            Error::Storage(e) => e.is_retryable(),
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    /// Converts this error into an [`std::io::Error`], keeping it as the
    /// inner error (so `Read`/`Write` adapters can return it and callers can
    /// downcast it back).
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            Error::Io(e) => e,
            other => {
                let kind = match &other {
                    Error::Truncated => std::io::ErrorKind::UnexpectedEof,
                    Error::ApiMisuse(_) => std::io::ErrorKind::InvalidInput,
                    Error::Internal(_) => std::io::ErrorKind::Other,
                    _ => std::io::ErrorKind::InvalidData,
                };
                std::io::Error::new(kind, other)
            }
        }
    }
}

/// What went wrong in a key-encryption key backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KekErrorKind {
    /// The caller could not be authenticated to the backend (bad token, wrong
    /// PIN).
    Unauthenticated,
    /// The caller is authenticated but lacks a permission (for example
    /// `wrapKey`, `unwrapKey` or `get`).
    PermissionDenied,
    /// The key (or the token holding it) does not exist.
    NotFound,
    /// The key exists but may not be used now: disabled, expired, not yet
    /// valid, or access was revoked.
    KeyUnavailable,
    /// The backend throttled the request.
    Throttled,
    /// A transient failure: timeout, connection reset, 5xx, device error.
    Transient,
    /// The backend or key does not support the requested algorithm or
    /// mechanism.
    Unsupported,
    /// The key or vault is configured in a way this crate refuses (for
    /// example a vault without purge protection).
    Misconfigured,
    /// The key cannot perform this operation (for example a public-only key
    /// asked to unwrap).
    KeyUsage,
    /// Anything else.
    Other,
}

impl fmt::Display for KekErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KekErrorKind::Unauthenticated => "not authenticated",
            KekErrorKind::PermissionDenied => "permission denied",
            KekErrorKind::NotFound => "key not found",
            KekErrorKind::KeyUnavailable => "key unavailable (disabled, expired or revoked)",
            KekErrorKind::Throttled => "throttled",
            KekErrorKind::Transient => "transient failure",
            KekErrorKind::Unsupported => "not supported",
            KekErrorKind::Misconfigured => "misconfigured",
            KekErrorKind::KeyUsage => "operation not allowed for this key",
            KekErrorKind::Other => "error",
        })
    }
}

/// An error from a key-encryption key backend. It names the backend, says
/// whether a retry can help, and keeps the underlying cause as `source()`.
///
/// The message is written by this crate's backends and never includes key
/// bytes, wrapped keys, PINs or tokens.
#[derive(Debug)]
pub struct KekError {
    backend: &'static str,
    kind: KekErrorKind,
    retryable: bool,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl KekError {
    /// A new backend error. `retryable` defaults to `true` for
    /// [`KekErrorKind::Throttled`] and [`KekErrorKind::Transient`] and
    /// `false` otherwise.
    pub fn new(backend: &'static str, kind: KekErrorKind, message: impl Into<String>) -> Self {
        KekError {
            backend,
            kind,
            retryable: matches!(kind, KekErrorKind::Throttled | KekErrorKind::Transient),
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause. The caller is responsible for it not
    /// containing secrets.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Overrides whether a retry can help.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The backend's name (`"local"`, `"azure-key-vault"`, `"pkcs11"`, …).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// What went wrong.
    pub fn kind(&self) -> KekErrorKind {
        self.kind
    }

    /// Whether a retry can help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for KekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} key-encryption key: {}: {}",
            self.backend, self.kind, self.message
        )?;
        if self.retryable {
            f.write_str(" (retryable)")?;
        }
        Ok(())
    }
}

impl std::error::Error for KekError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What went wrong in a storage request (Blob Storage, Cosmos DB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The blob, item or container does not exist.
    NotFound,
    /// The caller could not be authenticated: no token could be obtained,
    /// or the service rejected the token or account key (401).
    Unauthenticated,
    /// The caller is authenticated but not allowed, or the SAS does not
    /// grant the operation (403).
    PermissionDenied,
    /// The service throttled the request (429).
    Throttled,
    /// A transient failure: timeout, connection reset, 5xx.
    Transient,
    /// The stored object is not what this crate wrote (no envelope header
    /// in its metadata, a length no envelope can have, an item that is not
    /// a scope record).
    NotAnEnvelope,
    /// Anything else.
    Other,
}

impl fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageErrorKind::NotFound => "not found",
            StorageErrorKind::Unauthenticated => "not authenticated",
            StorageErrorKind::PermissionDenied => "permission denied",
            StorageErrorKind::Throttled => "throttled",
            StorageErrorKind::Transient => "transient failure",
            StorageErrorKind::NotAnEnvelope => "not an envelope",
            StorageErrorKind::Other => "error",
        })
    }
}

/// An error from a storage service (Blob Storage, Cosmos DB). It says
/// which service, what kind of failure it was and whether a retry can help.
/// The message is written by this crate and never holds a URL query, SAS
/// signature, key or token; the SDK error is not kept as `source()` because
/// its text may include the request URL.
#[derive(Debug)]
pub struct StorageError {
    service: &'static str,
    kind: StorageErrorKind,
    status: Option<u16>,
    message: String,
}

impl StorageError {
    /// A new blob storage error. `message` must not hold secrets.
    pub fn new(kind: StorageErrorKind, status: Option<u16>, message: impl Into<String>) -> Self {
        StorageError {
            service: "blob storage",
            kind,
            status,
            message: message.into(),
        }
    }

    /// The same error, from the storage service `service` (the name the
    /// message starts with).
    #[cfg(feature = "cosmos")]
    pub(crate) fn in_service(mut self, service: &'static str) -> Self {
        self.service = service;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// The HTTP status of the failed response, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether a retry can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            StorageErrorKind::Throttled | StorageErrorKind::Transient
        )
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.service, self.kind, self.message)?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if self.is_retryable() {
            f.write_str(" (retryable)")?;
        }
        Ok(())
    }
}

impl std::error::Error for StorageError {}

/// The opaque failure of a cryptographic primitive inside a provider.
/// Deliberately carries nothing: callers map it to the right [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CryptoError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_round_trip_keeps_variant() {
        let io = Error::ChunkAuthentication { chunk: 3 }.into_io();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
        assert!(matches!(
            Error::from(io),
            Error::ChunkAuthentication { chunk: 3 }
        ));
        let io = Error::Truncated.into_io();
        assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(Error::from(io), Error::Truncated));
        let plain = std::io::Error::other("disk");
        assert!(matches!(Error::from(plain), Error::Io(_)));
        // another error type inside an io::Error stays an I/O error
        let foreign = std::io::Error::other(std::fmt::Error);
        assert!(matches!(Error::from(foreign), Error::Io(_)));
        // `?` in a function returning the crate's Result
        let read = || -> crate::Result<()> {
            Err(Error::ChunkAuthentication { chunk: 9 }.into_io())?;
            Ok(())
        };
        assert!(matches!(
            read(),
            Err(Error::ChunkAuthentication { chunk: 9 })
        ));
    }

    #[test]
    fn untrusted_key_ids_are_escaped_and_truncated() {
        let long = "k".repeat(40_000);
        let e = Error::unknown_kek(["ok-id", "\u{1b}]0;pwned\u{7}", &long]);
        let Error::UnknownKek { kek_ids } = &e else {
            unreachable!()
        };
        assert_eq!(kek_ids[0], "ok-id");
        assert_eq!(kek_ids[1], "\\u{1b}]0;pwned\\u{7}");
        assert!(kek_ids[2].len() < 300, "{}", kek_ids[2].len());
        let text = e.to_string();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
        let e = Error::unwrap_failed("a\u{202e}b\nc");
        assert_eq!(e.to_string().lines().count(), 1);
        assert!(e.to_string().contains("a\\u{202e}b\\nc"));
    }

    #[test]
    fn retryable_defaults() {
        let e = KekError::new("test", KekErrorKind::Throttled, "slow down");
        assert!(e.is_retryable());
        assert!(Error::from(e).is_retryable());
        let e = KekError::new("test", KekErrorKind::PermissionDenied, "missing unwrapKey");
        assert!(!e.is_retryable());
        assert!(!Error::CommitmentMismatch.is_retryable());
    }
}
