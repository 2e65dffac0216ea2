//! JSON Web Key files (RFC 7517, RFC 7518 §6) for local KEKs.
//!
//! Accepted shapes:
//!
//! ```text
//! {"kty":"oct","kid":"…","alg":"A256KW"|"A256KWP","k":"<base64url, 32 bytes>"}
//! {"kty":"RSA","kid":"…","alg":"RSA-OAEP-256"|"RSA-OAEP",
//!  "n":"…","e":"…"[,"d":"…","p":"…","q":"…","dp":"…","dq":"…","qi":"…"]}
//! ```
//!
//! `kid` is required. `use`, when present, must be `"enc"`; `key_ops`, when
//! present, must include `wrapKey` (and `unwrapKey` for a private key).
//! Unknown members are ignored, as RFC 7517 §4 asks. RSA moduli must be
//! 3072 or 4096 bits; multi-prime keys (`oth`) are refused.
//!
//! Parsing is a pure function of the bytes. Errors name the problem, never a
//! key value; strings of the file they quote (an unknown `alg`) are escaped
//! and cut. A file longer than [`MAX_JWK_LEN`] is not parsed, and no member
//! longer than the base64url of [`MAX_MEMBER_LEN`] bytes is decoded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::der::RsaParts;
use crate::kek::WrapAlgorithm;
use crate::untrusted::escape;

/// The longest JWK parsed (a 4096-bit private RSA key is about 3.3 KiB).
const MAX_JWK_LEN: usize = 64 * 1024;
/// The longest key member decoded (the modulus of a 4096-bit key is 512
/// bytes).
const MAX_MEMBER_LEN: usize = 1024;

/// The private members of an RSA JWK, in `RsaParts` order after n and e.
const RSA_PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// The raw JSON shape. Secret members are `Zeroizing`.
#[derive(Deserialize, Serialize, Default)]
pub(super) struct RawJwk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_ops: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dp: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dq: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qi: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oth: Option<serde_json::Value>,
}

/// Key material parsed from a JWK.
pub(super) enum JwkKey {
    /// A 256-bit AES key.
    Oct(Zeroizing<[u8; 32]>),
    /// An RSA key: the full private integers, or only n and e.
    RsaPrivate(RsaParts),
    /// An RSA public key (n, e).
    RsaPublic { n: Vec<u8>, e: Vec<u8> },
}

/// A parsed JWK.
pub(super) struct Jwk {
    pub(super) kid: String,
    pub(super) alg: WrapAlgorithm,
    pub(super) key: JwkKey,
}

fn b64(field: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    if !crate::util::base64_fits(value.len(), MAX_MEMBER_LEN) {
        return Err(format!(
            "member `{field}` is longer than any key member ({MAX_MEMBER_LEN} bytes)"
        ));
    }
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map(Zeroizing::new)
        .map_err(|_| format!("member `{field}` is not valid base64url"))
}

fn b64_uint(field: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut v = b64(field, value)?;
    let skip = v.iter().take_while(|b| **b == 0).count();
    if skip == v.len() {
        return Err(format!("member `{field}` is zero or empty"));
    }
    v.drain(..skip);
    Ok(v)
}

/// Parses a JWK. `need_private` asks for a key that can unwrap.
pub(super) fn parse(bytes: &[u8], need_private: bool) -> Result<Jwk, String> {
    if bytes.len() > MAX_JWK_LEN {
        return Err(format!(
            "{} bytes, longer than any JSON Web Key ({MAX_JWK_LEN} bytes)",
            bytes.len()
        ));
    }
    let raw: RawJwk = serde_json::from_slice(bytes).map_err(|e| {
        // serde_json messages name a line and column, and for type errors
        // the kind of value, but never echo string contents.
        format!("not a valid JSON Web Key: {}", json_error(&e))
    })?;
    let kty = raw.kty.as_deref().ok_or("missing member `kty`")?;
    let kid = raw
        .kid
        .clone()
        .ok_or("missing member `kid` (a key id is required)")?;
    if kid.is_empty() || kid.len() > 2048 {
        return Err("member `kid` must be 1 to 2048 bytes".into());
    }
    let alg_name = raw.alg.as_deref().ok_or("missing member `alg`")?;
    let alg = WrapAlgorithm::from_jose_name(alg_name).ok_or_else(|| {
        if alg_name == "RSA1_5" {
            "`alg` RSA1_5 (PKCS#1 v1.5) is refused: it is vulnerable to padding-oracle attacks; use RSA-OAEP-256".to_string()
        } else {
            format!(
                "unsupported `alg` \"{}\": expected A256KW, A256KWP, RSA-OAEP-256 or RSA-OAEP",
                escape(alg_name)
            )
        }
    })?;
    if let Some(u) = raw.use_.as_deref() {
        if u != "enc" {
            return Err(format!(
                "member `use` is \"{}\", but a key-encryption key needs \"enc\"",
                escape(u)
            ));
        }
    }

    let key = match kty {
        "oct" => {
            if alg.is_rsa() {
                return Err(format!("`kty` oct does not fit `alg` {alg}"));
            }
            let k = raw.k.as_ref().ok_or("missing member `k` (the AES key)")?;
            let k = b64("k", k)?;
            let k: [u8; 32] = k[..].try_into().map_err(|_| {
                format!(
                    "wrong key size: {} bits, {alg} needs a 256-bit key",
                    k.len() * 8
                )
            })?;
            JwkKey::Oct(Zeroizing::new(k))
        }
        "RSA" => {
            if !alg.is_rsa() {
                return Err(format!("`kty` RSA does not fit `alg` {alg}"));
            }
            if raw.oth.is_some() {
                return Err("multi-prime RSA keys (`oth`) are not supported".into());
            }
            let n = b64_uint("n", raw.n.as_deref().ok_or("missing member `n`")?)?;
            let e = b64_uint("e", raw.e.as_deref().ok_or("missing member `e`")?)?;
            let bits = n.len() * 8 - n[0].leading_zeros() as usize;
            if bits != 3072 && bits != 4096 {
                return Err(format!(
                    "wrong key size: RSA modulus of {bits} bits, expected 3072 or 4096"
                ));
            }
            let privs = [&raw.d, &raw.p, &raw.q, &raw.dp, &raw.dq, &raw.qi];
            let present = privs.iter().filter(|m| m.is_some()).count();
            if present == 0 {
                JwkKey::RsaPublic {
                    n: n.to_vec(),
                    e: e.to_vec(),
                }
            } else if present < privs.len() {
                let missing: Vec<&str> = RSA_PRIVATE_MEMBERS
                    .iter()
                    .zip(privs)
                    .filter(|(_, m)| m.is_none())
                    .map(|(name, _)| *name)
                    .collect();
                return Err(format!(
                    "incomplete RSA private key: missing member(s) {}",
                    missing.join(", ")
                ));
            } else {
                let mut ints: Vec<Zeroizing<Vec<u8>>> = vec![n, e];
                for (name, m) in RSA_PRIVATE_MEMBERS.iter().zip(privs) {
                    ints.push(b64_uint(
                        name,
                        m.as_deref().map(String::as_str).unwrap_or_default(),
                    )?);
                }
                let ints: [Zeroizing<Vec<u8>>; 8] =
                    ints.try_into().map_err(|_| "internal: RSA member count")?;
                JwkKey::RsaPrivate(RsaParts { ints })
            }
        }
        other => {
            return Err(format!(
                "unsupported `kty` \"{}\": expected \"oct\" or \"RSA\"",
                escape(other)
            ));
        }
    };

    let is_private = !matches!(key, JwkKey::RsaPublic { .. });
    if let Some(ops) = &raw.key_ops {
        let has = |op: &str| ops.iter().any(|o| o == op);
        if !has("wrapKey") {
            return Err("member `key_ops` does not allow \"wrapKey\"".into());
        }
        if is_private && !has("unwrapKey") {
            return Err("member `key_ops` does not allow \"unwrapKey\"".into());
        }
    }
    if need_private && !is_private {
        return Err("this is only the public part of an RSA key; unwrapping needs the private key (d, p, q, dp, dq, qi)".into());
    }
    Ok(Jwk { kid, alg, key })
}

/// Serializes a JWK. With `public_only`, RSA private members are left out
/// (and an `oct` key is refused: it has no public part).
pub(super) fn serialize(jwk: &Jwk, public_only: bool) -> Result<Zeroizing<String>, String> {
    let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let mut raw = RawJwk {
        kid: Some(jwk.kid.clone()),
        alg: Some(jwk.alg.jose_name().to_string()),
        use_: Some("enc".into()),
        ..RawJwk::default()
    };
    match &jwk.key {
        JwkKey::Oct(k) => {
            if public_only {
                return Err("a symmetric key has no public part".into());
            }
            raw.kty = Some("oct".into());
            raw.k = Some(Zeroizing::new(enc(&k[..])));
            raw.key_ops = Some(vec!["wrapKey".into(), "unwrapKey".into()]);
        }
        JwkKey::RsaPrivate(parts) => {
            raw.kty = Some("RSA".into());
            raw.n = Some(enc(parts.n()));
            raw.e = Some(enc(parts.e()));
            if public_only {
                raw.key_ops = Some(vec!["wrapKey".into()]);
            } else {
                let s = |i: usize| Some(Zeroizing::new(enc(&parts.ints[i])));
                (raw.d, raw.p, raw.q, raw.dp, raw.dq, raw.qi) =
                    (s(2), s(3), s(4), s(5), s(6), s(7));
                raw.key_ops = Some(vec!["wrapKey".into(), "unwrapKey".into()]);
            }
        }
        JwkKey::RsaPublic { n, e } => {
            raw.kty = Some("RSA".into());
            raw.n = Some(enc(n));
            raw.e = Some(enc(e));
            raw.key_ops = Some(vec!["wrapKey".into()]);
        }
    }
    let mut s =
        serde_json::to_string_pretty(&raw).map_err(|e| format!("cannot serialize JWK: {e}"))?;
    s.push('\n');
    Ok(Zeroizing::new(s))
}

/// For the `jwk` fuzz target: parses `bytes`; what parses is written back
/// (whole, and its public part when it has one) and must parse again to the
/// same key. Returns the problem of a refused input.
#[cfg(fuzzing)]
pub(crate) fn fuzz_round_trip(bytes: &[u8]) -> Result<(), String> {
    fn material(k: &JwkKey) -> Vec<&[u8]> {
        match k {
            JwkKey::Oct(k) => vec![&k[..]],
            JwkKey::RsaPrivate(parts) => parts.ints.iter().map(|i| &i[..]).collect(),
            JwkKey::RsaPublic { n, e } => vec![n, e],
        }
    }
    let jwk = parse(bytes, false)?;
    let text = serialize(&jwk, false).expect("a parsed key serializes");
    let back = parse(text.as_bytes(), false).expect("a written key parses");
    assert_eq!(
        (&back.kid, back.alg),
        (&jwk.kid, jwk.alg),
        "kid or alg changed"
    );
    assert!(material(&back.key) == material(&jwk.key), "key changed");
    match serialize(&jwk, true) {
        Ok(public) => {
            let p = parse(public.as_bytes(), false).expect("a written public key parses");
            let JwkKey::RsaPublic { n, e } = &p.key else {
                panic!("the public part is not a public key");
            };
            assert!(
                material(&jwk.key)[..2] == [&n[..], &e[..]],
                "public part differs"
            );
        }
        Err(_) => assert!(
            matches!(jwk.key, JwkKey::Oct(_)),
            "only an AES key has no public part"
        ),
    }
    Ok(())
}

/// Describes a serde_json error by position and category only.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => {
            format!("bad JSON at line {} column {}", e.line(), e.column())
        }
        Category::Data => format!(
            "a member has the wrong type (line {} column {})",
            e.line(),
            e.column()
        ),
        Category::Io => "read error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCT: &str = r#"{"kty":"oct","kid":"k1","alg":"A256KW","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}"#;

    #[test]
    fn parses_oct() {
        let j = parse(OCT.as_bytes(), true).unwrap();
        assert_eq!(j.kid, "k1");
        assert_eq!(j.alg, WrapAlgorithm::A256Kw);
        match j.key {
            JwkKey::Oct(k) => assert_eq!(k[31], 31),
            _ => panic!("wrong kind"),
        }
    }

    #[test]
    fn oct_round_trip() {
        let j = parse(OCT.as_bytes(), true).unwrap();
        let s = serialize(&j, false).unwrap();
        let j2 = parse(s.as_bytes(), true).unwrap();
        assert_eq!(j2.kid, "k1");
        assert!(serialize(&j, true).is_err());
    }

    fn err(json: &str) -> String {
        match parse(json.as_bytes(), true) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => e,
        }
    }

    #[test]
    fn clear_errors_without_key_bytes() {
        assert!(err("{not json").contains("bad JSON"));
        assert!(err(r#"{"kty":"oct","alg":"A256KW","k":"AAAA"}"#).contains("kid"));
        assert!(err(r#"{"kty":"EC","kid":"x","alg":"A256KW"}"#).contains("kty"));
        assert!(err(r#"{"kty":"oct","kid":"x","alg":"A128KW","k":"AAAA"}"#).contains("alg"));
        assert!(err(r#"{"kty":"oct","kid":"x","alg":"RSA1_5","k":"AAAA"}"#).contains("RSA1_5"));
        assert!(
            err(r#"{"kty":"oct","kid":"x","alg":"RSA-OAEP","k":"AAAA"}"#).contains("does not fit")
        );
        let short = err(r#"{"kty":"oct","kid":"x","alg":"A256KW","k":"AAECAwQFBgcICQoLDA0ODw"}"#);
        assert!(short.contains("128 bits"), "{short}");
        assert!(!short.contains("AAEC"));
        assert!(err(r#"{"kty":"oct","kid":"x","alg":"A256KW","k":"!!"}"#).contains("base64url"));
        assert!(
            err(r#"{"kty":"oct","kid":"x","alg":"A256KW","use":"sig","k":"AAAA"}"#).contains("use")
        );
        let pubonly = err(&format!(
            r#"{{"kty":"RSA","kid":"x","alg":"RSA-OAEP","n":"{}","e":"AQAB"}}"#,
            "w".repeat(512)
        ));
        assert!(pubonly.contains("public part"), "{pubonly}");
        let small = err(r#"{"kty":"RSA","kid":"x","alg":"RSA-OAEP","n":"wAAB","e":"AQAB"}"#);
        assert!(small.contains("wrong key size"), "{small}");
        let partial = err(&format!(
            r#"{{"kty":"RSA","kid":"x","alg":"RSA-OAEP","n":"{}","e":"AQAB","d":"AQ"}}"#,
            "w".repeat(512)
        ));
        assert!(
            partial.contains("missing member(s) p, q, dp, dq, qi"),
            "{partial}"
        );
    }

    /// Strings of the file quoted in a problem are escaped and cut; over-
    /// long members and files are refused before they are decoded.
    #[test]
    fn hostile_files_give_tame_problems() {
        let h = serde_json::to_string(&crate::untrusted::hostile()).unwrap();
        for json in [
            format!(r#"{{"kty":{h},"kid":"x","alg":"A256KW"}}"#),
            format!(r#"{{"kty":"oct","kid":"x","alg":{h}}}"#),
            format!(r#"{{"kty":"oct","kid":"x","alg":"A256KW","use":{h}}}"#),
        ] {
            crate::untrusted::assert_tame(&err(&json));
        }
        let long = err(&format!(
            r#"{{"kty":"RSA","kid":"x","alg":"RSA-OAEP","n":"{}!","e":"AQAB"}}"#,
            "w".repeat(2_000)
        ));
        assert!(long.contains("longer than any key member"), "{long}");
        let big = err(&format!(
            r#"{{"kty":"oct","kid":"x","alg":"A256KW","pad":"{}"}}"#,
            " ".repeat(MAX_JWK_LEN)
        ));
        assert!(big.contains("longer than any JSON Web Key"), "{big}");
    }
}
