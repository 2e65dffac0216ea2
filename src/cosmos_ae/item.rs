//! Whole items, single values, query parameters and partition keys,
//! encrypted and decrypted by a container's policy.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::Error;

use super::algorithm::CekCipher;
use super::keyring::CekKeyring;
use super::policy::{ClientEncryptionPolicy, IncludedPath};
use super::value;

/// Deepest nesting walked under an encrypted property (as deep as
/// `serde_json` parses by default).
const MAX_DEPTH: usize = 128;

fn field_err(path: &str, problem: &'static str) -> Error {
    Error::DocumentField {
        path: path.to_owned(),
        problem,
    }
}

/// Appends the RFC 6901 token of `key` to a JSON Pointer.
fn pointer_child(parent: &str, key: &str) -> String {
    let mut p = String::with_capacity(parent.len() + key.len() + 1);
    p.push_str(parent);
    p.push('/');
    for c in key.chars() {
        match c {
            '~' => p.push_str("~0"),
            '/' => p.push_str("~1"),
            c => p.push(c),
        }
    }
    p
}

/// Encrypts and decrypts the items of one container: its
/// [`ClientEncryptionPolicy`] and the [`CekKeyring`] holding the keys it
/// names. See the [module docs](super) for the format and what it binds.
///
/// Every method takes `&self`; share it behind an `Arc`.
pub struct ItemCipher {
    policy: ClientEncryptionPolicy,
    keys: Arc<CekKeyring>,
}

impl fmt::Debug for ItemCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemCipher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The ciphers of the keys one call needs, fetched before any value is
/// touched.
type Ciphers = HashMap<String, Arc<CekCipher>>;

impl ItemCipher {
    /// A cipher for the container with `policy`, its keys from `keys`. No
    /// I/O: keys are unwrapped when first used.
    pub fn new(policy: ClientEncryptionPolicy, keys: Arc<CekKeyring>) -> ItemCipher {
        ItemCipher { policy, keys }
    }

    /// The policy.
    pub fn policy(&self) -> &ClientEncryptionPolicy {
        &self.policy
    }

    async fn ciphers<'a>(
        &self,
        paths: impl Iterator<Item = &'a IncludedPath>,
    ) -> crate::Result<Ciphers> {
        let mut out = Ciphers::new();
        for p in paths {
            let id = p.client_encryption_key_id();
            if !out.contains_key(id) {
                out.insert(id.to_owned(), self.keys.cipher(id).await?);
            }
        }
        Ok(out)
    }

    /// The included paths whose property `item` has.
    fn present<'a>(
        &'a self,
        item: &'a Map<String, Value>,
    ) -> impl Iterator<Item = &'a IncludedPath> {
        self.policy
            .paths()
            .iter()
            .filter(move |p| item.contains_key(p.property()))
    }

    /// Encrypts, in place, every property of `item` the policy names (a
    /// property the item lacks is skipped, as the SDKs do). Objects and
    /// arrays keep their shape, each leaf encrypted; `null` stays `null`.
    ///
    /// All or nothing: on any error `item` is unchanged. Errors:
    /// [`Error::DocumentField`] naming the JSON Pointer when `item` is not
    /// an object, `/id` is not a string, or a value cannot be encrypted
    /// (an integer beyond `i64`); key errors when a CEK cannot be
    /// unwrapped; [`Error::CosmosAeMetadata`] when the policy names a key
    /// the keyring lacks.
    ///
    /// Cost: no KEK call once the keys are cached; per leaf one AES-CBC
    /// pass and one HMAC (two when deterministic).
    pub async fn encrypt_item(&self, item: &mut Value) -> crate::Result<()> {
        let obj = item
            .as_object()
            .ok_or_else(|| field_err("", "an item must be a JSON object"))?;
        let ciphers = self.ciphers(self.present(obj)).await?;
        let mut out = Vec::new();
        for p in self.present(obj) {
            let cipher = &ciphers[p.client_encryption_key_id()];
            let v = encrypt_tree(cipher, p, &obj[p.property()], p.path(), 0)?;
            out.push((p.property().to_owned(), v));
        }
        let obj = item.as_object_mut().expect("checked above");
        for (k, v) in out {
            obj.insert(k, v);
        }
        Ok(())
    }

    /// Decrypts, in place, every property of `item` the policy names.
    ///
    /// All or nothing: every tag is verified and every value read back
    /// before `item` changes; on any error it is unchanged and no plaintext
    /// is released. Errors: [`Error::FieldAuthentication`] naming the JSON
    /// Pointer of a leaf whose tag does not verify (modified, truncated,
    /// wrong key, or moved from a path under another key);
    /// [`Error::DocumentField`] for a leaf that is no ciphertext, an
    /// unknown type marker, or a marker that does not fit the decrypted
    /// bytes; key errors as for [`ItemCipher::encrypt_item`].
    ///
    /// Cost: no KEK call once the keys are cached; per leaf one HMAC and
    /// one AES-CBC pass.
    pub async fn decrypt_item(&self, item: &mut Value) -> crate::Result<()> {
        let obj = item
            .as_object()
            .ok_or_else(|| field_err("", "an item must be a JSON object"))?;
        let ciphers = self.ciphers(self.present(obj)).await?;
        let mut out = Vec::new();
        for p in self.present(obj) {
            let cipher = &ciphers[p.client_encryption_key_id()];
            let v = decrypt_tree(cipher, p, &obj[p.property()], p.path(), 0)?;
            out.push((p.property().to_owned(), v));
        }
        let obj = item.as_object_mut().expect("checked above");
        for (k, v) in out {
            obj.insert(k, v);
        }
        Ok(())
    }

    fn included(&self, path: &str) -> crate::Result<&IncludedPath> {
        let top = match path.get(1..).and_then(|rest| rest.find('/')) {
            Some(i) => &path[..i + 1],
            None => path,
        };
        self.policy
            .path(top)
            .ok_or_else(|| field_err(path, "the policy does not encrypt this path"))
    }

    /// The stored form of `value` under `path`, as
    /// [`ItemCipher::encrypt_item`] writes it: for a **query parameter**
    /// compared with `=` on a deterministic path, a **partition key value**
    /// of an encrypted partition key path, or an **id** under an encrypted
    /// `/id` (escaped). `path` is a top-level path of the policy, or a path
    /// below one (`/address/city`: the leaf is encrypted with `/address`'s
    /// key and type, as nested leaves are).
    ///
    /// Equal only for deterministic paths: a randomized path gives a new
    /// ciphertext each call (still decryptable, never equal).
    ///
    /// Errors: [`Error::DocumentField`] when the policy does not encrypt
    /// `path` or the value cannot be encrypted.
    pub async fn encrypt_value(&self, path: &str, value: &Value) -> crate::Result<Value> {
        let p = self.included(path)?;
        let cipher = self.keys.cipher(p.client_encryption_key_id()).await?;
        encrypt_tree(&cipher, p, value, path, 0)
    }

    /// The inverse of [`ItemCipher::encrypt_value`]: for values a query
    /// returns without their item (`SELECT VALUE c.ssn`). Errors as for
    /// [`ItemCipher::decrypt_item`].
    pub async fn decrypt_value(&self, path: &str, value: &Value) -> crate::Result<Value> {
        let p = self.included(path)?;
        let cipher = self.keys.cipher(p.client_encryption_key_id()).await?;
        decrypt_tree(&cipher, p, value, path, 0)
    }
}

fn encrypt_tree(
    cipher: &CekCipher,
    p: &IncludedPath,
    v: &Value,
    at: &str,
    depth: usize,
) -> crate::Result<Value> {
    let is_id = p.path() == "/id";
    if is_id && !v.is_string() {
        return Err(field_err(at, "an encrypted `/id` must be a string"));
    }
    if depth > MAX_DEPTH {
        return Err(field_err(at, "nested too deeply (more than 128 levels)"));
    }
    Ok(match v {
        Value::Null => Value::Null,
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    encrypt_tree(cipher, p, x, &pointer_child(at, k), depth + 1)
                        .map(|e| (k.clone(), e))
                })
                .collect::<crate::Result<Map<String, Value>>>()?,
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| encrypt_tree(cipher, p, x, &format!("{at}/{i}"), depth + 1))
                .collect::<crate::Result<Vec<Value>>>()?,
        ),
        leaf => {
            let (marker, plaintext) = value::serialize(leaf).map_err(|e| field_err(at, e))?;
            let ct = cipher.encrypt(p.encryption_type(), &plaintext)?;
            Value::String(value::encode(marker, &ct, is_id))
        }
    })
}

fn decrypt_tree(
    cipher: &CekCipher,
    p: &IncludedPath,
    v: &Value,
    at: &str,
    depth: usize,
) -> crate::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(field_err(at, "nested too deeply (more than 128 levels)"));
    }
    Ok(match v {
        Value::Null => Value::Null,
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    decrypt_tree(cipher, p, x, &pointer_child(at, k), depth + 1)
                        .map(|d| (k.clone(), d))
                })
                .collect::<crate::Result<Map<String, Value>>>()?,
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| decrypt_tree(cipher, p, x, &format!("{at}/{i}"), depth + 1))
                .collect::<crate::Result<Vec<Value>>>()?,
        ),
        Value::String(text) => {
            let (marker, ct) =
                value::decode(text, p.path() == "/id").map_err(|e| field_err(at, e))?;
            let plaintext = cipher
                .decrypt(&ct)
                .map_err(|_| Error::FieldAuthentication {
                    path: at.to_owned(),
                })?;
            value::deserialize(marker, &plaintext).map_err(|e| field_err(at, e))?
        }
        Value::Bool(_) | Value::Number(_) => {
            return Err(field_err(
                at,
                "the policy encrypts this path, but it holds no ciphertext",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::__private::block_on;
    use crate::cosmos_ae::{ClientEncryptionKey, EncryptionType};
    use crate::kek::{LocalKek, StaticResolver, WrapAlgorithm};
    use crate::scope::CachePolicy;
    use crate::KeyEncryptionKey;
    use serde_json::json;

    fn setup() -> ItemCipher {
        let kek: Arc<dyn KeyEncryptionKey> =
            Arc::new(LocalKek::from_aes_key("kek", WrapAlgorithm::A256Kw, &[7; 32]).unwrap());
        let keys = Arc::new(CekKeyring::new(
            Arc::new(StaticResolver::new().with(kek.clone())),
            CachePolicy::default(),
        ));
        for id in ["c1", "c2"] {
            keys.insert(block_on(ClientEncryptionKey::create(id, kek.as_ref())).unwrap());
        }
        let policy = ClientEncryptionPolicy::new(
            2,
            [
                IncludedPath::new("/id", "c1", EncryptionType::Deterministic).unwrap(),
                IncludedPath::new("/a", "c1", EncryptionType::Randomized).unwrap(),
                IncludedPath::new("/b", "c2", EncryptionType::Deterministic).unwrap(),
            ],
        )
        .unwrap();
        ItemCipher::new(policy, keys)
    }

    #[test]
    fn round_trip_keeps_shape_and_types() {
        let c = setup();
        let item = json!({"id": "x/y+z", "a": {"k~/": [1, 2.5, null, true, "s", {}], "n": null},
                          "b": -7, "clear": 1});
        let mut e = item.clone();
        block_on(c.encrypt_item(&mut e)).unwrap();
        assert_eq!(e["clear"], 1);
        assert!(e["a"]["k~/"][2].is_null() && e["a"]["n"].is_null());
        assert_eq!(e["a"]["k~/"][5], json!({}));
        assert!(e["a"]["k~/"][0].is_string() && e["b"].is_string());
        let id = e["id"].as_str().unwrap();
        assert!(!id.contains('/') && !id.contains('+'));
        let mut d = e.clone();
        block_on(c.decrypt_item(&mut d)).unwrap();
        assert_eq!(d, item);
        // Query parameters and single values.
        assert_eq!(block_on(c.encrypt_value("/b", &json!(-7))).unwrap(), e["b"]);
        assert_eq!(
            block_on(c.encrypt_value("/id", &json!("x/y+z"))).unwrap(),
            e["id"]
        );
        let leaf = block_on(c.encrypt_value("/a/k~0~1/4", &json!("s"))).unwrap();
        assert_eq!(block_on(c.decrypt_value("/a/k~0~1/4", &leaf)).unwrap(), "s");
        assert!(block_on(c.encrypt_value("/clear", &json!(1))).is_err());
    }

    #[test]
    fn failures_leave_the_item_unchanged() {
        let c = setup();
        let mut e = json!({"id": "i", "a": [1, 2], "b": "x"});
        block_on(c.encrypt_item(&mut e)).unwrap();
        // The second leaf of /a is tampered: nothing is decrypted.
        let mut bad = e.clone();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut raw = b64.decode(bad["a"][1].as_str().unwrap()).unwrap();
        raw[5] ^= 1; // inside the tag
        bad["a"][1] = json!(b64.encode(raw));
        let before = bad.clone();
        let err = block_on(c.decrypt_item(&mut bad)).unwrap_err();
        assert!(
            matches!(&err, Error::FieldAuthentication { path } if path == "/a/1"),
            "{err}"
        );
        assert_eq!(bad, before);
        // A clear leaf under an encrypted path.
        let mut bad = e.clone();
        bad["b"] = json!(5);
        assert!(matches!(
            block_on(c.decrypt_item(&mut bad)),
            Err(Error::DocumentField { .. })
        ));
        // Not encryptable: nothing changes.
        let mut item = json!({"id": 5, "a": 1});
        assert!(block_on(c.encrypt_item(&mut item)).is_err());
        assert_eq!(item, json!({"id": 5, "a": 1}));
        let mut item = json!({"a": 1, "b": u64::MAX});
        assert!(block_on(c.encrypt_item(&mut item)).is_err());
        assert_eq!(item, json!({"a": 1, "b": u64::MAX}));
        assert!(block_on(c.encrypt_item(&mut json!([1]))).is_err());
    }

    #[test]
    fn pointers_escape() {
        assert_eq!(pointer_child("/a", "b/c~d"), "/a/b~1c~0d");
    }
}
