//! The two item formats of an [`EncryptedContainer`](super::EncryptedContainer)
//! behind one interface: how an item is encrypted and decrypted, how its id
//! and partition key are stored, what a query may do with each path, and
//! what a query parameter bound to a path is sent as.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::keys::ClientEncryptionKeys;
use super::sql::PathClass;
use crate::cosmos_ae::{top_level, CekKeyring, ClientEncryptionPolicy, EncryptionType, ItemCipher};
use crate::document::{DocumentCipher, DocumentPolicy, FieldMode};
use crate::error::Error;

/// How long after re-reading the client encryption keys a failing unwrap
/// may trigger another re-read.
const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// The format of an encrypted container's items.
pub(super) enum Format {
    /// The crate's document format (`cmke1:` fields, a `_cmk` header).
    Document(DocumentCipher),
    /// The official SDKs' Always Encrypted format.
    AlwaysEncrypted(Sdk),
}

/// What the Always Encrypted format needs: the policy's cipher, the keys,
/// and where the keys live.
pub(super) struct Sdk {
    pub(super) items: ItemCipher,
    pub(super) keyring: Arc<CekKeyring>,
    pub(super) keys: ClientEncryptionKeys,
    /// The resource id of the container's database, when known: every
    /// key must be of that database.
    database_rid: Option<String>,
    /// When the keys were last read again after a failure.
    refreshed: Mutex<Option<Instant>>,
}

impl Sdk {
    /// The format of a container with `items`' policy in the database of
    /// resource id `database_rid`, its keys read from `keys` into
    /// `keyring` now. Cost: one request per key the policy names.
    pub(super) async fn load(
        items: ItemCipher,
        keyring: Arc<CekKeyring>,
        keys: ClientEncryptionKeys,
        database_rid: Option<String>,
    ) -> crate::Result<Sdk> {
        let sdk = Sdk {
            items,
            keyring,
            keys,
            database_rid,
            refreshed: Mutex::new(None),
        };
        sdk.refresh().await?;
        Ok(sdk)
    }

    /// Reads every key the policy names and puts the ones that changed in
    /// the keyring. Returns whether any changed. Cost: one request per key.
    pub(super) async fn refresh(&self) -> crate::Result<bool> {
        let mut changed = false;
        let mut seen = Vec::new();
        for p in self.items.policy().paths() {
            let id = p.client_encryption_key_id();
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let fetched = self.keys.fetch(id).await?.ok_or_else(|| {
                Error::CosmosAeMetadata(format!(
                    "the policy names client encryption key `{}`, which database `{}` does not have",
                    crate::untrusted::escape(id),
                    crate::untrusted::escape(self.keys.database())
                ))
            })?;
            let rid = fetched.self_link.as_deref().and_then(database_rid);
            if let (Some(a), Some(b)) = (self.database_rid.as_deref(), rid) {
                if a != b {
                    return Err(Error::ApiMisuse(
                        "the client encryption keys client is for another database than the container's",
                    ));
                }
            }
            if self.keyring.get(id).as_ref() != Some(&fetched.key) {
                self.keyring.insert(fetched.key);
                changed = true;
            }
        }
        Ok(changed)
    }

    /// After `e`: whether to try once more. When `e` is a failure to
    /// unwrap a client encryption key (as when the key was rotated
    /// elsewhere and the old KEK disabled or no longer allowed), reads the
    /// keys again, at most once per [`KEY_REFRESH_INTERVAL`], and says yes
    /// if one changed. A failure to read them leaves `e` to be reported.
    async fn retry_after(&self, e: &Error) -> bool {
        key_failure(e) && self.may_refresh() && self.refresh().await.unwrap_or(false)
    }

    /// Whether a failure may read the keys again now (and if so, notes
    /// that it does).
    fn may_refresh(&self) -> bool {
        let mut last = self.refreshed.lock().expect("refresh lock");
        if last.is_some_and(|t| t.elapsed() < KEY_REFRESH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    async fn encrypt_value(&self, path: &str, value: &Value) -> crate::Result<Value> {
        match self.items.encrypt_value(path, value).await {
            Err(e) if self.retry_after(&e).await => self.items.encrypt_value(path, value).await,
            r => r,
        }
    }
}

/// The database resource id in a `_self` link (`dbs/RID/...`).
pub(super) fn database_rid(self_link: &str) -> Option<&str> {
    let mut parts = self_link.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some("dbs"), Some(rid)) if !rid.is_empty() => Some(rid),
        _ => None,
    }
}

/// The document format: a field of the policy is deterministic or
/// randomized; its ancestors, and anything inside its one ciphertext,
/// are opaque.
fn classify_document(policy: &DocumentPolicy, names: &[String]) -> PathClass {
    for rule in policy.fields() {
        let e = rule.path.tokens();
        let n = names.len().min(e.len());
        if names[..n] != e[..n] {
            continue;
        }
        if names.len() != e.len() {
            return PathClass::Opaque;
        }
        return match rule.mode {
            FieldMode::Deterministic => PathClass::Deterministic,
            FieldMode::Randomized => PathClass::Randomized,
        };
    }
    PathClass::Clear
}

/// The SDK format: a top-level property of the policy, and every leaf
/// below it, have its encryption type; the item itself is opaque.
fn classify_sdk(policy: &ClientEncryptionPolicy, names: &[String]) -> PathClass {
    let Some(first) = names.first() else {
        return if policy.paths().is_empty() {
            PathClass::Clear
        } else {
            PathClass::Opaque
        };
    };
    match policy.paths().iter().find(|p| p.property() == first) {
        None => PathClass::Clear,
        Some(p) => match p.encryption_type() {
            EncryptionType::Deterministic => PathClass::Deterministic,
            EncryptionType::Randomized => PathClass::Randomized,
        },
    }
}

/// Whether `e` is a failure to unwrap a client encryption key.
fn key_failure(e: &Error) -> bool {
    matches!(
        e,
        Error::Kek(_)
            | Error::UnknownKek { .. }
            | Error::UnwrapFailed { .. }
            | Error::InvalidKey(_)
    )
}

impl Format {
    /// Encrypts `item` in place (all or nothing).
    pub(super) async fn encrypt(&self, item: &mut Value) -> crate::Result<()> {
        match self {
            Format::Document(c) => c.encrypt(item).await,
            Format::AlwaysEncrypted(s) => match s.items.encrypt_item(item).await {
                Err(e) if s.retry_after(&e).await => s.items.encrypt_item(item).await,
                r => r,
            },
        }
    }

    /// Decrypts `item` in place (all or nothing; no plaintext is released
    /// before every value verified).
    pub(super) async fn decrypt(&self, item: &mut Value) -> crate::Result<()> {
        match self {
            Format::Document(c) => c.decrypt(item).await,
            Format::AlwaysEncrypted(s) => match s.items.decrypt_item(item).await {
                Err(e) if s.retry_after(&e).await => s.items.decrypt_item(item).await,
                r => r,
            },
        }
    }

    /// How the value at `path` (a JSON Pointer, `/id` or a partition key
    /// path) is stored: encrypted when the format encrypts that path (the
    /// Always Encrypted format can encrypt `/id` and partition keys),
    /// else as it is.
    pub(super) async fn stored(&self, path: &str, value: &Value) -> crate::Result<Value> {
        match self {
            Format::AlwaysEncrypted(s) if s.items.policy().path(top_level(path)).is_some() => {
                s.encrypt_value(path, value).await
            }
            _ => Ok(value.clone()),
        }
    }

    /// Whether item ids are stored in clear (errors may then name them).
    pub(super) fn id_in_clear(&self) -> bool {
        match self {
            Format::Document(_) => true,
            Format::AlwaysEncrypted(s) => s.items.policy().path("/id").is_none(),
        }
    }

    /// What the path with these property names is, for the query scan.
    pub(super) fn classify(&self, names: &[String]) -> PathClass {
        match self {
            Format::Document(c) => classify_document(c.policy(), names),
            Format::AlwaysEncrypted(s) => classify_sdk(s.items.policy(), names),
        }
    }

    /// The values a parameter bound to the deterministic `path` is sent
    /// as, to match every item: the document format has one per scope key
    /// version (deterministic fields keep the version they were written
    /// under), Always Encrypted one.
    pub(super) async fn parameter_values(
        &self,
        path: &str,
        value: &Value,
    ) -> crate::Result<Vec<Value>> {
        match self {
            Format::Document(c) => {
                let mut out = Vec::new();
                for v in c.scope().record().versions.iter().map(|v| v.version) {
                    out.push(c.equality_token_for_version(path, value, v).await?);
                }
                Ok(out)
            }
            Format::AlwaysEncrypted(s) => Ok(vec![s.encrypt_value(path, value).await?]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosmos_ae::IncludedPath;

    fn names(p: &str) -> Vec<String> {
        p.split('/').skip(1).map(str::to_owned).collect()
    }

    #[test]
    fn database_rids_of_self_links() {
        assert_eq!(database_rid("dbs/AbC=/colls/x/"), Some("AbC="));
        assert_eq!(
            database_rid("/dbs/gAAB==/clientencryptionkeys/r/"),
            Some("gAAB==")
        );
        assert_eq!(database_rid("colls/x"), None);
        assert_eq!(database_rid("dbs//x"), None);
    }

    #[test]
    fn document_paths() {
        let policy = DocumentPolicy::new("/tenant")
            .unwrap()
            .deterministic("/a/b")
            .unwrap()
            .randomized("/c")
            .unwrap();
        let class = |p: &str| classify_document(&policy, &names(p));
        assert_eq!(class("/a/b"), PathClass::Deterministic);
        assert_eq!(class("/c"), PathClass::Randomized);
        for opaque in ["", "/a", "/a/b/x", "/c/0"] {
            assert_eq!(class(opaque), PathClass::Opaque, "{opaque}");
        }
        for clear in ["/tenant", "/a/c", "/b", "/cc", "/id"] {
            assert_eq!(class(clear), PathClass::Clear, "{clear}");
        }
    }

    #[test]
    fn sdk_paths() {
        let policy = ClientEncryptionPolicy::new(
            2,
            [
                IncludedPath::new("/id", "k", EncryptionType::Deterministic).unwrap(),
                IncludedPath::new("/r", "k", EncryptionType::Randomized).unwrap(),
            ],
        )
        .unwrap();
        let class = |p: &str| classify_sdk(&policy, &names(p));
        assert_eq!(class("/id"), PathClass::Deterministic);
        assert_eq!(class("/r"), PathClass::Randomized);
        assert_eq!(class("/r/x/0"), PathClass::Randomized);
        assert_eq!(class(""), PathClass::Opaque);
        assert_eq!(class("/ids"), PathClass::Clear);
        let empty = ClientEncryptionPolicy::new(1, []).unwrap();
        assert_eq!(classify_sdk(&empty, &[]), PathClass::Clear);
    }
}
