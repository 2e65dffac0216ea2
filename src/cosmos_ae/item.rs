//! Whole items, single values, query parameters and partition keys,
//! encrypted and decrypted by a container's policy.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::Error;

use super::algorithm::{CekCipher, RandomIvs};
use super::keyring::CekKeyring;
use super::policy::{top_level, ClientEncryptionPolicy, IncludedPath};
use super::value;

/// Deepest nesting walked under an encrypted property (as deep as
/// `serde_json` parses by default).
const MAX_DEPTH: usize = 128;

/// `path`: a policy path or a pointer already escaped ([`Trail::shown`]).
fn field_err(path: &str, problem: &'static str) -> Error {
    Error::DocumentField {
        path: path.to_owned(),
        problem,
    }
}

/// One step below an encrypted property.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where the walk is: the property's path and the steps below it. Turned
/// into a JSON Pointer (RFC 6901) only for an error.
struct Trail<'a> {
    root: &'a str,
    steps: Vec<Step<'a>>,
}

impl<'a> Trail<'a> {
    fn new(root: &'a str) -> Trail<'a> {
        Trail {
            root,
            steps: Vec::new(),
        }
    }

    fn pointer(&self) -> String {
        let mut p = self.root.to_owned();
        for s in &self.steps {
            p.push('/');
            match s {
                Step::Index(i) => p.push_str(&i.to_string()),
                Step::Key(k) => {
                    for c in k.chars() {
                        match c {
                            '~' => p.push_str("~0"),
                            '/' => p.push_str("~1"),
                            c => p.push(c),
                        }
                    }
                }
            }
        }
        p
    }

    /// The pointer as an error holds it: the keys below the property
    /// come from the item, so it is escaped as untrusted text.
    fn shown(&self) -> String {
        crate::untrusted::escape(&self.pointer())
    }

    fn err(&self, problem: &'static str) -> Error {
        field_err(&self.shown(), problem)
    }
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

/// The ciphers of the keys one call needs (a policy names few keys),
/// fetched before any value is touched.
type Ciphers<'a> = Vec<(&'a str, Arc<CekCipher>)>;

/// A whole-property transformation: [`encrypt_tree`] or [`decrypt_tree`].
type Tree = for<'v> fn(
    &CekCipher,
    &IncludedPath,
    &'v Value,
    &mut Trail<'v>,
    &mut RandomIvs,
) -> crate::Result<Value>;

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
    ) -> crate::Result<Ciphers<'a>> {
        let mut out = Ciphers::new();
        for p in paths {
            let id = p.client_encryption_key_id();
            if !out.iter().any(|(k, _)| *k == id) {
                out.push((id, self.keys.cipher(id).await?));
            }
        }
        Ok(out)
    }

    /// Runs `tree` over every property of `item` the policy names, then
    /// replaces them all; on any error `item` is unchanged.
    async fn each_property(&self, item: &mut Value, tree: Tree) -> crate::Result<()> {
        let obj = item
            .as_object()
            .ok_or_else(|| field_err("", "an item must be a JSON object"))?;
        let ciphers = self.ciphers(self.present(obj)).await?;
        let mut out = Vec::with_capacity(ciphers.len());
        let mut ivs = RandomIvs::new();
        for p in self.present(obj) {
            let (_, cipher) = ciphers
                .iter()
                .find(|(k, _)| *k == p.client_encryption_key_id())
                .expect("fetched above");
            let v = tree(
                cipher,
                p,
                &obj[p.property()],
                &mut Trail::new(p.path()),
                &mut ivs,
            )?;
            out.push((p.property(), v));
        }
        let obj = item.as_object_mut().expect("checked above");
        for (k, v) in out {
            *obj.get_mut(k).expect("present above") = v;
        }
        Ok(())
    }

    /// The included paths whose property `item` has.
    fn present<'s, 'i>(
        &'s self,
        item: &'i Map<String, Value>,
    ) -> impl Iterator<Item = &'s IncludedPath> + 'i
    where
        's: 'i,
    {
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
        self.each_property(item, encrypt_tree).await
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
        self.each_property(item, decrypt_tree).await
    }

    fn included(&self, path: &str) -> crate::Result<&IncludedPath> {
        self.policy
            .path(top_level(path))
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
        encrypt_tree(
            &cipher,
            p,
            value,
            &mut Trail::new(path),
            &mut RandomIvs::new(),
        )
    }

    /// The inverse of [`ItemCipher::encrypt_value`]: for values a query
    /// returns without their item (`SELECT VALUE c.ssn`). Errors as for
    /// [`ItemCipher::decrypt_item`].
    pub async fn decrypt_value(&self, path: &str, value: &Value) -> crate::Result<Value> {
        let p = self.included(path)?;
        let cipher = self.keys.cipher(p.client_encryption_key_id()).await?;
        decrypt_tree(
            &cipher,
            p,
            value,
            &mut Trail::new(path),
            &mut RandomIvs::new(),
        )
    }
}

/// Rebuilds `v` with every leaf (a boolean, number or string) replaced
/// by `leaf(it)`, keeping objects, arrays and `null`s.
fn walk<'a>(
    v: &'a Value,
    trail: &mut Trail<'a>,
    leaf: &mut dyn FnMut(&'a Value, &Trail<'a>) -> crate::Result<Value>,
) -> crate::Result<Value> {
    let mut down = |s: Step<'a>, x: &'a Value, trail: &mut Trail<'a>| {
        if trail.steps.len() >= MAX_DEPTH {
            return Err(trail.err("nested too deeply (more than 128 levels)"));
        }
        trail.steps.push(s);
        let r = walk(x, trail, leaf);
        trail.steps.pop();
        r
    };
    match v {
        Value::Null => Ok(Value::Null),
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| down(Step::Key(k), x, trail).map(|e| (k.clone(), e)))
            .collect::<crate::Result<Map<String, Value>>>()
            .map(Value::Object),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| down(Step::Index(i), x, trail))
            .collect::<crate::Result<Vec<Value>>>()
            .map(Value::Array),
        _ => leaf(v, trail),
    }
}

fn encrypt_tree<'a>(
    cipher: &CekCipher,
    p: &IncludedPath,
    v: &'a Value,
    trail: &mut Trail<'a>,
    ivs: &mut RandomIvs,
) -> crate::Result<Value> {
    let is_id = p.path() == "/id";
    if is_id && !v.is_string() {
        return Err(trail.err("an encrypted `/id` must be a string"));
    }
    walk(v, trail, &mut |x, t| {
        let (marker, plaintext) = value::serialize(x).map_err(|e| t.err(e))?;
        let plaintext = plaintext.as_bytes();
        let mut bytes = Vec::with_capacity(1 + plaintext.len() + 80);
        bytes.push(marker as u8);
        cipher.encrypt(p.encryption_type(), plaintext, ivs, &mut bytes)?;
        Ok(Value::String(value::encode(&bytes, is_id)))
    })
}

fn decrypt_tree<'a>(
    cipher: &CekCipher,
    p: &IncludedPath,
    v: &'a Value,
    trail: &mut Trail<'a>,
    _: &mut RandomIvs,
) -> crate::Result<Value> {
    let is_id = p.path() == "/id";
    walk(v, trail, &mut |x, t| {
        let Value::String(text) = x else {
            return Err(t.err("the policy encrypts this path, but it holds no ciphertext"));
        };
        let bytes = value::decode(text, is_id).map_err(|e| t.err(e))?;
        let (&marker, ct) = bytes.split_first().expect("decode returns the marker");
        let plaintext = cipher
            .decrypt(ct)
            .map_err(|_| Error::FieldAuthentication { path: t.shown() })?;
        value::deserialize(marker, &plaintext).map_err(|e| t.err(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosmos_ae::{ClientEncryptionKey, EncryptionType};
    use crate::kek::{LocalKek, StaticResolver, WrapAlgorithm};
    use crate::scope::CachePolicy;
    use crate::KeyEncryptionKey;
    use pollster::block_on;
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

    /// Item keys, key ids and CEK metadata from untrusted JSON reach errors
    /// escaped and cut.
    #[test]
    fn hostile_names_are_escaped_in_errors() {
        let c = setup();
        let h = crate::untrusted::hostile();
        // A tampered leaf under a hostile key.
        let mut inner = serde_json::Map::new();
        inner.insert(h.clone(), json!("v"));
        let mut e = json!({"id": "i", "a": inner});
        block_on(c.encrypt_item(&mut e)).unwrap();
        e["a"][&h] = json!("BQE=");
        let err = block_on(c.decrypt_item(&mut e)).unwrap_err();
        crate::untrusted::assert_tame(&err.to_string());
        // A policy naming a key the keyring does not hold.
        let policy = ClientEncryptionPolicy::new(
            2,
            [IncludedPath::new("/a", &h, EncryptionType::Randomized).unwrap()],
        )
        .unwrap();
        let other = ItemCipher::new(policy, c.keys.clone());
        let err = block_on(other.encrypt_item(&mut json!({"id": "i", "a": 1}))).unwrap_err();
        crate::untrusted::assert_tame(&err.to_string());
        // A key whose KEK id is hostile: unknown to the resolver.
        let json_h = serde_json::to_string(&h[..1_500]).unwrap();
        let cek = c.keys.get("c2").unwrap().to_json();
        let value = format!(r#""value":{json_h}"#);
        let cek = cek.replacen(r#""value":"kek""#, &value, 1);
        c.keys.insert(ClientEncryptionKey::parse(&cek).unwrap());
        let err = block_on(c.encrypt_item(&mut json!({"id": "i", "b": 1}))).unwrap_err();
        assert!(matches!(err, Error::UnknownKek { .. }), "{err}");
        crate::untrusted::assert_tame(&err.to_string());
    }

    #[test]
    fn pointers_escape() {
        let mut t = Trail::new("/a");
        t.steps.push(Step::Key("b/c~d"));
        t.steps.push(Step::Index(3));
        assert_eq!(t.pointer(), "/a/b~1c~0d/3");
    }

    /// The keys below an encrypted property come from the stored item:
    /// an error naming the leaf escapes them.
    #[test]
    fn error_pointers_escape_keys_from_the_item() {
        let c = setup();
        let hostile = "k\u{1b}]0;owned\u{7}\u{202e}";
        for (value, tampered) in [
            (json!({hostile: "x"}), json!({hostile: 5})),
            (json!({hostile: "x"}), json!({hostile: "AAAA"})),
        ] {
            let mut item = json!({"id": "i", "a": value});
            block_on(c.encrypt_item(&mut item)).unwrap();
            item["a"] = tampered;
            let e = block_on(c.decrypt_item(&mut item)).unwrap_err();
            let path = match &e {
                Error::DocumentField { path, .. } | Error::FieldAuthentication { path } => path,
                other => panic!("{other}"),
            };
            assert!(path.starts_with("/a/k\\u{1b}"), "{path}");
            let shown = e.to_string();
            assert!(
                !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{shown:?}"
            );
        }
    }
}
