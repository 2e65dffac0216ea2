//! The `encryptiondata` metadata value: strict parsing, unknown fields kept
//! in order, serialization.

use std::fmt;

use crate::error::Error;
use crate::json_tree::{get, set, Fields, Json};
use crate::kek::WrapAlgorithm;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The region data length of protocol 2.0, and the default of 2.1: 4 MiB.
pub const DEFAULT_REGION_DATA_LEN: u64 = 4 * 1024 * 1024;
/// The smallest region data length this crate reads or writes (16 bytes).
pub const MIN_REGION_DATA_LEN: u64 = 16;
/// The largest region data length this crate reads or writes (64 MiB). A
/// decrypting reader holds one region in memory, so this bounds its memory
/// whatever untrusted metadata claims.
pub const MAX_REGION_DATA_LEN: u64 = 64 * 1024 * 1024;
/// The nonce length of every v2 region.
pub(crate) const NONCE_LEN: usize = 12;
/// The tag length of every v2 region.
pub(crate) const TAG_LEN: usize = 16;

fn bad(msg: impl Into<String>) -> Error {
    Error::CseMetadata(msg.into())
}

/// Field accessors whose errors are [`Error::CseMetadata`].
const F: Fields = Fields::new(Error::CseMetadata);

/// The `EncryptionAgent.Protocol` of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// `1.0`: AES-256-CBC, unauthenticated (CVE-2022-30187). This crate
    /// never writes it, and refuses to decrypt it.
    V1_0,
    /// `2.0`: AES-256-GCM regions of 4 MiB.
    V2_0,
    /// `2.1`: AES-256-GCM regions of a configurable size.
    V2_1,
}

impl Protocol {
    /// The metadata string: `1.0`, `2.0` or `2.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V1_0 => "1.0",
            Protocol::V2_0 => "2.0",
            Protocol::V2_1 => "2.1",
        }
    }

    fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "1.0" => Protocol::V1_0,
            "2.0" => Protocol::V2_0,
            "2.1" => Protocol::V2_1,
            _ => return None,
        })
    }

    /// The 8 bytes that precede the content key inside the wrapped key:
    /// the protocol string in UTF-8, zero-padded.
    pub fn wrapped_prefix(self) -> [u8; 8] {
        let mut p = [0u8; 8];
        p[..3].copy_from_slice(self.as_str().as_bytes());
        p
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parsed `encryptiondata` value of one blob.
///
/// [`EncryptionData::parse`] is strict about every field this crate
/// interprets and keeps every other field, in order, so that
/// [`EncryptionData::to_json`] after a key rotation changes only the
/// wrapped key.
///
/// | field | rule |
/// |---|---|
/// | `WrappedContentKey` | object: `KeyId` (non-empty string), `EncryptedKey` (standard base64), `Algorithm` (`A256KW`, `RSA-OAEP` or `RSA-OAEP-256`) |
/// | `EncryptionAgent` | object: `Protocol` (`2.0`, `2.1`; `1.0` parses, and is decrypted only through the insecure opt-in [`InsecureV1`](super::InsecureV1)), `EncryptionAlgorithm` (`AES_GCM_256` for 2.x, `AES_CBC_256` for 1.0) |
/// | `EncryptedRegionInfo` | required for 2.x: `DataLength` (4 MiB for 2.0, 16 B to 64 MiB for 2.1), `NonceLength` (12) |
/// | `KeyWrappingMetadata` | optional object; `EncryptionLibrary`, if present, a string |
/// | `EncryptionMode` | optional (the Python SDK's lower-level writers omit it); if present, `FullBlob` |
/// | `ContentEncryptionIV` | 1.0 only (16 bytes, base64); `null` or absent for 2.x |
///
/// Duplicate member names anywhere are refused.
#[derive(Clone, PartialEq)]
pub struct EncryptionData {
    raw: Vec<(String, Json)>,
    key_id: String,
    encrypted_key: Vec<u8>,
    algorithm: WrapAlgorithm,
    protocol: Protocol,
    region_data_len: u64,
    content_encryption_iv: Option<[u8; 16]>,
}

impl fmt::Debug for EncryptionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionData")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .field("protocol", &self.protocol)
            .field("region_data_len", &self.region_data_len)
            .field("encrypted_key_len", &self.encrypted_key.len())
            .finish_non_exhaustive()
    }
}

impl EncryptionData {
    /// Parses the `encryptiondata` metadata value.
    ///
    /// Errors: [`Error::CseMetadata`] naming the field and the problem.
    pub fn parse(json: &str) -> crate::Result<EncryptionData> {
        let v: Json = serde_json::from_str(json)
            .map_err(|e| bad(format!("not valid JSON, or a duplicate field: {e}")))?;
        let raw = match v {
            Json::Object(o) => o,
            other => {
                return Err(bad(format!(
                    "the value must be a JSON object, not {}",
                    other.type_name()
                )))
            }
        };

        let agent = F.obj(
            F.req(&raw, "encryptiondata", "EncryptionAgent")?,
            "EncryptionAgent",
        )?;
        let p = F.string(
            F.req(agent, "EncryptionAgent", "Protocol")?,
            "EncryptionAgent.Protocol",
        )?;
        let protocol = Protocol::parse(p).ok_or_else(|| {
            bad(format!(
                "unsupported `EncryptionAgent.Protocol` \"{}\" (known: 1.0, 2.0, 2.1)",
                crate::untrusted::escape(p)
            ))
        })?;
        let alg = F.string(
            F.req(agent, "EncryptionAgent", "EncryptionAlgorithm")?,
            "EncryptionAgent.EncryptionAlgorithm",
        )?;
        let expected_alg = if protocol == Protocol::V1_0 {
            "AES_CBC_256"
        } else {
            "AES_GCM_256"
        };
        if alg != expected_alg {
            return Err(bad(format!(
                "`EncryptionAgent.EncryptionAlgorithm` is {alg:?}; protocol {protocol} needs {expected_alg:?}"
            )));
        }

        let wck = F.obj(
            F.req(&raw, "encryptiondata", "WrappedContentKey")?,
            "WrappedContentKey",
        )?;
        let key_id = F.string(
            F.req(wck, "WrappedContentKey", "KeyId")?,
            "WrappedContentKey.KeyId",
        )?;
        if key_id.is_empty() || key_id.len() > 2048 {
            return Err(bad("`WrappedContentKey.KeyId` must be 1 to 2048 bytes"));
        }
        let ek = F.string(
            F.req(wck, "WrappedContentKey", "EncryptedKey")?,
            "WrappedContentKey.EncryptedKey",
        )?;
        let encrypted_key = STANDARD
            .decode(ek)
            .map_err(|_| bad("`WrappedContentKey.EncryptedKey` is not valid base64"))?;
        if encrypted_key.is_empty() || encrypted_key.len() > 1024 {
            return Err(bad(
                "`WrappedContentKey.EncryptedKey` must be 1 to 1024 bytes",
            ));
        }
        let a = F.string(
            F.req(wck, "WrappedContentKey", "Algorithm")?,
            "WrappedContentKey.Algorithm",
        )?;
        let algorithm = match WrapAlgorithm::from_jose_name(a) {
            Some(
                w @ (WrapAlgorithm::A256Kw | WrapAlgorithm::RsaOaep | WrapAlgorithm::RsaOaep256),
            ) => w,
            _ => {
                return Err(bad(format!(
                    "unsupported `WrappedContentKey.Algorithm` \"{}\" (supported: A256KW, RSA-OAEP, RSA-OAEP-256)",
                    crate::untrusted::escape(a)
                )))
            }
        };

        let mut content_encryption_iv = None;
        let region_data_len = match protocol {
            Protocol::V1_0 => {
                let iv = F.string(
                    F.req(&raw, "encryptiondata", "ContentEncryptionIV")?,
                    "ContentEncryptionIV",
                )?;
                let iv: [u8; 16] = STANDARD
                    .decode(iv)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| bad("`ContentEncryptionIV` must be 16 bytes in base64"))?;
                content_encryption_iv = Some(iv);
                0
            }
            Protocol::V2_0 | Protocol::V2_1 => {
                match get(&raw, "ContentEncryptionIV") {
                    None | Some(Json::Null) => {}
                    Some(_) => {
                        return Err(bad(format!(
                            "`ContentEncryptionIV` belongs to protocol 1.0, not {protocol}"
                        )))
                    }
                }
                let info = F.obj(
                    F.req(&raw, "encryptiondata", "EncryptedRegionInfo")?,
                    "EncryptedRegionInfo",
                )?;
                let dl = F.uint(
                    F.req(info, "EncryptedRegionInfo", "DataLength")?,
                    "EncryptedRegionInfo.DataLength",
                )?;
                let nl = F.uint(
                    F.req(info, "EncryptedRegionInfo", "NonceLength")?,
                    "EncryptedRegionInfo.NonceLength",
                )?;
                if nl != NONCE_LEN as u64 {
                    return Err(bad(format!(
                        "`EncryptedRegionInfo.NonceLength` is {nl}, must be 12"
                    )));
                }
                if protocol == Protocol::V2_0 && dl != DEFAULT_REGION_DATA_LEN {
                    return Err(bad(format!(
                        "`EncryptedRegionInfo.DataLength` is {dl}; protocol 2.0 uses 4194304"
                    )));
                }
                if !(MIN_REGION_DATA_LEN..=MAX_REGION_DATA_LEN).contains(&dl) {
                    return Err(bad(format!(
                        "`EncryptedRegionInfo.DataLength` is {dl}, outside {MIN_REGION_DATA_LEN}..={MAX_REGION_DATA_LEN}"
                    )));
                }
                dl
            }
        };

        if let Some(kwm) = get(&raw, "KeyWrappingMetadata") {
            let kwm = F.obj(kwm, "KeyWrappingMetadata")?;
            if let Some(lib) = get(kwm, "EncryptionLibrary") {
                F.string(lib, "KeyWrappingMetadata.EncryptionLibrary")?;
            }
        }
        if let Some(mode) = get(&raw, "EncryptionMode") {
            let mode = F.string(mode, "EncryptionMode")?;
            if mode != "FullBlob" {
                return Err(bad(format!(
                    "`EncryptionMode` is \"{}\"; only \"FullBlob\" is supported",
                    crate::untrusted::escape(mode)
                )));
            }
        }

        Ok(EncryptionData {
            key_id: key_id.to_owned(),
            encrypted_key,
            algorithm,
            protocol,
            region_data_len,
            content_encryption_iv,
            raw,
        })
    }

    /// Builds the metadata of a new v2 blob, fields in the order the SDKs
    /// write them.
    pub(crate) fn new_v2(
        protocol: Protocol,
        region_data_len: u64,
        key_id: String,
        algorithm: WrapAlgorithm,
        encrypted_key: Vec<u8>,
    ) -> EncryptionData {
        let s = |x: &str| Json::String(x.to_owned());
        let raw = vec![
            (
                "WrappedContentKey".to_owned(),
                Json::Object(vec![
                    ("KeyId".to_owned(), s(&key_id)),
                    (
                        "EncryptedKey".to_owned(),
                        s(&STANDARD.encode(&encrypted_key)),
                    ),
                    ("Algorithm".to_owned(), s(algorithm.jose_name())),
                ]),
            ),
            (
                "EncryptionAgent".to_owned(),
                Json::Object(vec![
                    ("Protocol".to_owned(), s(protocol.as_str())),
                    ("EncryptionAlgorithm".to_owned(), s("AES_GCM_256")),
                ]),
            ),
            (
                "EncryptedRegionInfo".to_owned(),
                Json::Object(vec![
                    (
                        "DataLength".to_owned(),
                        Json::Number(region_data_len.into()),
                    ),
                    (
                        "NonceLength".to_owned(),
                        Json::Number((NONCE_LEN as u64).into()),
                    ),
                ]),
            ),
            (
                "KeyWrappingMetadata".to_owned(),
                Json::Object(vec![(
                    "EncryptionLibrary".to_owned(),
                    s(concat!("Rust cmk-envelope ", env!("CARGO_PKG_VERSION"))),
                )]),
            ),
            ("EncryptionMode".to_owned(), s("FullBlob")),
        ];
        EncryptionData {
            raw,
            key_id,
            encrypted_key,
            algorithm,
            protocol,
            region_data_len,
            content_encryption_iv: None,
        }
    }

    /// The same metadata with another wrapped content key; every other
    /// field, known or unknown, stays as it was, in place.
    pub(crate) fn with_wrapped_key(
        &self,
        key_id: String,
        algorithm: WrapAlgorithm,
        encrypted_key: Vec<u8>,
    ) -> EncryptionData {
        let mut raw = self.raw.clone();
        if let Some((_, Json::Object(wck))) = raw.iter_mut().find(|(k, _)| k == "WrappedContentKey")
        {
            set(wck, "KeyId", Json::String(key_id.clone()));
            set(
                wck,
                "EncryptedKey",
                Json::String(STANDARD.encode(&encrypted_key)),
            );
            set(wck, "Algorithm", Json::String(algorithm.jose_name().into()));
        }
        EncryptionData {
            raw,
            key_id,
            encrypted_key,
            algorithm,
            protocol: self.protocol,
            region_data_len: self.region_data_len,
            content_encryption_iv: self.content_encryption_iv,
        }
    }

    /// The JSON to store as the blob's `encryptiondata` metadata value
    /// (compact, members in their original order).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Json::Object(self.raw.clone()))
            .expect("serializing a JSON tree cannot fail")
    }

    /// `WrappedContentKey.KeyId`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `WrappedContentKey.Algorithm`.
    pub fn algorithm(&self) -> WrapAlgorithm {
        self.algorithm
    }

    /// `WrappedContentKey.EncryptedKey`, decoded.
    pub fn encrypted_key(&self) -> &[u8] {
        &self.encrypted_key
    }

    /// `EncryptionAgent.Protocol`.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// `EncryptedRegionInfo.DataLength` (0 for protocol 1.0).
    pub fn region_data_len(&self) -> u64 {
        self.region_data_len
    }

    /// `ContentEncryptionIV`, decoded: the AES-CBC IV of a protocol 1.0
    /// blob (`None` for 2.x). Not secret.
    pub fn content_encryption_iv(&self) -> Option<&[u8; 16]> {
        self.content_encryption_iv.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PY_HEAD: &str = r#"{"WrappedContentKey": {"KeyId": "k1", "EncryptedKey": ""#;
    const PY_TAIL: &str = r#"", "Algorithm": "A256KW"}, "EncryptionAgent": {"Protocol": "2.0", "EncryptionAlgorithm": "AES_GCM_256"}, "EncryptedRegionInfo": {"DataLength": 4194304, "NonceLength": 12}, "KeyWrappingMetadata": {"EncryptionLibrary": "Python 12.31.1"}, "EncryptionMode": "FullBlob"}"#;

    /// Metadata as the Python SDK writes it (a 40-byte wrapped key).
    fn py() -> String {
        format!("{PY_HEAD}{}{PY_TAIL}", STANDARD.encode([0u8; 40]))
    }

    #[test]
    fn parses_python_metadata() {
        let m = EncryptionData::parse(&py()).unwrap();
        assert_eq!(m.key_id(), "k1");
        assert_eq!(m.protocol(), Protocol::V2_0);
        assert_eq!(m.algorithm(), WrapAlgorithm::A256Kw);
        assert_eq!(m.region_data_len(), 4 << 20);
        assert_eq!(m.encrypted_key().len(), 40);
        let back = EncryptionData::parse(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn unknown_fields_survive_in_order() {
        let j = py()
            .replace(
                "\"EncryptionMode\"",
                "\"Zeta\": [1, {\"b\": 2, \"a\": null}], \"EncryptionMode\"",
            )
            .replace(
                "\"Algorithm\": \"A256KW\"}",
                "\"Algorithm\": \"A256KW\", \"Extra\": true}",
            );
        let m = EncryptionData::parse(&j).unwrap();
        let r = m.with_wrapped_key("k2".into(), WrapAlgorithm::RsaOaep, vec![1; 384]);
        let out = r.to_json();
        assert!(
            out.contains(r#""Zeta":[1,{"b":2,"a":null}],"EncryptionMode":"FullBlob""#),
            "{out}"
        );
        assert!(
            out.contains(r#""KeyId":"k2""#)
                && out.contains(r#""Algorithm":"RSA-OAEP","Extra":true}"#),
            "{out}"
        );
        assert!(out.starts_with(r#"{"WrappedContentKey":"#));
    }

    #[test]
    fn strictness() {
        let cases: &[(&str, &str, &str)] = &[
            ("\"2.0\"", "\"3.0\"", "Protocol"),
            ("\"AES_GCM_256\"", "\"AES_CBC_256\"", "EncryptionAlgorithm"),
            ("\"FullBlob\"", "\"Partial\"", "EncryptionMode"),
            ("\"A256KW\"", "\"A256KWP\"", "Algorithm"),
            ("\"NonceLength\": 12", "\"NonceLength\": 16", "NonceLength"),
            ("4194304", "1024", "DataLength"),
            ("4194304", "\"4194304\"", "DataLength"),
            ("\"KeyId\": \"k1\"", "\"KeyId\": \"\"", "KeyId"),
            ("\"KeyId\": \"k1\",", "", "KeyId"),
            ("AAAA==", "AA!A==", "EncryptedKey"),
            (
                "\"EncryptionMode\"",
                "\"EncryptionMode\": \"FullBlob\", \"EncryptionMode\"",
                "duplicate",
            ),
            ("{\"WrappedContentKey\"", "[{\"WrappedContentKey\"", "JSON"),
        ];
        for (from, to, word) in cases {
            let j = py().replacen(from, to, 1);
            assert_ne!(j, py());
            let e = EncryptionData::parse(&j).unwrap_err().to_string();
            assert!(e.contains(word), "{to}: {e}");
        }
        // 2.1 may choose its region size; 2.0 may not.
        let j = py()
            .replace("\"2.0\"", "\"2.1\"")
            .replace("4194304", "1024");
        assert_eq!(EncryptionData::parse(&j).unwrap().region_data_len(), 1024);
        let j = py().replace(", \"EncryptionMode\": \"FullBlob\"", "");
        assert!(EncryptionData::parse(&j).is_ok());
    }
}
