//! The client encryption policy: which top-level properties of a
//! container's items are encrypted, under which client encryption key, and
//! how. It is a property of the container (`clientEncryptionPolicy`):
//!
//! ```json
//! {"includedPaths": [
//!    {"path": "/ssn", "clientEncryptionKeyId": "cek1",
//!     "encryptionType": "Deterministic", "encryptionAlgorithm": "AEAD_AES_256_CBC_HMAC_SHA256"}],
//!  "policyFormatVersion": 2}
//! ```
//!
//! Parsing follows the SDKs' own validation (`@azure/cosmos`
//! `validateClientEncryptionPolicy`, .NET `ClientEncryptionPolicy`):
//!
//! | field | rule |
//! |---|---|
//! | `policyFormatVersion` | 1 or 2 (absent: 1, the .NET default) |
//! | `includedPaths` | an array; paths distinct |
//! | `path` | `/` followed by one non-empty property name, with no further `/`: only top-level properties |
//! | `clientEncryptionKeyId` | a non-empty string |
//! | `encryptionType` | `Deterministic` or `Randomized` |
//! | `encryptionAlgorithm` | `AEAD_AES_256_CBC_HMAC_SHA256` |
//! | `/id` | only with version 2, and only `Deterministic` |
//! | a partition key path ([`ClientEncryptionPolicy::check_partition_key_paths`]) | only with version 2, and only `Deterministic` |
//!
//! The property name is the path without its leading `/`, taken as it is
//! (no unescaping), as the SDKs do. Unknown fields are kept, in order,
//! by [`ClientEncryptionPolicy::to_json`]. Duplicate member names are
//! refused.

use std::fmt;

use crate::error::Error;
use crate::json_tree::{first_duplicate, get, Fields, Json};
use crate::untrusted::escape;

/// The one value algorithm of Cosmos DB Always Encrypted.
pub const ALGORITHM: &str = "AEAD_AES_256_CBC_HMAC_SHA256";

/// Field accessors whose errors are [`Error::CosmosAeMetadata`].
pub(crate) const F: Fields = Fields::new(Error::CosmosAeMetadata);

/// How a path is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionType {
    /// The IV is derived from the value: equal values under one key give
    /// equal ciphertexts, so equality queries work, and equality and
    /// frequency are revealed. Required for `/id` and partition keys.
    Deterministic,
    /// A random IV: equal values give unrelated ciphertexts.
    Randomized,
}

impl EncryptionType {
    /// The policy's spelling: `Deterministic` or `Randomized`.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionType::Deterministic => "Deterministic",
            EncryptionType::Randomized => "Randomized",
        }
    }

    fn parse(s: &str) -> Option<EncryptionType> {
        match s {
            "Deterministic" => Some(EncryptionType::Deterministic),
            "Randomized" => Some(EncryptionType::Randomized),
            _ => None,
        }
    }
}

impl fmt::Display for EncryptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One encrypted path of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludedPath {
    path: String,
    cek_id: String,
    encryption_type: EncryptionType,
}

impl IncludedPath {
    /// A path to encrypt: `path` is `/` and a top-level property name.
    ///
    /// Errors: [`Error::CosmosAeMetadata`] for a path that is not one
    /// top-level property, or an empty key id.
    pub fn new(
        path: &str,
        cek_id: &str,
        encryption_type: EncryptionType,
    ) -> crate::Result<IncludedPath> {
        check_path(path)?;
        if cek_id.is_empty() {
            return Err(F.err(format!(
                "the clientEncryptionKeyId of `{}` must be a non-empty string",
                escape(path)
            )));
        }
        Ok(IncludedPath {
            path: path.to_owned(),
            cek_id: cek_id.to_owned(),
            encryption_type,
        })
    }

    /// The path, such as `/ssn`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The top-level property it names: the path without its `/`.
    pub fn property(&self) -> &str {
        &self.path[1..]
    }

    /// The id of the client encryption key it is encrypted under.
    pub fn client_encryption_key_id(&self) -> &str {
        &self.cek_id
    }

    /// Deterministic or randomized.
    pub fn encryption_type(&self) -> EncryptionType {
        self.encryption_type
    }

    fn to_json(&self) -> Json {
        let s = |x: &str| Json::String(x.to_owned());
        Json::Object(vec![
            ("path".into(), s(&self.path)),
            ("clientEncryptionKeyId".into(), s(&self.cek_id)),
            ("encryptionType".into(), s(self.encryption_type.as_str())),
            ("encryptionAlgorithm".into(), s(ALGORITHM)),
        ])
    }
}

fn check_path(path: &str) -> crate::Result<()> {
    match path.strip_prefix('/') {
        Some(name) if !name.is_empty() && !name.contains('/') => Ok(()),
        _ => Err(F.err(format!(
            "included path `{}` must be `/` followed by one top-level property name (the SDKs encrypt only top-level properties)",
            escape(path)
        ))),
    }
}

/// The first segment of a path (`/a/b` → `/a`): the top-level property
/// that the SDKs compare with encrypted paths (partition key paths, query
/// paths).
pub(crate) fn top_level(path: &str) -> &str {
    match path.get(1..).and_then(|rest| rest.find('/')) {
        Some(i) => &path[..i + 1],
        None => path,
    }
}

/// A container's client encryption policy. See the module docs for the
/// rules it enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientEncryptionPolicy {
    raw: Vec<(String, Json)>,
    version: u8,
    paths: Vec<IncludedPath>,
}

impl ClientEncryptionPolicy {
    /// A policy of format `version` (1 or 2) over `paths`, validated as a
    /// parsed one is.
    pub fn new(
        version: u8,
        paths: impl IntoIterator<Item = IncludedPath>,
    ) -> crate::Result<ClientEncryptionPolicy> {
        let paths: Vec<IncludedPath> = paths.into_iter().collect();
        let raw = vec![
            (
                "includedPaths".to_owned(),
                Json::Array(paths.iter().map(IncludedPath::to_json).collect()),
            ),
            (
                "policyFormatVersion".to_owned(),
                Json::Number(u64::from(version).into()),
            ),
        ];
        Self::validated(raw, version, paths)
    }

    fn validated(
        raw: Vec<(String, Json)>,
        version: u8,
        paths: Vec<IncludedPath>,
    ) -> crate::Result<ClientEncryptionPolicy> {
        if !(1..=2).contains(&version) {
            return Err(F.err(format!(
                "`policyFormatVersion` is {version}; the supported versions are 1 and 2"
            )));
        }
        if let Some(dup) = first_duplicate(paths.iter().map(|p| p.path.as_str())) {
            return Err(F.err(format!("duplicate included path `{}`", escape(dup))));
        }
        for p in &paths {
            if p.path == "/id" {
                if version < 2 {
                    return Err(F.err("`/id` can be encrypted only with `policyFormatVersion` 2"));
                }
                if p.encryption_type != EncryptionType::Deterministic {
                    return Err(F.err("`/id` must be encrypted with `Deterministic` encryption"));
                }
            }
        }
        Ok(ClientEncryptionPolicy {
            raw,
            version,
            paths,
        })
    }

    /// Parses a `clientEncryptionPolicy` object.
    ///
    /// Errors: [`Error::CosmosAeMetadata`] naming the field and the
    /// problem.
    pub fn parse(json: &str) -> crate::Result<ClientEncryptionPolicy> {
        let v: Json = serde_json::from_str(json).map_err(|e| {
            F.err(format!(
                "the policy is not valid JSON, or has a duplicate field: {e}"
            ))
        })?;
        Self::from_tree(v, "clientEncryptionPolicy")
    }

    /// Parses a container resource (its properties as the service returns
    /// them) and takes its `clientEncryptionPolicy`, checked against its
    /// `partitionKey.paths` as by [`check_partition_key_paths`](Self::check_partition_key_paths).
    pub fn from_container(json: &str) -> crate::Result<ClientEncryptionPolicy> {
        let v: Json = serde_json::from_str(json).map_err(|e| {
            F.err(format!(
                "the container properties are not valid JSON, or have a duplicate field: {e}"
            ))
        })?;
        let container = F.obj(&v, "container")?;
        let policy = Self::from_tree(
            F.req(container, "container", "clientEncryptionPolicy")?
                .clone(),
            "clientEncryptionPolicy",
        )?;
        let pk = F.obj(
            F.req(container, "container", "partitionKey")?,
            "partitionKey",
        )?;
        let pk_paths = match F.req(pk, "partitionKey", "paths")? {
            Json::Array(a) => a
                .iter()
                .map(|p| F.string(p, "partitionKey.paths[]"))
                .collect::<crate::Result<Vec<&str>>>()?,
            other => {
                return Err(F.err(format!(
                    "`partitionKey.paths` must be an array, not {}",
                    other.type_name()
                )))
            }
        };
        policy.check_partition_key_paths(&pk_paths)?;
        Ok(policy)
    }

    fn from_tree(v: Json, name: &str) -> crate::Result<ClientEncryptionPolicy> {
        let raw = match v {
            Json::Object(o) => o,
            other => {
                return Err(F.err(format!(
                    "`{name}` must be an object, not {}",
                    other.type_name()
                )))
            }
        };
        let version = match get(&raw, "policyFormatVersion") {
            None => 1,
            Some(v) => {
                let n = F.uint(v, "policyFormatVersion")?;
                u8::try_from(n).map_err(|_| {
                    F.err(format!(
                        "`policyFormatVersion` is {n}; the supported versions are 1 and 2"
                    ))
                })?
            }
        };
        let list = match F.req(&raw, name, "includedPaths")? {
            Json::Array(a) => a,
            other => {
                return Err(F.err(format!(
                    "`includedPaths` must be an array, not {}",
                    other.type_name()
                )))
            }
        };
        let mut paths = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let at = format!("includedPaths[{i}]");
            let o = F.obj(item, &at)?;
            let path = F.string(F.req(o, &at, "path")?, &format!("{at}.path"))?;
            check_path(path)?;
            let cek_id = F.string(
                F.req(o, &at, "clientEncryptionKeyId")?,
                &format!("{at}.clientEncryptionKeyId"),
            )?;
            let ty = F.string(
                F.req(o, &at, "encryptionType")?,
                &format!("{at}.encryptionType"),
            )?;
            let ty = EncryptionType::parse(ty).ok_or_else(|| {
                F.err(format!(
                    "`{at}.encryptionType` of `{}` must be `Deterministic` or `Randomized`",
                    escape(path)
                ))
            })?;
            let alg = F.string(
                F.req(o, &at, "encryptionAlgorithm")?,
                &format!("{at}.encryptionAlgorithm"),
            )?;
            if alg != ALGORITHM {
                return Err(F.err(format!(
                    "`{at}.encryptionAlgorithm` of `{}` must be `{ALGORITHM}`",
                    escape(path)
                )));
            }
            paths.push(IncludedPath::new(path, cek_id, ty)?);
        }
        Self::validated(raw, version, paths)
    }

    /// Checks the rule for encrypted partition keys: a partition key path
    /// (`/tenant`, or `/a/b`, whose top-level property `/a` is what counts)
    /// may be encrypted only with policy format version 2 and only
    /// deterministically. Call it with the container's
    /// `partitionKey.paths`.
    pub fn check_partition_key_paths(&self, pk_paths: &[&str]) -> crate::Result<()> {
        for pk in pk_paths {
            if let Some(p) = self.path(top_level(pk)) {
                if self.version < 2 {
                    return Err(F.err(format!(
                        "partition key path `{}` can be encrypted only with `policyFormatVersion` 2",
                        escape(pk)
                    )));
                }
                if p.encryption_type != EncryptionType::Deterministic {
                    return Err(F.err(format!(
                        "partition key path `{}` must be encrypted with `Deterministic` encryption",
                        escape(pk)
                    )));
                }
            }
        }
        Ok(())
    }

    /// `policyFormatVersion`: 1 or 2.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The encrypted paths, in policy order.
    pub fn paths(&self) -> &[IncludedPath] {
        &self.paths
    }

    /// The included path `path` (such as `/ssn`), if the policy encrypts it.
    pub fn path(&self, path: &str) -> Option<&IncludedPath> {
        self.paths.iter().find(|p| p.path == path)
    }

    /// The `clientEncryptionPolicy` JSON (compact, members in their
    /// original order, unknown fields kept).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Json::Object(self.raw.clone()))
            .expect("serializing a JSON tree cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"{"includedPaths":[
        {"path":"/ssn","clientEncryptionKeyId":"cek1","encryptionType":"Randomized","encryptionAlgorithm":"AEAD_AES_256_CBC_HMAC_SHA256"},
        {"path":"/id","clientEncryptionKeyId":"cek2","encryptionType":"Deterministic","encryptionAlgorithm":"AEAD_AES_256_CBC_HMAC_SHA256","extra":[1]}],
        "policyFormatVersion":2,"zeta":true}"#;

    /// Policies come from the service: their paths are escaped in errors.
    #[test]
    fn errors_escape_paths_from_the_service() {
        let hostile = r#"/a\u001b]0;t\u0007\u202e"#;
        let container = |path: &str, ty: &str, pk: &str| {
            format!(
                r#"{{"id":"c","partitionKey":{{"paths":["{pk}"]}},"clientEncryptionPolicy":{{"policyFormatVersion":1,"includedPaths":[{{"path":"{path}","clientEncryptionKeyId":"k","encryptionType":"{ty}","encryptionAlgorithm":"AEAD_AES_256_CBC_HMAC_SHA256"}}]}}}}"#
            )
        };
        for json in [
            container(hostile, "Bogus", "/pk"),
            container(&format!("{hostile}/b"), "Randomized", "/pk"),
            container(hostile, "Deterministic", hostile),
        ] {
            let e = ClientEncryptionPolicy::from_container(&json)
                .unwrap_err()
                .to_string();
            assert!(e.contains("\\u{1b}"), "{e}");
            assert!(
                !e.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{e:?}"
            );
        }
    }

    #[test]
    fn parses_and_keeps_unknown_fields() {
        let p = ClientEncryptionPolicy::parse(POLICY).unwrap();
        assert_eq!(p.version(), 2);
        assert_eq!(p.paths().len(), 2);
        let id = p.path("/id").unwrap();
        assert_eq!(id.property(), "id");
        assert_eq!(id.client_encryption_key_id(), "cek2");
        assert_eq!(id.encryption_type(), EncryptionType::Deterministic);
        let out = p.to_json();
        assert!(
            out.contains(r#""extra":[1]"#) && out.ends_with(r#""zeta":true}"#),
            "{out}"
        );
        assert_eq!(ClientEncryptionPolicy::parse(&out).unwrap(), p);
        let built = ClientEncryptionPolicy::new(2, p.paths().to_vec()).unwrap();
        assert_eq!(built.paths(), p.paths());
        assert_eq!(
            ClientEncryptionPolicy::parse(&built.to_json()).unwrap(),
            built
        );
    }

    #[test]
    fn sdk_rules() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "\"policyFormatVersion\":2",
                "\"policyFormatVersion\":3",
                "policyFormatVersion",
            ),
            (
                "\"policyFormatVersion\":2",
                "\"policyFormatVersion\":1",
                "/id",
            ),
            ("\"path\":\"/ssn\"", "\"path\":\"/a/b\"", "top-level"),
            ("\"path\":\"/ssn\"", "\"path\":\"/\"", "top-level"),
            ("\"path\":\"/ssn\"", "\"path\":\"ssn\"", "top-level"),
            ("\"path\":\"/id\"", "\"path\":\"/ssn\"", "duplicate"),
            ("\"Randomized\"", "\"random\"", "encryptionType"),
            ("\"cek1\"", "\"\"", "clientEncryptionKeyId"),
            ("\"cek1\"", "7", "clientEncryptionKeyId"),
            (
                "\"encryptionType\":\"Deterministic\"",
                "\"encryptionType\":\"Randomized\"",
                "/id",
            ),
            (
                "AEAD_AES_256_CBC_HMAC_SHA256\"}",
                "AES_GCM\"}",
                "encryptionAlgorithm",
            ),
            (
                "\"policyFormatVersion\":2",
                "\"policyFormatVersion\":2,\"policyFormatVersion\":2",
                "duplicate",
            ),
            ("{\"includedPaths\"", "{\"included\"", "includedPaths"),
        ];
        for (from, to, word) in cases {
            let j = POLICY.replacen(from, to, 1);
            assert_ne!(j, POLICY, "{from}");
            let e = ClientEncryptionPolicy::parse(&j).unwrap_err();
            assert!(matches!(e, Error::CosmosAeMetadata(_)));
            assert!(e.to_string().contains(word), "{to}: {e}");
        }
        // Absent version: 1 (so /id is refused).
        let j = POLICY.replace(",\n        \"policyFormatVersion\":2", "");
        assert!(ClientEncryptionPolicy::parse(&j).is_err());
    }

    #[test]
    fn hostile_paths_are_escaped_in_errors() {
        let h = crate::untrusted::hostile();
        let json = |s: &str| serde_json::to_string(s).unwrap();
        let path = json(&format!("/{h}"));
        let cases = [
            POLICY.replacen(r#""/ssn""#, &json(&format!("/a/{h}")), 1),
            POLICY
                .replacen(r#""/ssn""#, &path, 1)
                .replacen(r#""Randomized""#, r#""x""#, 1),
            POLICY.replacen(r#""/ssn""#, &path, 1).replacen(
                "AEAD_AES_256_CBC_HMAC_SHA256\"}",
                "x\"}",
                1,
            ),
            POLICY
                .replacen(r#""/ssn""#, &path, 1)
                .replacen(r#""/id""#, &path, 1),
        ];
        for j in cases {
            let e = ClientEncryptionPolicy::parse(&j).unwrap_err();
            assert!(matches!(e, Error::CosmosAeMetadata(_)), "{e}");
            crate::untrusted::assert_tame(&e.to_string());
        }
        let p = ClientEncryptionPolicy::parse(&POLICY.replacen(r#""/ssn""#, &path, 1)).unwrap();
        let e = p
            .check_partition_key_paths(&[&format!("/{h}/x")])
            .unwrap_err();
        crate::untrusted::assert_tame(&e.to_string());
    }

    #[test]
    fn partition_keys() {
        let p = ClientEncryptionPolicy::parse(POLICY).unwrap();
        p.check_partition_key_paths(&["/id"]).unwrap();
        p.check_partition_key_paths(&["/tenant", "/other/x"])
            .unwrap();
        let e = p.check_partition_key_paths(&["/ssn/inner"]).unwrap_err();
        assert!(e.to_string().contains("Deterministic"), "{e}");
        let det = ClientEncryptionPolicy::new(
            1,
            [IncludedPath::new("/pk", "c", EncryptionType::Deterministic).unwrap()],
        )
        .unwrap();
        let e = det.check_partition_key_paths(&["/pk"]).unwrap_err();
        assert!(e.to_string().contains("policyFormatVersion"), "{e}");
        assert_eq!(top_level("/a/b/c"), "/a");
        assert_eq!(top_level("/a"), "/a");

        let container = format!(
            r#"{{"id":"c","partitionKey":{{"paths":["/ssn"],"kind":"Hash"}},"clientEncryptionPolicy":{POLICY}}}"#
        );
        assert!(ClientEncryptionPolicy::from_container(&container).is_err());
        let container = container.replace(r#"["/ssn"]"#, r#"["/id"]"#);
        assert_eq!(
            ClientEncryptionPolicy::from_container(&container).unwrap(),
            p
        );
    }
}
