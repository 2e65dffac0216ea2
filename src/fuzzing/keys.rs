//! Key files, key ids and what key services and stores send back: JWK
//! files (`jwk`), scope key records (`scope_record`), PKCS#11 URIs
//! (`pkcs11_uri`), Key Vault key URLs (`key_vault_url`) and responses
//! (`key_vault_response`), blob metadata (`blob_metadata`).

use pollster::block_on;

use super::assert_input_error;
use crate::scope::ScopeRecord;
use crate::{DataKey, KeyEncryptionKey, LocalKek, LocalKeyKind};

/// `jwk`: the input as a JSON Web Key. What parses is written back and
/// parses to the same key (and its public part to the public key); a key
/// the provider accepts wraps a data key, and unwraps it when it is
/// private. Refusals are key-file errors that quote nothing raw.
pub fn jwk(data: &[u8]) {
    if let Err(problem) = crate::kek::fuzz_jwk_round_trip(data) {
        crate::untrusted::assert_tame(&problem);
    }
    match LocalKek::from_jwk_bytes(data) {
        Ok(kek) => {
            let dek = DataKey::generate(crate::CryptoProvider::default_provider()).expect("dek");
            let w = block_on(kek.wrap_key(&dek)).expect("an accepted key wraps");
            if kek.kind() != LocalKeyKind::RsaPublic {
                let back = block_on(kek.unwrap_key(&w.wrapped)).expect("and unwraps");
                assert!(
                    back.expose_secret_bytes() == dek.expose_secret_bytes(),
                    "unwrapped another key"
                );
            }
        }
        Err(e) => assert_input_error(&e, "LocalKek::from_jwk_bytes"),
    }
}

/// The CMK of the `scope_record` seeds (key id `fuzz-cmk`).
fn scope_cmk() -> super::ContainedKek {
    super::ContainedKek::new("fuzz-cmk", 0x46)
}

/// `scope_record`: the input as a scope key record, format v1 (bare keys)
/// or v2 (labelled material). What parses encodes to a record that parses
/// back to the same record, and encodes the same way again. Each version
/// the seeds' CMK (`fuzz-cmk`) unwraps goes through the scope key material
/// check a scope applies (labelled material of this scope and version,
/// bare keys in v1 records only), which refuses anything else with an
/// input error; a key it accepts as seal-and-open is labelled.
pub fn scope_record(data: &[u8]) {
    use crate::scope::{fuzz_decode_material, FuzzUsage};
    let r = match ScopeRecord::from_json(data) {
        Ok(r) => r,
        Err(e) => return assert_input_error(&e, "ScopeRecord::from_json"),
    };
    let json = r.to_json();
    let back = ScopeRecord::from_json(&json).expect("an encoded record parses");
    assert_eq!(back, r, "record changed in a round trip");
    assert_eq!(back.to_json(), json, "encoding is not a fixed point");
    let cmk = scope_cmk();
    let provider = crate::CryptoProvider::default_provider();
    for v in &r.versions {
        if v.wrapped.kek_id != cmk.key_id() || v.wrapped.alg != cmk.algorithm() {
            continue;
        }
        let Ok(m) = block_on(cmk.unwrap_key_material(&v.wrapped.wrapped)) else {
            continue;
        };
        match fuzz_decode_material(provider, &r.scope_id, v.version, &m, r.labelled) {
            Ok((_, usage)) => assert!(
                m.expose_secret_bytes().len() != 32
                    || (!r.labelled && usage == FuzzUsage::OpenOnly),
                "a bare key accepted for sealing, or in a labelled record"
            ),
            Err(e) => assert_input_error(&e, "scope key material"),
        }
    }
}

/// `pkcs11_uri`: the input as a PKCS#11 URI (key ids in headers can be
/// ones). What parses has a canonical form that parses to the same key
/// selection, and is its own canonical form.
#[cfg(feature = "pkcs11")]
pub fn pkcs11_uri(data: &[u8]) {
    use crate::kek::pkcs11::{Pkcs11ObjectType, Pkcs11Uri};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let u = match Pkcs11Uri::parse(text) {
        Ok(u) => u,
        Err(e) => return assert_input_error(&e, "Pkcs11Uri::parse"),
    };
    let label = u.token().unwrap_or("token");
    let ty = u.object_type().unwrap_or(Pkcs11ObjectType::SecretKey);
    let canonical = u.canonical(label, ty);
    let c = Pkcs11Uri::parse(&canonical).expect("a canonical URI parses");
    assert_eq!(c.token(), Some(label));
    assert_eq!((c.object(), c.id()), (u.object(), u.id()), "another object");
    assert_eq!(c.object_type(), Some(ty));
    assert_eq!(
        c.canonical(label, ty),
        canonical,
        "canonical form is not a fixed point"
    );
}

/// `key_vault_url`: the input as a Key Vault or Managed HSM key URL. What
/// parses prints as a URL that parses to the same key, and prints the same
/// way again.
#[cfg(feature = "azure")]
pub fn key_vault_url(data: &[u8]) {
    use crate::kek::azure::KeyUrl;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let u = match KeyUrl::parse(text) {
        Ok(u) => u,
        Err(e) => return assert_input_error(&e, "KeyUrl::parse"),
    };
    let printed = u.to_string();
    let back = KeyUrl::parse(&printed).expect("a printed URL parses");
    assert_eq!(back, u, "URL changed in a round trip");
    assert_eq!(back.to_string(), printed);
    assert!(u.same_key(&u.unversioned()));
    assert!(printed.starts_with(&u.vault_url()));
    if let Some(v) = u.version() {
        assert!(u.same_version(&u.unversioned().with_version(v).expect("its own version")));
    }
}

/// `key_vault_response`: the input as the body of a `get` key response and
/// of a `wrapKey` response, as the Key Vault SDK deserializes them, then
/// checked by this crate. A key that passes the preflight has the size its
/// algorithm needs; a wrapped key that passes is bound to the pinned
/// version and within a header's limits; every refusal is printable.
#[cfg(feature = "azure")]
pub fn key_vault_response(data: &[u8]) {
    use azure_security_keyvault_keys::models::{Key, KeyOperationResult};

    use crate::kek::azure::{fuzz_preflight_check, wrapped_key_from_response, KeyUrl};
    use crate::kek::WrapAlgorithm;

    if let Ok(key) = serde_json::from_slice::<Key>(data) {
        let now =
            azure_core::time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("a time");
        for alg in WrapAlgorithm::ALL {
            match fuzz_preflight_check(&key, alg, now) {
                Ok(v) => {
                    if alg.is_rsa() {
                        assert!(
                            v.wrapped_len >= 256,
                            "an RSA key of {} bytes",
                            v.wrapped_len
                        );
                    } else {
                        assert_eq!(v.wrapped_len, 40);
                    }
                    crate::untrusted::assert_tame(&format!("{v:?}"));
                }
                Err(p) => crate::untrusted::assert_tame(&p.to_string()),
            }
        }
    }
    if let Ok(r) = serde_json::from_slice::<KeyOperationResult>(data) {
        let pinned = KeyUrl::parse("https://fuzz.vault.azure.net/keys/cmk/0123456789abcdef")
            .expect("the pinned URL");
        match wrapped_key_from_response(r, &pinned, WrapAlgorithm::RsaOaep256) {
            Ok(w) => {
                let kid = KeyUrl::parse(&w.kek_id).expect("the returned kid parses");
                assert!(kid.same_version(&pinned));
                assert!((1..=1024).contains(&w.wrapped.len()));
            }
            Err(e) => assert_input_error(&e, "wrapKey response"),
        }
    }
}

/// `blob_metadata`: the input as a blob's metadata (one `name=value` per
/// line) and as its `Content-Range` header. A header found in the metadata
/// is exactly what its base64 encodes.
#[cfg(feature = "blob")]
pub fn blob_metadata(data: &[u8]) {
    use base64::Engine as _;
    use std::collections::HashMap;

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let metadata: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    match crate::blob::header_from_metadata(&metadata) {
        Ok(h) => {
            let stored = metadata
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(crate::blob::HEADER_METADATA_KEY))
                .map(|(_, v)| v.trim())
                .expect("the header came from somewhere");
            let b64 = base64::engine::general_purpose::STANDARD;
            assert_eq!(b64.encode(h.to_bytes()), stored, "header round trip");
        }
        Err(e) => assert_input_error(&e, "header_from_metadata"),
    }
    let mut headers = azure_core::http::headers::Headers::new();
    headers.insert("content-range", text.to_owned());
    let _ = crate::blob::content_range_total(&headers);
}

/// Real objects for the seed corpus of `jwk`: JWK files of every kind this
/// crate writes (AES for A256KW and A256KWP; RSA-OAEP-256 and RSA-OAEP,
/// 3072 and 4096 bits, private and public), as `save_jwk` writes them.
pub fn seed_jwks() -> Vec<(String, Vec<u8>)> {
    use crate::WrapAlgorithm as A;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut out = Vec::new();
    for (name, alg, bits) in [
        ("oct-a256kw", A::A256Kw, None),
        ("oct-a256kwp", A::A256Kwp, None),
        ("rsa-oaep-256-3072", A::RsaOaep256, Some(3072)),
        ("rsa-oaep-4096", A::RsaOaep, Some(4096)),
    ] {
        let kek = LocalKek::generate(alg, Some(format!("fuzz-{name}")), bits).expect("generate");
        let path = dir.path().join(name);
        kek.save_jwk(&path, false).expect("save");
        out.push((name.to_owned(), std::fs::read(&path).expect("read")));
        if alg.is_rsa() {
            let public = dir.path().join(format!("{name}.pub"));
            kek.save_public_jwk(&public, false).expect("save");
            out.push((
                format!("{name}-public"),
                std::fs::read(&public).expect("read"),
            ));
        }
    }
    out
}

/// Real objects for the seed corpus of `scope_record`: the records of
/// scopes created in a scope store (format v2), with one key version and
/// after a scope key rotation, service- and customer-managed; and a record
/// of format v1 (a bare 32-byte key, as written before labelling).
pub fn seed_scope_records() -> Vec<(String, Vec<u8>)> {
    use std::sync::Arc;

    use crate::key::KeyMaterial;
    use crate::scope::{CachePolicy, Cmk, EncryptionScope, MemoryScopeStore, ScopeStore};

    block_on(async {
        let kek: Arc<dyn KeyEncryptionKey> = Arc::new(scope_cmk());
        let store = Arc::new(MemoryScopeStore::new());
        let mut out = Vec::new();
        for (id, cmk) in [
            ("customer", Cmk::CustomerManaged(kek.clone())),
            ("service", Cmk::ServiceManaged(kek.clone())),
        ] {
            let s = EncryptionScope::create(store.clone(), id, cmk, CachePolicy::default())
                .await
                .expect("create");
            out.push((
                format!("{id}-1-key"),
                store.get(id).await.expect("get").expect("record").0,
            ));
            s.rotate_scope_key().await.expect("rotate");
            out.push((
                format!("{id}-2-keys"),
                store.get(id).await.expect("get").expect("record").0,
            ));
        }
        let (json, _) = store.get("customer").await.expect("get").expect("record");
        let mut legacy = ScopeRecord::from_json(&json).expect("record");
        legacy.versions.truncate(1);
        legacy.current = legacy.versions[0].version;
        legacy.versions[0].wrapped = kek
            .wrap_key_material(&KeyMaterial::from_bytes(&[0x5c; 32]).expect("key"))
            .await
            .expect("wrap");
        legacy.labelled = false;
        out.push(("format-v1".to_owned(), legacy.to_json()));
        out
    })
}

/// Real objects for the seed corpus of `pkcs11_uri`, `key_vault_url`,
/// `key_vault_response` and `blob_metadata`: ids, URLs, response bodies
/// and metadata of the shapes the services and this crate write.
pub fn seed_texts() -> Vec<(&'static str, String, String)> {
    let header = super::envelope::seed_envelope(0, true);
    let header = &header[..crate::Header::parse_prefix(&header).expect("header").1];
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(header)
    };
    let kid = "https://fuzz.vault.azure.net/keys/cmk/0123456789abcdef";
    let wrapped = "q".repeat(512);
    vec![
        ("pkcs11_uri", "label".into(), "pkcs11:token=kek-test;object=cmk;type=secret-key".into()),
        ("pkcs11_uri", "id".into(), "pkcs11:serial=0123;slot-id=7;id=%01%02;object=my%20key;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so".into()),
        ("key_vault_url", "versioned".into(), kid.into()),
        ("key_vault_url", "hsm".into(), "https://h1.managedhsm.azure.net/keys/k-1".into()),
        ("key_vault_url", "china".into(), "https://v.vault.azure.cn/keys/k/ABCDEF0123456789abcdef0123456789".into()),
        ("key_vault_response", "get-rsa".into(), format!(
            r#"{{"key":{{"kid":"{kid}","kty":"RSA-HSM","key_ops":["wrapKey","unwrapKey","encrypt"],"n":"{n}","e":"AQAB"}},"attributes":{{"enabled":true,"nbf":1600000000,"exp":1900000000,"created":1600000000,"updated":1600000000,"recoveryLevel":"Recoverable+Purgeable","recoverableDays":90}}}}"#,
            n = "x".repeat(512)
        )),
        ("key_vault_response", "get-oct".into(), format!(
            r#"{{"key":{{"kid":"{kid}","kty":"oct-HSM","key_ops":["wrapKey","unwrapKey"]}},"attributes":{{"enabled":true,"recoveryLevel":"CustomizedRecoverable+ProtectedSubscription"}}}}"#
        )),
        ("key_vault_response", "wrap".into(), format!(r#"{{"kid":"{kid}","value":"{wrapped}"}}"#)),
        ("blob_metadata", "header".into(), format!("cmkenvelope={b64}\nowner=team-7")),
        ("blob_metadata", "range".into(), "bytes 0-55/16472".into()),
    ]
}
