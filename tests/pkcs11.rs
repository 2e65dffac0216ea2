//! PKCS#11 KEKs against a real SoftHSM2 token created by the test itself:
//! the conformance suite, envelopes through the HSM, byte-for-byte
//! interoperability with the local KEK, concurrency, and error mapping.
//!
//! Needs SoftHSM2 (`apt-get install softhsm2`). Without it these tests
//! fail; they never skip.

#![cfg(feature = "pkcs11")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use base64::Engine as _;
use cmk_envelope::conformance::kek as kek_conformance;
use cmk_envelope::kek::pkcs11::{Pkcs11Path, Pkcs11Uri};
use cmk_envelope::{
    open, seal, CryptoProvider, DataKey, Error, Header, KekErrorKind, KeyEncryptionKey, LocalKek,
    Pkcs11Kek, Profile, StaticResolver, WrapAlgorithm,
};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

const TOKEN: &str = "kek-test";
/// A second token that nothing ever logs in to, for the wrong-PIN test
/// (login state is per process and token, so it must stay untouched).
const PIN_TOKEN: &str = "kek-pin-test";
const PIN: &str = "1234";
const SO_PIN: &str = "5678";

const INSTALL_HINT: &str = "SoftHSM2 is required for the PKCS#11 tests: install it with \
     `apt-get install softhsm2` (Debian/Ubuntu) or set PKCS11_MODULE to a SoftHSM2 libsofthsm2.so";

struct Hsm {
    module: PathBuf,
    ctx: Pkcs11,
    slot: Slot,
}

fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PKCS11_MODULE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("libsofthsm2.so not found. {INSTALL_HINT}"))
}

/// The SoftHSM2 fixture: a token directory in a temporary directory, two
/// fresh tokens, and the module initialised once for this test binary.
fn hsm() -> &'static Hsm {
    static HSM: OnceLock<Hsm> = OnceLock::new();
    HSM.get_or_init(|| {
        let module = module_path();
        let dir = common::tempdir();
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Before the module is initialised: SoftHSM reads it in C_Initialize.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        for label in [TOKEN, PIN_TOKEN] {
            let out = std::process::Command::new("softhsm2-util")
                .args([
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--so-pin",
                    SO_PIN,
                    "--pin",
                    PIN,
                ])
                .output()
                .unwrap_or_else(|e| panic!("cannot run softhsm2-util ({e}). {INSTALL_HINT}"));
            assert!(
                out.status.success(),
                "softhsm2-util failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ctx = Pkcs11::new(&module)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}. {INSTALL_HINT}", module.display()));
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("C_Initialize failed: {e}"),
        }
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .map(|t| t.label() == TOKEN)
                    .unwrap_or(false)
            })
            .expect("the kek-test token");
        Hsm { module, ctx, slot }
    })
}

/// Token writes of this process and the CLI processes a test starts take
/// turns: a SoftHSM2 (file backend) starting in another process while this
/// one writes the token's files may not load the token ("token not
/// present").
static TOKEN_FILES: Mutex<()> = Mutex::new(());

fn token_files_turn() -> MutexGuard<'static, ()> {
    TOKEN_FILES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Building a KEK lists the slots, and SoftHSM2 re-reads the token files
/// to do so: it takes the token files' turn like every writer, or it may
/// find the token "not present" while a CLI process of another test holds
/// the files. (Blocking: SoftHSM2 answers in microseconds.)
trait BuildInTurn {
    fn build_in_turn(self) -> cmk_envelope::Result<Pkcs11Kek>;
}

impl BuildInTurn for cmk_envelope::kek::pkcs11::Pkcs11KekBuilder {
    fn build_in_turn(self) -> cmk_envelope::Result<Pkcs11Kek> {
        let _turn = token_files_turn();
        self.build()
    }
}

/// A logged-in read-write session for creating keys, holding the token
/// files' turn until it is dropped (the session closes first).
struct Admin {
    session: Session,
    _turn: MutexGuard<'static, ()>,
}

impl std::ops::Deref for Admin {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

fn admin() -> Admin {
    let turn = token_files_turn();
    let h = hsm();
    let s = h.ctx.open_rw_session(h.slot).unwrap();
    match s.login(UserType::User, Some(&AuthPin::from(PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    Admin {
        session: s,
        _turn: turn,
    }
}

fn uri(object: &str, ty: &str) -> String {
    format!("pkcs11:token={TOKEN};object={object};type={ty}")
}

/// Generates an AES-256 key in the token (never extractable).
fn gen_aes(label: &str) {
    admin()
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::ValueLen(32.into()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
}

/// Imports a known AES-256 key value into the token.
fn import_aes(label: &str, id: &[u8], key: &[u8; 32]) {
    admin()
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
            Attribute::Value(key.to_vec()),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
        ])
        .unwrap();
}

/// Generates an RSA-3072 key pair in the token, both halves labelled.
fn gen_rsa(label: &str) {
    gen_rsa_with(label, true);
}

/// Generates an RSA-3072 key pair; with `cipher == false` the keys may only
/// wrap/unwrap keys (no CKA_ENCRYPT/CKA_DECRYPT), the usual HSM policy.
fn gen_rsa_with(label: &str, cipher: bool) {
    let l = label.as_bytes().to_vec();
    admin()
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(3072.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Label(l.clone()),
                Attribute::Encrypt(cipher),
                Attribute::Wrap(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Label(l),
                Attribute::Decrypt(cipher),
                Attribute::Unwrap(true),
            ],
        )
        .unwrap();
}

/// Imports the RSA key pair of a private JWK text into the token.
fn import_rsa_jwk(label: &str, jwk: &str) {
    let v: serde_json::Value = serde_json::from_str(jwk).unwrap();
    let b = |k: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v[k].as_str().unwrap_or_else(|| panic!("JWK lacks {k}")))
            .unwrap()
    };
    let l = label.as_bytes().to_vec();
    let s = admin();
    s.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Label(l.clone()),
        Attribute::Modulus(b("n")),
        Attribute::PublicExponent(b("e")),
        Attribute::Encrypt(true),
        Attribute::Wrap(true),
    ])
    .unwrap();
    s.create_object(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Label(l),
        Attribute::Modulus(b("n")),
        Attribute::PublicExponent(b("e")),
        Attribute::PrivateExponent(b("d")),
        Attribute::Prime1(b("p")),
        Attribute::Prime2(b("q")),
        Attribute::Exponent1(b("dp")),
        Attribute::Exponent2(b("dq")),
        Attribute::Coefficient(b("qi")),
        Attribute::Decrypt(true),
        Attribute::Unwrap(true),
    ])
    .unwrap();
}

/// Builds a KEK on a blocking thread, in the token files' turn.
async fn build(uri: &str, alg: WrapAlgorithm) -> Pkcs11Kek {
    let uri = uri.to_owned();
    tokio::task::spawn_blocking(move || {
        Pkcs11Kek::builder(&uri)
            .module(&hsm().module)
            .pin(PIN)
            .algorithm(alg)
            .build_in_turn()
            .unwrap_or_else(|e| panic!("building {uri}: {e}"))
    })
    .await
    .expect("the build task")
}

fn dyn_kek(k: Pkcs11Kek) -> Arc<dyn KeyEncryptionKey> {
    Arc::new(k)
}

fn kek_error(r: Result<impl std::fmt::Debug, Error>) -> (KekErrorKind, String) {
    match r {
        Err(Error::Kek(e)) => (e.kind(), e.to_string()),
        other => panic!("expected a KEK error, got {other:?}"),
    }
}

/// Tampered, truncated and extended wrapped keys are `UnwrapFailed`
/// naming the key (not a backend error).
async fn assert_unwrap_failed(kek: &Arc<dyn KeyEncryptionKey>) {
    let w = kek.wrap_key(&dek()).await.unwrap();
    let n = w.wrapped.len();
    let mut cases = vec![
        w.wrapped[..n - 1].to_vec(),
        w.wrapped[..8].to_vec(),
        [&w.wrapped[..], &[0u8; 8]].concat(),
    ];
    for i in [0, 7, n / 2, n - 1] {
        let mut m = w.wrapped.clone();
        m[i] ^= 0x04;
        cases.push(m);
    }
    for (i, c) in cases.iter().enumerate() {
        match kek.unwrap_key(c).await {
            Err(Error::UnwrapFailed { kek_id }) => assert_eq!(kek_id, kek.key_id()),
            other => panic!(
                "{} case {i}: expected UnwrapFailed, got {other:?}",
                kek.algorithm()
            ),
        }
    }
}

fn dek() -> DataKey {
    DataKey::generate(CryptoProvider::default_provider()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_a256kw_and_a256kwp() {
    for (alg, a, b) in [
        (WrapAlgorithm::A256Kw, "conf-kw-a", "conf-kw-b"),
        (WrapAlgorithm::A256Kwp, "conf-kwp-a", "conf-kwp-b"),
    ] {
        gen_aes(a);
        gen_aes(b);
        let ka = build(&uri(a, "secret-key"), alg).await;
        // SoftHSM2 offers AES key wrap only through C_WrapKey/C_UnwrapKey.
        assert_eq!(ka.wrap_path(), Some(Pkcs11Path::KeyObject));
        assert_eq!(ka.unwrap_path(), Some(Pkcs11Path::KeyObject));
        assert_eq!(ka.key_id(), uri(a, "secret-key"));
        let ka = dyn_kek(ka);
        let other = dyn_kek(build(&uri(b, "secret-key"), alg).await);
        let r = kek_conformance::run(ka.clone(), other).await;
        println!("conformance pkcs11 {alg}: {r:?}");
        assert_eq!(r.modifications_rejected, 80);
        assert_eq!(r.material_round_trips, 4);
        // A256KWP: C_WrapKey would pad an unaligned key object (SoftHSM2)
        assert_eq!(r.lengths_refused, 2);
        assert_unwrap_failed(&ka).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_rsa_oaep_sha1() {
    gen_rsa("conf-rsa-a");
    gen_rsa("conf-rsa-b");
    let a = build(&uri("conf-rsa-a", "private"), WrapAlgorithm::RsaOaep).await;
    assert_eq!(a.wrap_path(), Some(Pkcs11Path::Cipher));
    assert_eq!(a.unwrap_path(), Some(Pkcs11Path::Cipher));
    let b = build(&uri("conf-rsa-b", "private"), WrapAlgorithm::RsaOaep).await;
    let r = kek_conformance::run(dyn_kek(a.clone()), dyn_kek(b)).await;
    println!("conformance pkcs11 RSA-OAEP: {r:?}");
    assert_eq!(r.modifications_rejected, 384 * 2);
    assert_eq!(r.material_round_trips, 4);
    assert_unwrap_failed(&dyn_kek(a.clone())).await;

    // The public half alone wraps (and records the same key id); only the
    // private half unwraps.
    let public = build(&uri("conf-rsa-a", "public"), WrapAlgorithm::RsaOaep).await;
    assert_eq!(public.key_id(), a.key_id());
    assert_eq!(public.unwrap_path(), None);
    let k = dek();
    let w = public.wrap_key(&k).await.unwrap();
    assert_eq!(w.kek_id, uri("conf-rsa-a", "private"));
    assert!(a.unwrap_key(&w.wrapped).await.unwrap() == k);
    let (kind, msg) = kek_error(public.unwrap_key(&w.wrapped).await);
    assert_eq!(kind, KekErrorKind::KeyUsage, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_keys_without_encrypt_use_the_key_object_path() {
    gen_rsa_with("rsa-wrap-only", false);
    let k = build(&uri("rsa-wrap-only", "private"), WrapAlgorithm::RsaOaep).await;
    assert_eq!(k.wrap_path(), Some(Pkcs11Path::KeyObject));
    assert_eq!(k.unwrap_path(), Some(Pkcs11Path::KeyObject));
    let k = dyn_kek(k);
    assert_eq!(kek_conformance::round_trip(k.as_ref()).await, 4);
    assert_eq!(kek_conformance::concurrent(&k, 4, 8).await, 32);
    assert_unwrap_failed(&k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_oaep_256_is_unsupported_on_softhsm() {
    gen_rsa("oaep256");
    let u = uri("oaep256", "private");
    let check = |(kind, msg): (KekErrorKind, String)| {
        assert_eq!(kind, KekErrorKind::Unsupported, "{msg}");
        assert!(
            msg.contains("mechanism not supported by this token"),
            "{msg}"
        );
        assert!(
            msg.contains("RSA-OAEP-256") && msg.contains("kek-test") && msg.contains("oaep256"),
            "{msg}"
        );
    };
    // The build-time probe reports it...
    let r = Pkcs11Kek::builder(&u)
        .module(&hsm().module)
        .pin(PIN)
        .algorithm(WrapAlgorithm::RsaOaep256)
        .build_in_turn();
    check(kek_error(r));
    // ... and without the probe, so does every operation, without a crash.
    let k = Pkcs11Kek::builder(&u)
        .module(&hsm().module)
        .pin(PIN)
        .algorithm(WrapAlgorithm::RsaOaep256)
        .probe(false)
        .build_in_turn()
        .unwrap();
    check(kek_error(k.wrap_key(&dek()).await));
    check(kek_error(k.unwrap_key(&[0x42; 384]).await));
    // RSA-OAEP (SHA-1) on the same key pair works.
    let ok = build(&u, WrapAlgorithm::RsaOaep).await;
    let d = dek();
    assert!(
        ok.unwrap_key(&ok.wrap_key(&d).await.unwrap().wrapped)
            .await
            .unwrap()
            == d
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_round_trip_through_the_hsm() {
    gen_aes("env-aes");
    import_aes("env-aes-by-id", &[0x01, 0x02], &[0x5A; 32]);
    gen_rsa("env-rsa");
    let aes = dyn_kek(build(&uri("env-aes", "secret-key"), WrapAlgorithm::A256Kw).await);
    let by_id = dyn_kek(
        build(
            &format!("pkcs11:token={TOKEN};id=%01%02"),
            WrapAlgorithm::A256Kwp,
        )
        .await,
    );
    assert_eq!(
        by_id.key_id(),
        "pkcs11:token=kek-test;id=%01%02;type=secret-key"
    );
    let rsa = dyn_kek(build(&uri("env-rsa", "private"), WrapAlgorithm::RsaOaep).await);
    assert_eq!(
        aes.key_container().as_deref(),
        Some("pkcs11:token=kek-test")
    );

    let msg = common::data(100_000, 7);
    let env = seal(
        &[aes.clone(), by_id.clone(), rsa.clone()],
        Profile::Blob,
        b"ctx",
        &msg,
    )
    .await
    .unwrap();
    let (header, _) = Header::parse_prefix(&env).unwrap();
    let ids: Vec<&str> = header.keys().iter().map(|w| w.kek_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "pkcs11:token=kek-test;object=env-aes;type=secret-key",
            "pkcs11:token=kek-test;id=%01%02;type=secret-key",
            "pkcs11:token=kek-test;object=env-rsa;type=private"
        ]
    );
    for k in [&aes, &by_id, &rsa] {
        let resolver = StaticResolver::new().with(k.clone());
        assert_eq!(
            open(&resolver, Profile::Blob, b"ctx", &env).await.unwrap(),
            msg
        );
        assert!(matches!(
            open(&resolver, Profile::Blob, b"other", &env).await,
            Err(Error::CommitmentMismatch)
        ));
    }
    // A header whose wrapped key was tampered with: UnwrapFailed naming the key.
    let single = seal(std::slice::from_ref(&aes), Profile::Document, b"d", b"x")
        .await
        .unwrap();
    let (h, used) = Header::parse_prefix(&single).unwrap();
    let mut bad = single.clone();
    bad[used - 3] ^= 0x10;
    assert_eq!(h.keys().len(), 1);
    match open(
        &StaticResolver::new().with(aes.clone()),
        Profile::Document,
        b"d",
        &bad,
    )
    .await
    {
        Err(Error::UnwrapFailed { kek_id }) => assert_eq!(kek_id, aes.key_id()),
        other => panic!("expected UnwrapFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_wrap_is_byte_identical_to_the_local_kek() {
    let mut key = [0u8; 32];
    key.copy_from_slice(dek().expose_secret_bytes());
    for (alg, label) in [
        (WrapAlgorithm::A256Kw, "interop-kw"),
        (WrapAlgorithm::A256Kwp, "interop-kwp"),
    ] {
        import_aes(label, label.as_bytes(), &key);
        let hsm_kek = build(&uri(label, "secret-key"), alg).await;
        let local = LocalKek::from_aes_key(hsm_kek.key_id(), alg, &key).unwrap();
        for _ in 0..16 {
            let d = dek();
            let h = hsm_kek.wrap_key(&d).await.unwrap();
            let l = local.wrap_key(&d).await.unwrap();
            assert_eq!(h.wrapped, l.wrapped, "{alg}: HSM and local wraps differ");
            assert_eq!(h.kek_id, l.kek_id);
            assert!(local.unwrap_key(&h.wrapped).await.unwrap() == d);
            assert!(hsm_kek.unwrap_key(&l.wrapped).await.unwrap() == d);
        }
    }
    // RFC 3394 §4.6 (256-bit KEK, 256-bit key data), imported and wrapped in the HSM.
    let kek: [u8; 32] =
        hex::decode("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
            .unwrap()
            .try_into()
            .unwrap();
    import_aes("rfc3394", b"rfc3394", &kek);
    let k = build(&uri("rfc3394", "secret-key"), WrapAlgorithm::A256Kw).await;
    let data = DataKey::from_unwrapped(
        &hex::decode("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F").unwrap(),
    )
    .unwrap();
    assert_eq!(
        hex::encode_upper(k.wrap_key(&data).await.unwrap().wrapped),
        "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_oaep_interoperates_with_the_local_kek() {
    let local = common::rsa_kek(
        0,
        WrapAlgorithm::RsaOaep,
        CryptoProvider::default_provider(),
    );
    import_rsa_jwk("interop-rsa", common::rsa_jwk(0));
    let hsm_kek = build(&uri("interop-rsa", "private"), WrapAlgorithm::RsaOaep).await;
    for _ in 0..4 {
        let d = dek();
        // local wraps, the HSM unwraps
        let w = local.wrap_key(&d).await.unwrap();
        assert!(hsm_kek.unwrap_key(&w.wrapped).await.unwrap() == d);
        // the HSM wraps, the local key unwraps
        let w = hsm_kek.wrap_key(&d).await.unwrap();
        assert!(local.unwrap_key(&w.wrapped).await.unwrap() == d);
    }
}

#[test]
fn four_threads_times_500_cycles() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    gen_aes("threads");
    // Fewer sessions than threads, so callers also wait for a session.
    // `build_async`, in the token files' turn (see `BuildInTurn`).
    let kek = {
        let _turn = token_files_turn();
        rt.block_on(
            Pkcs11Kek::builder(uri("threads", "secret-key"))
                .module(&hsm().module)
                .pin(PIN)
                .max_sessions(3)
                .build_async(),
        )
        .unwrap()
    };
    assert_eq!(kek.algorithm(), WrapAlgorithm::A256Kw);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let kek = kek.clone();
            let handle = rt.handle().clone();
            scope.spawn(move || {
                for i in 0..500 {
                    let d = dek();
                    let w = handle
                        .block_on(kek.wrap_key(&d))
                        .unwrap_or_else(|e| panic!("thread {t} wrap {i}: {e}"));
                    let back = handle.block_on(kek.unwrap_key(&w.wrapped)).unwrap();
                    assert!(back == d, "thread {t} cycle {i}: different key");
                }
            });
        }
    });
    println!(
        "pkcs11: 4 threads x 500 wrap+unwrap cycles in {:?}",
        started.elapsed()
    );
    // Outside any runtime the calls run inline.
    let d = dek();
    let w = futures::executor::block_on(kek.wrap_key(&d)).unwrap();
    assert!(futures::executor::block_on(kek.unwrap_key(&w.wrapped)).unwrap() == d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_and_missing_things_give_clear_errors() {
    let module = &hsm().module;
    let pin_uri = format!("pkcs11:token={PIN_TOKEN};object=cmk;type=secret-key");

    // No PIN: private objects are invisible, and the error says so.
    let (kind, msg) = kek_error(Pkcs11Kek::builder(&pin_uri).module(module).build_in_turn());
    assert_eq!(kind, KekErrorKind::NotFound, "{msg}");
    assert!(
        msg.contains("object=cmk") && msg.contains(PIN_TOKEN) && msg.contains("no PIN"),
        "{msg}"
    );

    // A wrong PIN.
    let wrong = "97531";
    let r = Pkcs11Kek::builder(&pin_uri)
        .module(module)
        .pin(wrong)
        .build_in_turn();
    let (kind, msg) = kek_error(r);
    assert_eq!(kind, KekErrorKind::Unauthenticated, "{msg}");
    assert!(
        msg.contains("wrong PIN") && msg.contains(PIN_TOKEN),
        "{msg}"
    );
    assert!(!msg.contains(wrong), "the PIN leaked into {msg}");

    // A missing object.
    let r = Pkcs11Kek::builder(uri("does-not-exist", "secret-key"))
        .module(module)
        .pin(PIN)
        .build_in_turn();
    let (kind, msg) = kek_error(r);
    assert_eq!(kind, KekErrorKind::NotFound, "{msg}");
    assert!(
        msg.contains("does-not-exist") && msg.contains(TOKEN) && msg.contains("secret-key"),
        "{msg}"
    );
    assert!(!msg.contains(PIN), "{msg}");

    // A missing token.
    let r = Pkcs11Kek::builder("pkcs11:token=no-such-token;object=cmk")
        .module(module)
        .pin(PIN)
        .build_in_turn();
    let (kind, msg) = kek_error(r);
    assert_eq!(kind, KekErrorKind::NotFound, "{msg}");
    assert!(
        msg.contains("token `no-such-token` is not present"),
        "{msg}"
    );

    // A key of the wrong type for the algorithm.
    gen_aes("wrong-type");
    let r = Pkcs11Kek::builder(uri("wrong-type", "secret-key"))
        .module(module)
        .pin(PIN)
        .algorithm(WrapAlgorithm::RsaOaep)
        .build_in_turn();
    let (kind, msg) = kek_error(r);
    assert_eq!(kind, KekErrorKind::Misconfigured, "{msg}");
    assert!(msg.contains("wrong-type"), "{msg}");

    // A PIN in the URI is refused and not repeated.
    let r = Pkcs11Kek::builder(format!(
        "{}?pin-value=24680",
        uri("wrong-type", "secret-key")
    ))
    .module(module)
    .build_in_turn();
    let (kind, msg) = kek_error(r);
    assert_eq!(kind, KekErrorKind::Misconfigured, "{msg}");
    assert!(msg.contains("pin-value") && !msg.contains("24680"), "{msg}");

    // Debug shows neither PIN nor key.
    let k = build(&uri("wrong-type", "secret-key"), WrapAlgorithm::A256Kw).await;
    let d = format!("{k:?}");
    assert!(d.contains("kek-test") && !d.contains(PIN), "{d}");
    let builder = format!(
        "{:?}",
        Pkcs11Kek::builder(uri("x", "secret-key")).pin("s3cret")
    );
    assert!(
        !builder.contains("s3cret") && builder.contains("REDACTED"),
        "{builder}"
    );
    // The URI type parses what the key id prints.
    let parsed = Pkcs11Uri::parse(k.key_id()).unwrap();
    assert_eq!(parsed.object(), Some("wrong-type"));
}

#[test]
fn fixture_uses_the_module_from_the_environment_or_debian_paths() {
    let p = module_path();
    assert!(Path::new(&p).exists());
}

/// The CLI takes `--kek pkcs11:…` wherever it takes a key file.
#[cfg(feature = "cli")]
#[test]
fn cli_encrypts_and_decrypts_with_an_hsm_key() {
    let h = hsm();
    gen_aes("cli-aes");
    let dir = common::tempdir();
    let msg = common::data(50_000, 5);
    std::fs::write(dir.join("plain"), &msg).unwrap();
    let kek = uri("cli-aes", "secret-key");
    let run = |args: &[&str]| {
        let _turn = token_files_turn();
        std::process::Command::new(env!("CARGO_BIN_EXE_cmk-envelope"))
            .args(args)
            .current_dir(&dir)
            .env("PKCS11_MODULE", &h.module)
            .env("CMK_PKCS11_PIN", PIN)
            .output()
            .unwrap()
    };
    let out = run(&[
        "encrypt",
        "--kek",
        &kek,
        "--context",
        "c",
        "-o",
        "env",
        "plain",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["inspect", "env"]);
    let header: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(header["keys"][0]["kid"].as_str().unwrap(), kek.as_str());
    let out = run(&[
        "decrypt",
        "--kek",
        &kek,
        "--context",
        "c",
        "-o",
        "out",
        "env",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dir.join("out")).unwrap(), msg);
    // a missing object: one clear line, no PIN
    let out = run(&[
        "decrypt",
        "--kek",
        &uri("nope", "secret-key"),
        "--context",
        "c",
        "-o",
        "out2",
        "env",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    assert!(err.contains("nope") && !err.contains(PIN), "{err}");
    assert!(!dir.join("out2").exists());
}
