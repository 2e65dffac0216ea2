//! The client encryption key (CEK) resource: a database resource holding
//! a 32-byte root key wrapped by a key-encryption key (KEK).
//!
//! ```json
//! {"id": "cek1",
//!  "encryptionAlgorithm": "AEAD_AES_256_CBC_HMAC_SHA256",
//!  "keyWrapMetadata": {"type": "AZURE_KEY_VAULT", "name": "cmk",
//!                      "value": "https://myvault.vault.azure.net/keys/cmk/0123…",
//!                      "algorithm": "RSA-OAEP"},
//!  "wrappedDataEncryptionKey": "<base64 of the wrapped root key>",
//!  "_rid": "…", "_etag": "…", "_ts": 1700000000}
//! ```
//!
//! The stored member is `keyWrapMetadata` (the SDKs' object models call it
//! `encryptionKeyWrapMetadata`, but that name is never on the wire); the
//! SDKs write the members in the order above. Rules of
//! [`ClientEncryptionKey::parse`]:
//!
//! | field | rule |
//! |---|---|
//! | `id` | 1 to 255 characters, none of `/ \ ? #` (a Cosmos DB resource id) |
//! | `encryptionAlgorithm` | `AEAD_AES_256_CBC_HMAC_SHA256` |
//! | `wrappedDataEncryptionKey` | standard base64 (with padding) of 1 to 1024 bytes |
//! | `keyWrapMetadata.type` | a non-empty string: `AZURE_KEY_VAULT` for Key Vault and Managed HSM keys (the SDKs' resolver name), anything else for other key stores |
//! | `keyWrapMetadata.name` | a string (a label; not used to find the key) |
//! | `keyWrapMetadata.value` | a non-empty string: the KEK's id, resolved through a [`KeyResolver`](crate::KeyResolver) allow-list (for Key Vault, the versioned key URL) |
//! | `keyWrapMetadata.algorithm` | `RSA-OAEP` (what the SDKs write and read), or `RSA-OAEP-256`, `A256KW`, `A256KWP` (readable only by this crate) |
//!
//! Every other member (`_rid`, `_etag`, `_self`, `_ts`, anything new) is
//! kept in place, so a rewrap changes only `keyWrapMetadata` and
//! `wrappedDataEncryptionKey`. Duplicate member names are refused.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::json_tree::{get, set, Json};
use crate::kek::WrapAlgorithm;
use crate::untrusted::escape;

use super::policy::{ALGORITHM, F};

/// The `keyWrapMetadata.type` of Key Vault and Managed HSM keys: the name
/// of the SDKs' `AzureKeyVault` key resolver.
pub const AZURE_KEY_VAULT: &str = "AZURE_KEY_VAULT";

/// The `keyWrapMetadata.type` this crate writes for keys that are not in
/// Key Vault (local JWK files, PKCS#11 HSMs). The SDKs do not interpret
/// it; a .NET client must be configured with a key resolver of this name.
pub const CMK_ENVELOPE: &str = "CMK_ENVELOPE";

/// How the root key is wrapped: which KEK, and with which algorithm. Not
/// secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWrapMetadata {
    kind: String,
    name: String,
    value: String,
    algorithm: WrapAlgorithm,
}

impl KeyWrapMetadata {
    /// The metadata of a root key wrapped by the KEK `kek_id` with `alg`:
    /// `type` [`AZURE_KEY_VAULT`] and `name` the key's name for a Key
    /// Vault or Managed HSM key URL (`https://…/keys/NAME/VERSION`),
    /// otherwise `type` [`CMK_ENVELOPE`] and `name` the id itself.
    pub(crate) fn for_kek(kek_id: &str, algorithm: WrapAlgorithm) -> KeyWrapMetadata {
        let key_vault_name = kek_id
            .strip_prefix("https://")
            .and_then(|rest| rest.split_once("/keys/"))
            .and_then(|(_, tail)| tail.split('/').next())
            .filter(|n| !n.is_empty());
        let (kind, name) = match key_vault_name {
            Some(n) => (AZURE_KEY_VAULT, n),
            None => (CMK_ENVELOPE, kek_id),
        };
        KeyWrapMetadata {
            kind: kind.to_owned(),
            name: name.to_owned(),
            value: kek_id.to_owned(),
            algorithm,
        }
    }

    /// `type`: the key resolver's name.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// `name`: a label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `value`: the KEK's id (a versioned Key Vault key URL, a JWK `kid`,
    /// a PKCS#11 URI).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `algorithm`: how the KEK wraps the root key.
    pub fn algorithm(&self) -> WrapAlgorithm {
        self.algorithm
    }

    fn to_json(&self) -> Json {
        let s = |x: &str| Json::String(x.to_owned());
        Json::Object(vec![
            ("type".into(), s(&self.kind)),
            ("name".into(), s(&self.name)),
            ("value".into(), s(&self.value)),
            ("algorithm".into(), s(self.algorithm.jose_name())),
        ])
    }

    fn parse(v: &Json) -> crate::Result<KeyWrapMetadata> {
        const AT: &str = "keyWrapMetadata";
        let o = F.obj(v, AT)?;
        let kind = F.string(F.req(o, AT, "type")?, "keyWrapMetadata.type")?;
        let name = F.string(F.req(o, AT, "name")?, "keyWrapMetadata.name")?;
        let value = F.string(F.req(o, AT, "value")?, "keyWrapMetadata.value")?;
        let alg = F.string(F.req(o, AT, "algorithm")?, "keyWrapMetadata.algorithm")?;
        if kind.is_empty() {
            return Err(F.err("`keyWrapMetadata.type` must not be empty"));
        }
        if value.is_empty() || value.len() > 2048 {
            return Err(F.err("`keyWrapMetadata.value` must be 1 to 2048 bytes"));
        }
        let algorithm = WrapAlgorithm::from_jose_name(alg).ok_or_else(|| {
            F.err(format!(
                "unsupported `keyWrapMetadata.algorithm` `{}` (supported: RSA-OAEP, RSA-OAEP-256, A256KW, A256KWP)",
                escape(alg)
            ))
        })?;
        Ok(KeyWrapMetadata {
            kind: kind.to_owned(),
            name: name.to_owned(),
            value: value.to_owned(),
            algorithm,
        })
    }
}

/// Checks a Cosmos DB resource id: 1 to 255 characters, none of `/ \ ? #`.
pub(crate) fn check_resource_id(id: &str, what: &str) -> crate::Result<()> {
    if id.is_empty() || id.chars().count() > 255 || id.contains(['/', '\\', '?', '#']) {
        return Err(F.err(format!(
            "{what} must be 1 to 255 characters, none of `/`, `\\`, `?`, `#`"
        )));
    }
    Ok(())
}

/// A client encryption key resource (see the module docs for the rules).
/// Holds only the **wrapped** root key: parsing, printing and cloning it
/// handle no secret.
#[derive(Clone, PartialEq)]
pub struct ClientEncryptionKey {
    raw: Vec<(String, Json)>,
    id: String,
    wrapped: Vec<u8>,
    metadata: KeyWrapMetadata,
}

impl fmt::Debug for ClientEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientEncryptionKey")
            .field("id", &self.id)
            .field("key_wrap_metadata", &self.metadata)
            .field("wrapped_len", &self.wrapped.len())
            .finish_non_exhaustive()
    }
}

impl ClientEncryptionKey {
    /// Parses a client encryption key resource.
    ///
    /// Errors: [`Error::CosmosAeMetadata`](crate::Error::CosmosAeMetadata)
    /// naming the field and the problem.
    pub fn parse(json: &str) -> crate::Result<ClientEncryptionKey> {
        let v: Json = serde_json::from_str(json).map_err(|e| {
            F.err(format!(
                "the client encryption key is not valid JSON, or has a duplicate field: {e}"
            ))
        })?;
        let raw = match v {
            Json::Object(o) => o,
            other => {
                return Err(F.err(format!(
                    "a client encryption key must be a JSON object, not {}",
                    other.type_name()
                )))
            }
        };
        const AT: &str = "clientEncryptionKey";
        let id = F.string(F.req(&raw, AT, "id")?, "id")?;
        check_resource_id(id, "`id`")?;
        let alg = F.string(
            F.req(&raw, AT, "encryptionAlgorithm")?,
            "encryptionAlgorithm",
        )?;
        if alg != ALGORITHM {
            return Err(F.err(format!(
                "unsupported `encryptionAlgorithm` `{}` (supported: {ALGORITHM})",
                escape(alg)
            )));
        }
        let wrapped = F.string(
            F.req(&raw, AT, "wrappedDataEncryptionKey")?,
            "wrappedDataEncryptionKey",
        )?;
        if !crate::util::base64_fits(wrapped.len(), 1024) {
            // Refused for its length before it is decoded.
            return Err(F.err("`wrappedDataEncryptionKey` must be 1 to 1024 bytes"));
        }
        let wrapped = STANDARD
            .decode(wrapped)
            .map_err(|_| F.err("`wrappedDataEncryptionKey` is not valid base64"))?;
        if wrapped.is_empty() || wrapped.len() > 1024 {
            return Err(F.err("`wrappedDataEncryptionKey` must be 1 to 1024 bytes"));
        }
        let metadata = match get(&raw, "keyWrapMetadata") {
            Some(m) => KeyWrapMetadata::parse(m)?,
            None if get(&raw, "encryptionKeyWrapMetadata").is_some() => {
                return Err(F.err(
                    "`clientEncryptionKey.keyWrapMetadata` is missing; `encryptionKeyWrapMetadata` is the SDKs' in-memory name, the stored resource has `keyWrapMetadata`",
                ))
            }
            None => return Err(F.err("`clientEncryptionKey.keyWrapMetadata` is missing")),
        };
        Ok(ClientEncryptionKey {
            id: id.to_owned(),
            wrapped,
            metadata,
            raw,
        })
    }

    /// A new resource, members in the SDKs' order.
    pub(crate) fn new(
        id: &str,
        metadata: KeyWrapMetadata,
        wrapped: Vec<u8>,
    ) -> ClientEncryptionKey {
        let raw = vec![
            ("id".to_owned(), Json::String(id.to_owned())),
            (
                "encryptionAlgorithm".to_owned(),
                Json::String(ALGORITHM.to_owned()),
            ),
            ("keyWrapMetadata".to_owned(), metadata.to_json()),
            (
                "wrappedDataEncryptionKey".to_owned(),
                Json::String(STANDARD.encode(&wrapped)),
            ),
        ];
        ClientEncryptionKey {
            raw,
            id: id.to_owned(),
            wrapped,
            metadata,
        }
    }

    /// The same resource with another wrapped root key; every other member
    /// stays as it was, in place.
    pub(crate) fn with_wrapped_key(
        &self,
        metadata: KeyWrapMetadata,
        wrapped: Vec<u8>,
    ) -> ClientEncryptionKey {
        let mut raw = self.raw.clone();
        set(&mut raw, "keyWrapMetadata", metadata.to_json());
        set(
            &mut raw,
            "wrappedDataEncryptionKey",
            Json::String(STANDARD.encode(&wrapped)),
        );
        ClientEncryptionKey {
            raw,
            id: self.id.clone(),
            wrapped,
            metadata,
        }
    }

    /// The resource JSON (compact, members in their original order).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Json::Object(self.raw.clone()))
            .expect("serializing a JSON tree cannot fail")
    }

    /// `id`: the name the policy's `clientEncryptionKeyId` refers to.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `keyWrapMetadata`.
    pub fn key_wrap_metadata(&self) -> &KeyWrapMetadata {
        &self.metadata
    }

    /// `wrappedDataEncryptionKey`, decoded: the root key wrapped by the
    /// KEK (ciphertext, not secret).
    pub fn wrapped_key(&self) -> &[u8] {
        &self.wrapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `@azure/cosmos` 4.10.1 writes and the service returns.
    const SDK: &str = r#"{"id":"cek1","encryptionAlgorithm":"AEAD_AES_256_CBC_HMAC_SHA256","keyWrapMetadata":{"type":"AZURE_KEY_VAULT","name":"cmk","value":"https://myvault.vault.azure.net/keys/cmk/0123456789abcdef","algorithm":"RSA-OAEP"},"wrappedDataEncryptionKey":"AAECAw==","_rid":"abc=","_etag":"\"00\"","_ts":1700000000}"#;

    #[test]
    fn parses_sdk_resource_and_round_trips() {
        let c = ClientEncryptionKey::parse(SDK).unwrap();
        assert_eq!(c.id(), "cek1");
        assert_eq!(c.wrapped_key(), &[0, 1, 2, 3]);
        let m = c.key_wrap_metadata();
        assert_eq!(
            (m.kind(), m.name(), m.algorithm()),
            ("AZURE_KEY_VAULT", "cmk", WrapAlgorithm::RsaOaep)
        );
        assert_eq!(c.to_json(), SDK);
        let r = c.with_wrapped_key(
            KeyWrapMetadata::for_kek("local-kid", WrapAlgorithm::A256Kw),
            vec![9; 40],
        );
        let out = r.to_json();
        assert!(
            out.starts_with(r#"{"id":"cek1","encryptionAlgorithm""#),
            "{out}"
        );
        assert!(out.contains(r#""keyWrapMetadata":{"type":"CMK_ENVELOPE","name":"local-kid","value":"local-kid","algorithm":"A256KW"}"#), "{out}");
        assert!(
            out.ends_with(r#""_rid":"abc=","_etag":"\"00\"","_ts":1700000000}"#),
            "{out}"
        );
        assert_eq!(ClientEncryptionKey::parse(&out).unwrap(), r);
        // Debug shows no key bytes.
        assert!(!format!("{c:?}").contains("AAECAw"));
    }

    #[test]
    fn hostile_values_are_escaped_in_errors() {
        let h = serde_json::to_string(&crate::untrusted::hostile()).unwrap();
        for from in [r#""RSA-OAEP""#, r#""AEAD_AES_256_CBC_HMAC_SHA256""#] {
            let e = ClientEncryptionKey::parse(&SDK.replacen(from, &h, 1)).unwrap_err();
            assert!(matches!(e, crate::Error::CosmosAeMetadata(_)));
            crate::untrusted::assert_tame(&e.to_string());
        }
        // An over-long wrapped key is refused for its length, undecoded.
        let long = format!("\"{}!\"", "A".repeat(3_000));
        let e = ClientEncryptionKey::parse(&SDK.replacen(r#""AAECAw==""#, &long, 1)).unwrap_err();
        assert!(e.to_string().contains("1 to 1024 bytes"), "{e}");
    }

    #[test]
    fn metadata_for_key_vault_urls() {
        let m = KeyWrapMetadata::for_kek(
            "https://h.managedhsm.azure.net/keys/k1/v2",
            WrapAlgorithm::RsaOaep,
        );
        assert_eq!((m.kind(), m.name()), (AZURE_KEY_VAULT, "k1"));
        let m = KeyWrapMetadata::for_kek("pkcs11:token=t;object=o", WrapAlgorithm::RsaOaep);
        assert_eq!(
            (m.kind(), m.name()),
            (CMK_ENVELOPE, "pkcs11:token=t;object=o")
        );
    }

    #[test]
    fn strictness_names_fields() {
        let cases: &[(&str, &str, &str)] = &[
            (r#""id":"cek1""#, r#""id":"a/b""#, "`id`"),
            (r#""id":"cek1""#, r#""id":"""#, "`id`"),
            (r#""id":"cek1","#, "", "clientEncryptionKey.id"),
            (
                "AEAD_AES_256_CBC_HMAC_SHA256",
                "AES_GCM",
                "encryptionAlgorithm",
            ),
            ("AAECAw==", "AAECAw", "wrappedDataEncryptionKey"),
            ("AAECAw==", "", "wrappedDataEncryptionKey"),
            (r#""RSA-OAEP""#, r#""RSA1_5""#, "keyWrapMetadata.algorithm"),
            (
                r#""type":"AZURE_KEY_VAULT""#,
                r#""type":"""#,
                "keyWrapMetadata.type",
            ),
            (r#""type":"AZURE_KEY_VAULT","#, "", "keyWrapMetadata.type"),
            (r#""name":"cmk""#, r#""name":1"#, "keyWrapMetadata.name"),
            (
                "\"keyWrapMetadata\"",
                "\"encryptionKeyWrapMetadata\"",
                "in-memory name",
            ),
            ("\"_ts\"", "\"_etag\":1,\"_ts\"", "duplicate"),
            ("{\"id\"", "[{\"id\"", "JSON"),
        ];
        for (from, to, word) in cases {
            let j = SDK.replacen(from, to, 1);
            assert_ne!(j, SDK, "{from}");
            let e = ClientEncryptionKey::parse(&j).unwrap_err();
            assert!(matches!(e, crate::Error::CosmosAeMetadata(_)));
            assert!(e.to_string().contains(word), "{to}: {e}");
        }
    }
}
