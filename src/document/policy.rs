//! Which fields of a document are encrypted, and how.

use std::fmt;

use super::pointer::JsonPointer;
use super::CMK_PROPERTY;
use crate::error::Error;

/// How one field is encrypted. See the [module docs](super) for the exact
/// constructions and what each mode reveals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FieldMode {
    /// AES-256-GCM under a key of this document write: equal values give
    /// unrelated ciphertexts. The default.
    #[default]
    Randomized,
    /// AES-256-SIV under a key of the scope and the path: equal values under
    /// the same path give equal ciphertexts in every document, so the store
    /// can answer equality queries. Reveals equality and frequency.
    Deterministic,
}

/// One encrypted field of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    /// The field, as an RFC 6901 JSON Pointer.
    pub path: JsonPointer,
    /// How it is encrypted.
    pub mode: FieldMode,
}

/// The fields of a document to encrypt, each named by an RFC 6901 JSON
/// Pointer, with its [`FieldMode`].
///
/// * Paths may be nested and may reach into arrays by index:
///   `/patient/ssn`, `/items/0/price`. A path may name a value of any JSON
///   type; naming an object or array encrypts it whole.
/// * There is **no wildcard** for "every element of an array": RFC 6901 has
///   none, and any spelling we chose (`*`, `-`) is also a valid object key,
///   so a wildcard would make some documents impossible to describe. To
///   encrypt every element of an array, encrypt the array (`/items`), or
///   list the indices.
/// * The document id (`/id`) and the partition-key path stay in clear: the
///   store needs them to route and look documents up. The policy refuses a
///   path that is one of them, contains one of them (such as the root `""`
///   or the parent object of a nested partition key), or lies below one.
///   The header property `/_cmk` is refused likewise.
/// * Two paths may not overlap (one a prefix of the other).
#[derive(Clone, PartialEq, Eq)]
pub struct DocumentPolicy {
    id: JsonPointer,
    partition_key: Option<JsonPointer>,
    rules: Vec<FieldRule>,
}

impl fmt::Debug for DocumentPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentPolicy")
            .field(
                "partition_key",
                &self.partition_key.as_ref().map(|p| p.as_str()),
            )
            .field(
                "fields",
                &self
                    .rules
                    .iter()
                    .map(|r| (r.path.as_str(), r.mode))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn bad_path(path: &str, problem: &'static str) -> Error {
    Error::DocumentField {
        path: path.to_owned(),
        problem,
    }
}

impl DocumentPolicy {
    /// An empty policy for a container whose partition key is at
    /// `partition_key_path` (a JSON Pointer such as `/tenantId`). The id is
    /// always `/id`.
    pub fn new(partition_key_path: &str) -> crate::Result<DocumentPolicy> {
        let pk = JsonPointer::parse(partition_key_path)
            .map_err(|_| bad_path(partition_key_path, "not a valid JSON Pointer"))?;
        if pk.is_root() {
            return Err(bad_path(
                partition_key_path,
                "the partition key cannot be the whole document",
            ));
        }
        Ok(DocumentPolicy {
            id: id_pointer(),
            partition_key: Some(pk),
            rules: Vec::new(),
        })
    }

    /// An empty policy for a store without a partition key (only `/id` is
    /// kept in clear).
    pub fn without_partition_key() -> DocumentPolicy {
        DocumentPolicy {
            id: id_pointer(),
            partition_key: None,
            rules: Vec::new(),
        }
    }

    /// Adds `path` in [`FieldMode::Randomized`].
    pub fn randomized(self, path: &str) -> crate::Result<DocumentPolicy> {
        self.field(path, FieldMode::Randomized)
    }

    /// Adds `path` in [`FieldMode::Deterministic`].
    pub fn deterministic(self, path: &str) -> crate::Result<DocumentPolicy> {
        self.field(path, FieldMode::Deterministic)
    }

    /// Adds `path` with `mode`.
    ///
    /// Errors ([`Error::DocumentField`]): `path` is not a JSON Pointer, is
    /// the root, overlaps the id, the partition key, `/_cmk` or a path
    /// already in the policy, or contains the array token `-`.
    pub fn field(mut self, path: &str, mode: FieldMode) -> crate::Result<DocumentPolicy> {
        let p = JsonPointer::parse(path).map_err(|_| bad_path(path, "not a valid JSON Pointer"))?;
        if p.is_root() {
            return Err(bad_path(path, "the whole document cannot be encrypted"));
        }
        if p.overlaps(&self.id) {
            return Err(bad_path(
                path,
                "the document id stays in clear (the store routes and looks up by it)",
            ));
        }
        if self.partition_key.as_ref().is_some_and(|pk| p.overlaps(pk)) {
            return Err(bad_path(
                path,
                "the partition key stays in clear (the store routes by it)",
            ));
        }
        if p.overlaps(&cmk_pointer()) {
            return Err(bad_path(path, "`/_cmk` holds the document's key header"));
        }
        if p.tokens().iter().any(|t| t == "-") {
            return Err(bad_path(
                path,
                "`-` names no array element; give an index (there is no wildcard)",
            ));
        }
        if self.rules.iter().any(|r| r.path.overlaps(&p)) {
            return Err(bad_path(
                path,
                "overlaps a path already in the policy (one contains the other)",
            ));
        }
        self.rules.push(FieldRule { path: p, mode });
        Ok(self)
    }

    /// The encrypted fields, in the order they were added.
    pub fn fields(&self) -> &[FieldRule] {
        &self.rules
    }

    /// The partition-key path, if any.
    pub fn partition_key(&self) -> Option<&JsonPointer> {
        self.partition_key.as_ref()
    }

    pub(crate) fn rule(&self, path: &str) -> Option<(usize, &FieldRule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.path.as_str() == path)
    }
}

fn id_pointer() -> JsonPointer {
    JsonPointer::parse("/id").expect("a valid pointer")
}

fn cmk_pointer() -> JsonPointer {
    JsonPointer::parse(&format!("/{CMK_PROPERTY}")).expect("a valid pointer")
}
