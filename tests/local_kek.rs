//! Local JWK KEKs: the conformance suite for every algorithm and provider,
//! key-file handling, and secrets hygiene.

mod common;

use std::sync::Arc;

use cmk_envelope::conformance::kek as kek_conformance;
use cmk_envelope::{
    CryptoProvider, DataKey, Error, KeyEncryptionKey, LocalKek, LocalKeyKind, WrapAlgorithm,
};

fn aes(kid: &str, alg: WrapAlgorithm, p: &'static CryptoProvider) -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::generate_with_provider(p, alg, Some(kid.into()), None).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_aes_kw_and_kwp() {
    for p in CryptoProvider::all() {
        for alg in [WrapAlgorithm::A256Kw, WrapAlgorithm::A256Kwp] {
            let r = kek_conformance::run(aes("a", alg, p), aes("b", alg, p)).await;
            println!("conformance local {alg} [{}]: {r:?}", p.name());
            assert!(r.modifications_rejected >= 80);
            assert_eq!(r.material_round_trips, 4);
            let refused = if alg == WrapAlgorithm::A256Kw { 2 } else { 0 };
            assert_eq!(r.lengths_refused, refused);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_rsa_oaep() {
    for p in CryptoProvider::all() {
        for alg in [WrapAlgorithm::RsaOaep256, WrapAlgorithm::RsaOaep] {
            let r =
                kek_conformance::run(common::rsa_kek(0, alg, p), common::rsa_kek(1, alg, p)).await;
            println!("conformance local {alg} [{}]: {r:?}", p.name());
            assert_eq!(r.modifications_rejected, 384 * 2);
            assert_eq!(r.material_round_trips, 4);
        }
    }
}

#[tokio::test]
async fn rsa_oaep_hashes_are_not_interchangeable() {
    let p = CryptoProvider::default_provider();
    let k256 = common::rsa_kek(0, WrapAlgorithm::RsaOaep256, p);
    let k1 = common::rsa_kek(0, WrapAlgorithm::RsaOaep, p);
    let dek = DataKey::generate(p).unwrap();
    let w = k256.wrap_key(&dek).await.unwrap();
    assert!(k1.unwrap_key(&w.wrapped).await.is_err());
}

#[test]
fn jwk_file_round_trip_and_mode() {
    let dir = common::tempdir();
    for alg in WrapAlgorithm::ALL {
        let bits = alg.is_rsa().then_some(3072);
        if alg == WrapAlgorithm::RsaOaep {
            continue; // one RSA generation is enough here
        }
        let k = LocalKek::generate(alg, Some(format!("kid-{alg}")), bits).unwrap();
        let path = dir.join(format!("{alg}.jwk"));
        k.save_jwk(&path, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let again = LocalKek::from_private_jwk_file(&path).unwrap();
        assert_eq!(again.key_id(), format!("kid-{alg}"));
        assert_eq!(again.algorithm(), alg);
        assert_eq!(again.key_dir(), Some(dir.canonicalize().unwrap().as_path()));
        // refuse to overwrite
        assert!(matches!(
            k.save_jwk(&path, false),
            Err(Error::KeyFile { .. })
        ));
        k.save_jwk(&path, true).unwrap();
    }
}

#[tokio::test]
async fn public_rsa_jwk_wraps_but_cannot_unwrap() {
    let dir = common::tempdir();
    let private = LocalKek::from_jwk_bytes(common::rsa_jwk(0).as_bytes()).unwrap();
    let pub_path = dir.join("pub.jwk");
    private.save_public_jwk(&pub_path, false).unwrap();
    let public = LocalKek::from_jwk_file(&pub_path).unwrap();
    assert_eq!(public.kind(), LocalKeyKind::RsaPublic);
    let dek = DataKey::generate(CryptoProvider::default_provider()).unwrap();
    let w = public.wrap_key(&dek).await.unwrap();
    assert!(private.unwrap_key(&w.wrapped).await.unwrap() == dek);
    match public.unwrap_key(&w.wrapped).await {
        Err(Error::Kek(e)) => assert_eq!(e.kind(), cmk_envelope::KekErrorKind::KeyUsage),
        other => panic!("expected KeyUsage, got {other:?}"),
    }
    let e = LocalKek::from_private_jwk_file(&pub_path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("pub.jwk") && e.contains("private"), "{e}");
}

#[test]
fn bad_key_files_name_file_and_problem() {
    let dir = common::tempdir();
    let secret_b64 = "c2VjcmV0LWtleS1ieXRlcy10aGF0LW11c3Qtbm90LWxlYWs"; // 35 bytes
    let cases: &[(&str, &str)] = &[
        ("{\"kty\":", "bad JSON"),
        (r#"{"kty":"oct","alg":"A256KW","k":"AAAA"}"#, "kid"),
        (r#"{"kty":"EC","kid":"x","alg":"A256KW"}"#, "kty"),
        (r#"{"kty":"oct","kid":"x","alg":"dir","k":"AAAA"}"#, "alg"),
        (
            r#"{"kty":"oct","kid":"x","alg":"RSA-OAEP","k":"AAAA"}"#,
            "does not fit",
        ),
        (
            &format!(r#"{{"kty":"oct","kid":"x","alg":"A256KW","k":"{secret_b64}"}}"#),
            "wrong key size",
        ),
        (
            r#"{"kty":"RSA","kid":"x","alg":"RSA-OAEP-256","n":"wAAB","e":"AQAB"}"#,
            "wrong key size",
        ),
    ];
    for (i, (json, want)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad-{i}.jwk"));
        std::fs::write(&path, json).unwrap();
        let e = LocalKek::from_jwk_file(&path).unwrap_err();
        assert!(matches!(e, Error::KeyFile { .. }));
        let s = e.to_string();
        assert!(s.contains(&format!("bad-{i}.jwk")), "{s}");
        assert!(s.contains(want), "{s} should mention {want}");
        assert!(
            !s.contains(secret_b64) && !s.contains("secret"),
            "{s} leaks key material"
        );
    }
    let e = LocalKek::from_jwk_file(dir.join("missing.jwk"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.jwk") && e.contains("cannot read"),
        "{e}"
    );
}

#[tokio::test]
async fn debug_and_errors_carry_no_key_bytes() {
    let key = [0xC3u8; 32];
    let kek = LocalKek::from_aes_key("k", WrapAlgorithm::A256Kw, &key).unwrap();
    let dek = DataKey::generate(CryptoProvider::default_provider()).unwrap();
    let hexes = |b: &[u8]| -> Vec<String> {
        vec![
            b.iter().map(|x| format!("{x:02x}")).collect(),
            b.iter().map(|x| format!("{x:02X}")).collect(),
            format!("{b:?}"),
        ]
    };
    let mut forbidden = hexes(&key);
    forbidden.extend(hexes(dek.expose_secret_bytes()));
    let mut texts = vec![format!("{dek:?}"), format!("{kek:?}")];
    let w = kek.wrap_key(&dek).await.unwrap();
    let mut bad = w.wrapped.clone();
    bad[3] ^= 1;
    texts.push(kek.unwrap_key(&bad).await.unwrap_err().to_string());
    texts.push(format!("{:?}", kek.unwrap_key(&bad).await.unwrap_err()));
    texts.push(DataKey::from_unwrapped(&key[..31]).unwrap_err().to_string());
    for t in &texts {
        for f in &forbidden {
            assert!(!t.contains(f.as_str()), "{t:?} contains key bytes");
        }
    }
    assert_eq!(format!("{dek:?}"), "DataKey([REDACTED])");
}
