//! What two service instances sharing one scope store see of each other,
//! run unchanged over every store: two `FsScopeStore` objects on one
//! directory (tests/scope_lifecycle.rs) and two `BlobScopeStore` objects on
//! one Azurite container (tests/azure_blob.rs). Each instance has its own
//! store object, as two processes would.

#![allow(dead_code)]

use std::io::{Cursor, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, ScopeStore};
use cmk_envelope::{
    open, seal, Encryptor, Error, Header, KekError, KekErrorKind, KeyEncryptionKey, KeyMaterial,
    KeyResolver, LocalKek, Profile, StaticResolver, WrapAlgorithm, WrappedKey,
};

/// 16 KiB, the chunk size.
pub const CHUNK: usize = 16 * 1024;

/// How late past its bound a refusal may be on a loaded 2-core machine
/// (the polling step plus scheduling).
pub const SLACK: Duration = Duration::from_millis(250);

/// Wraps a KEK, counts its calls, and can be switched off (as a customer
/// disabling the key in their vault would).
#[derive(Debug)]
pub struct Switchable {
    pub inner: Arc<dyn KeyEncryptionKey>,
    pub wraps: AtomicU64,
    pub unwraps: AtomicU64,
    pub off: AtomicBool,
    pub delay: Duration,
}

impl Switchable {
    pub fn new(inner: Arc<dyn KeyEncryptionKey>) -> Arc<Switchable> {
        Self::slow(inner, Duration::ZERO)
    }

    pub fn slow(inner: Arc<dyn KeyEncryptionKey>, delay: Duration) -> Arc<Switchable> {
        Arc::new(Switchable {
            inner,
            wraps: 0.into(),
            unwraps: 0.into(),
            off: false.into(),
            delay,
        })
    }

    fn check(&self) -> cmk_envelope::Result<()> {
        if self.off.load(Ordering::SeqCst) {
            return Err(
                KekError::new("test", KekErrorKind::KeyUnavailable, "key is disabled").into(),
            );
        }
        Ok(())
    }
}

#[async_trait]
impl KeyEncryptionKey for Switchable {
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }
    fn algorithm(&self) -> WrapAlgorithm {
        self.inner.algorithm()
    }
    fn key_container(&self) -> Option<String> {
        self.inner.key_container()
    }
    async fn wrap_key_material(&self, m: &KeyMaterial) -> cmk_envelope::Result<WrappedKey> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.wrap_key_material(m).await
    }
    async fn unwrap_key_material(&self, wrapped: &[u8]) -> cmk_envelope::Result<KeyMaterial> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.check()?;
        self.inner.unwrap_key_material(wrapped).await
    }
}

/// A local KEK saved in `dir` (its key container is that directory).
pub fn file_kek(dir: &std::path::Path, kid: &str, alg: WrapAlgorithm) -> Arc<dyn KeyEncryptionKey> {
    let path = dir.join(format!("{kid}.jwk"));
    let bits = alg.is_rsa().then_some(3072);
    LocalKek::generate(alg, Some(kid.into()), bits)
        .unwrap()
        .save_jwk(&path, false)
        .unwrap();
    Arc::new(LocalKek::from_jwk_file(&path).unwrap())
}

/// A cache policy with a short TTL (and back-off), so tests stay fast.
pub fn policy(ttl: Duration) -> CachePolicy {
    CachePolicy {
        ttl,
        failure_backoff: Duration::from_millis(20),
        unknown_version_reread: Duration::from_millis(20),
        ..CachePolicy::default()
    }
}

/// The plaintext of a test object.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The kid the first key entry of an embedded envelope names.
pub fn kid_of(envelope: &[u8]) -> String {
    Header::parse_prefix(envelope).unwrap().0.keys()[0]
        .kek_id
        .clone()
}

fn is_destroyed(e: &Error) -> bool {
    matches!(e, Error::ScopeNotFound { .. })
}

/// A destroyed scope, as a reader or writer reports it through `io::Error`.
fn io_destroyed(e: std::io::Error) -> bool {
    is_destroyed(&Error::from(e))
}

/// A creates a scope, B opens it; B has a reader and a writer open when A
/// destroys the scope. Within the TTL of the destroy, B refuses to seal,
/// to open, to read from its open reader and to write through its open
/// writer; A's own open reader stops at once. Returns the time from the
/// end of A's destroy to B's first refusal (every kind refused by then or
/// soon after, within the TTL).
pub async fn destroy_is_seen_within_the_ttl(
    a_store: Arc<dyn ScopeStore>,
    b_store: Arc<dyn ScopeStore>,
    id: &str,
    ttl: Duration,
) -> Duration {
    let cmk = file_kek(&crate::common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let a = EncryptionScope::create(a_store, id, Cmk::CustomerManaged(cmk.clone()), policy(ttl))
        .await
        .unwrap();
    let b = EncryptionScope::open(b_store, id, Cmk::CustomerManaged(cmk), policy(ttl))
        .await
        .unwrap();
    let msg = data(40_000, 1);
    let by_a = seal(&[a.kek()], Profile::Blob, b"by-a", &msg)
        .await
        .unwrap();
    let rb = b.resolver();
    assert_eq!(open(&rb, Profile::Blob, b"by-a", &by_a).await.unwrap(), msg);

    // Handles opened before the destroy: on B a reader of 64 chunks (read
    // one chunk per step) and a writer (one chunk per step); on A a reader.
    let big = data(64 * CHUNK, 2);
    let env = seal(&[b.kek()], Profile::Blob, b"big", &big).await.unwrap();
    let mut b_reader =
        crate::common::open_reader(Cursor::new(env.clone()), &rb, Profile::Blob, b"big")
            .await
            .unwrap();
    let mut a_reader =
        crate::common::open_reader(Cursor::new(env), &a.resolver(), Profile::Blob, b"big")
            .await
            .unwrap();
    let mut b_writer = Encryptor::new(&[b.kek()], Profile::Blob, b"w")
        .await
        .unwrap()
        .wrap_output(Vec::new())
        .unwrap();
    let mut buf = vec![0u8; CHUNK];
    b_reader.read_exact(&mut buf).unwrap();
    a_reader.read_exact(&mut buf).unwrap();
    b_writer.write_all(&big[..CHUNK]).unwrap();

    a.destroy(id).await.unwrap();
    let destroyed = Instant::now();
    // A's own handles stop at once.
    assert!(io_destroyed(a_reader.read_exact(&mut buf).unwrap_err()));

    let (mut seal_at, mut open_at, mut read_at, mut write_at) = (None, None, None, None);
    while destroyed.elapsed() < ttl + SLACK * 4 {
        let now = destroyed.elapsed();
        match seal(&[b.kek()], Profile::Blob, b"new", b"x").await {
            Ok(_) => assert!(seal_at.is_none(), "sealed again after a refusal"),
            Err(e) => {
                assert!(is_destroyed(&e), "{e}");
                seal_at.get_or_insert(now);
            }
        }
        match open(&rb, Profile::Blob, b"by-a", &by_a).await {
            Ok(_) => assert!(open_at.is_none(), "opened again after a refusal"),
            Err(e) => {
                assert!(is_destroyed(&e), "{e}");
                open_at.get_or_insert(now);
            }
        }
        match b_reader.read_exact(&mut buf) {
            Ok(()) => assert!(read_at.is_none(), "read again after a refusal"),
            Err(e) => {
                assert!(io_destroyed(e));
                read_at.get_or_insert(now);
            }
        }
        match b_writer.write_all(&big[..CHUNK]) {
            Ok(()) => assert!(write_at.is_none(), "wrote again after a refusal"),
            Err(e) => {
                assert!(io_destroyed(e));
                write_at.get_or_insert(now);
            }
        }
        if [seal_at, open_at, read_at, write_at]
            .iter()
            .all(Option::is_some)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let times = [seal_at, open_at, read_at, write_at];
    for (what, t) in ["seal", "open", "open reader", "open writer"]
        .iter()
        .zip(times)
    {
        let t = t.unwrap_or_else(|| panic!("B never refused to {what}"));
        assert!(
            t <= ttl + SLACK,
            "B refused to {what} only after {t:?} (TTL {ttl:?})"
        );
    }
    // The writer's output never becomes a valid envelope.
    assert!(b_writer.finish().is_err());
    times.iter().flatten().min().copied().unwrap()
}

/// A adds a scope key version: B opens A's new objects at once (one store
/// read for the version its record lacked) and seals under the new version
/// within the TTL; old objects stay readable. Returns how long B took to
/// seal under the new version.
pub async fn key_rotation_is_followed(
    a_store: Arc<dyn ScopeStore>,
    b_store: Arc<dyn ScopeStore>,
    id: &str,
    ttl: Duration,
) -> Duration {
    let cmk = file_kek(&crate::common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let a = EncryptionScope::create(a_store, id, Cmk::CustomerManaged(cmk.clone()), policy(ttl))
        .await
        .unwrap();
    let b = EncryptionScope::open(b_store, id, Cmk::CustomerManaged(cmk), policy(ttl))
        .await
        .unwrap();
    let old = seal(&[b.kek()], Profile::Blob, b"old", b"one")
        .await
        .unwrap();
    assert_eq!(kid_of(&old), format!("scope:{id}/1"));

    assert_eq!(a.rotate_scope_key().await.unwrap(), 2);
    let rotated = Instant::now();
    let new = seal(&[a.kek()], Profile::Blob, b"new", b"two")
        .await
        .unwrap();
    assert_eq!(kid_of(&new), format!("scope:{id}/2"));

    let reads = b.cache_stats().store_reads;
    let rb = b.resolver();
    assert_eq!(
        open(&rb, Profile::Blob, b"new", &new).await.unwrap(),
        b"two"
    );
    assert_eq!(b.cache_stats().store_reads, reads + 1, "one re-read");

    let followed = loop {
        let env = seal(&[b.kek()], Profile::Blob, b"b", b"three")
            .await
            .unwrap();
        if kid_of(&env) == format!("scope:{id}/2") {
            break rotated.elapsed();
        }
        assert!(
            rotated.elapsed() < ttl + SLACK,
            "B still seals under version 1"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        open(&rb, Profile::Blob, b"old", &old).await.unwrap(),
        b"one"
    );
    assert_eq!(b.record().current, 2);
    followed
}

/// A rotates the scope to another CMK of the same vault. B, opened with a
/// resolver over the vault's keys, keeps working throughout, stops calling
/// the old key, and keeps working once the old key is disabled. C, given
/// only the old key, fails within the TTL with an error naming the new key,
/// and never succeeds again on stale state.
pub async fn cmk_rotation_is_followed(
    a_store: Arc<dyn ScopeStore>,
    b_store: Arc<dyn ScopeStore>,
    c_store: Arc<dyn ScopeStore>,
    id: &str,
    ttl: Duration,
) {
    let vault = crate::common::tempdir();
    let cmk1 = file_kek(&vault, "cmk-1", WrapAlgorithm::A256Kw);
    let cmk2 = file_kek(&vault, "cmk-2", WrapAlgorithm::A256Kw);
    // B's view of the vault, counting B's calls.
    let b1 = Switchable::new(cmk1.clone());
    let b2 = Switchable::new(cmk2.clone());
    let vault_keys: StaticResolver = [
        b1.clone() as Arc<dyn KeyEncryptionKey>,
        b2.clone() as Arc<dyn KeyEncryptionKey>,
    ]
    .into_iter()
    .collect();
    let a = EncryptionScope::create(a_store, id, Cmk::CustomerManaged(cmk1.clone()), policy(ttl))
        .await
        .unwrap();
    let b = EncryptionScope::open_with_resolver(
        b_store,
        id,
        Cmk::CustomerManaged(b1.clone()),
        Some(Arc::new(vault_keys) as Arc<dyn KeyResolver>),
        policy(ttl),
    )
    .await
    .unwrap();
    let c = EncryptionScope::open(c_store, id, Cmk::CustomerManaged(cmk1), policy(ttl))
        .await
        .unwrap();
    let x = seal(&[a.kek()], Profile::Blob, b"x", b"data")
        .await
        .unwrap();
    assert_eq!(
        open(&b.resolver(), Profile::Blob, b"x", &x).await.unwrap(),
        b"data"
    );
    assert_eq!(
        open(&c.resolver(), Profile::Blob, b"x", &x).await.unwrap(),
        b"data"
    );

    a.rotate_cmk(Cmk::CustomerManaged(cmk2)).await.unwrap();
    let rotated = Instant::now();
    let b_works = || async {
        let env = seal(&[b.kek()], Profile::Blob, b"y", b"more")
            .await
            .unwrap();
        assert_eq!(
            open(&b.resolver(), Profile::Blob, b"y", &env)
                .await
                .unwrap(),
            b"more"
        );
        assert_eq!(
            open(&b.resolver(), Profile::Blob, b"x", &x).await.unwrap(),
            b"data"
        );
    };
    let mut c_failed = None;
    while rotated.elapsed() < ttl * 2 + SLACK {
        b_works().await;
        let now = rotated.elapsed();
        match seal(&[c.kek()], Profile::Blob, b"z", b"stale").await {
            Ok(_) => assert!(c_failed.is_none(), "C succeeded again after failing"),
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains("cmk-2") && text.contains("not given"),
                    "{text}"
                );
                c_failed.get_or_insert(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c_failed = c_failed.expect("C kept sealing on stale state");
    assert!(c_failed <= ttl + SLACK, "C failed only after {c_failed:?}");
    assert!(open(&c.resolver(), Profile::Blob, b"x", &x).await.is_err());

    // B has moved to the new key: the old one is no longer called...
    assert!(b2.unwraps.load(Ordering::SeqCst) > 0);
    let old_calls = b1.unwraps.load(Ordering::SeqCst) + b1.wraps.load(Ordering::SeqCst);
    let start = Instant::now();
    while start.elapsed() < ttl + SLACK {
        b_works().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        b1.unwraps.load(Ordering::SeqCst) + b1.wraps.load(Ordering::SeqCst),
        old_calls,
        "B called the old CMK after moving to the new one"
    );
    // ...so it can be disabled while B keeps working.
    b1.off.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while start.elapsed() < ttl + SLACK {
        b_works().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(b.cache_stats().kms_calls > 0);
}
