//! Envelope round trips, key handling, the detached form, random access and
//! the dropped-writer guarantee.

mod common;

use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cmk_envelope::{
    open, seal, CryptoProvider, DecryptingReader, Decryptor, Encryptor, Error, Header,
    KeyEncryptionKey, Profile, RangePlan, StaticResolver, WrapAlgorithm,
};
use common::{aes_kek, data};

const CTX: &[u8] = b"container/blob-1";

fn resolver(keks: &[&Arc<dyn KeyEncryptionKey>]) -> StaticResolver {
    keks.iter().map(|k| Arc::clone(k)).collect()
}

/// The reader of an embedded envelope: header read from `src`, then the
/// body decrypted from where that left it.
async fn embedded_reader<R: Read>(
    mut src: R,
    resolver: &StaticResolver,
) -> cmk_envelope::Result<DecryptingReader<R>> {
    let h = Header::read_from(&mut src)?;
    Decryptor::new(&h, resolver, Profile::Blob, CTX)
        .await?
        .decrypt(src)
}

#[tokio::test]
async fn round_trip_sizes_and_profiles() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let r = resolver(&[&kek]);
    for profile in [Profile::Blob, Profile::Document, Profile::Index] {
        for len in [0usize, 1, 16383, 16384, 16385, 3 * 16384, 100_000] {
            let msg = data(len, 1);
            let env = seal(std::slice::from_ref(&kek), profile, CTX, &msg)
                .await
                .unwrap();
            let h = Header::parse_prefix(&env).unwrap().0;
            assert_eq!(h.profile(), profile);
            assert_eq!(
                env.len() as u64,
                h.encoded_len() as u64 + cmk_envelope::stream::layout::body_len(len as u64)
            );
            assert_eq!(
                open(&r, profile, CTX, &env).await.unwrap(),
                msg,
                "len {len}"
            );
        }
    }
}

#[tokio::test]
async fn providers_interoperate_on_envelopes() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kwp);
    let r = resolver(&[&kek]);
    let msg = data(70_000, 2);
    for enc in CryptoProvider::all() {
        for dec in CryptoProvider::all() {
            let env = Encryptor::new(std::slice::from_ref(&kek), Profile::Blob, CTX)
                .await
                .unwrap()
                .provider(enc)
                .seal(&msg)
                .unwrap();
            let (h, n) = Header::parse_prefix(&env).unwrap();
            let d = Decryptor::new(&h, &r, Profile::Blob, CTX)
                .await
                .unwrap()
                .provider(dec);
            assert_eq!(
                d.open(&env[n..]).unwrap(),
                msg,
                "{} -> {}",
                enc.name(),
                dec.name()
            );
        }
    }
}

#[tokio::test]
async fn several_keks_any_one_opens() {
    let primary = aes_kek("primary", WrapAlgorithm::A256Kw);
    let dr = common::rsa_kek(
        0,
        WrapAlgorithm::RsaOaep256,
        CryptoProvider::default_provider(),
    );
    let msg = data(5000, 3);
    let env = seal(&[primary.clone(), dr.clone()], Profile::Blob, CTX, &msg)
        .await
        .unwrap();
    let h = Header::parse_prefix(&env).unwrap().0;
    assert_eq!(h.keys().len(), 2);
    assert_eq!(h.keys()[1].kek_id, dr.key_id());
    assert_eq!(
        open(&resolver(&[&primary]), Profile::Blob, CTX, &env)
            .await
            .unwrap(),
        msg
    );
    assert_eq!(
        open(&resolver(&[&dr]), Profile::Blob, CTX, &env)
            .await
            .unwrap(),
        msg
    );
}

#[tokio::test]
async fn unknown_kid_wrong_key_wrong_context_wrong_profile() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let env = seal(std::slice::from_ref(&kek), Profile::Blob, CTX, b"secret")
        .await
        .unwrap();

    let other = aes_kek("k2", WrapAlgorithm::A256Kw);
    match open(&resolver(&[&other]), Profile::Blob, CTX, &env).await {
        Err(Error::UnknownKek { kek_ids }) => assert_eq!(kek_ids, vec!["k1".to_string()]),
        r => panic!("{r:?}"),
    }
    // Same id, different key material: the KEK refuses to unwrap.
    let impostor = aes_kek("k1", WrapAlgorithm::A256Kw);
    assert!(matches!(
        open(&resolver(&[&impostor]), Profile::Blob, CTX, &env).await,
        Err(Error::UnwrapFailed { .. })
    ));
    // Same id, other algorithm.
    let wrong_alg = aes_kek("k1", WrapAlgorithm::A256Kwp);
    assert!(open(&resolver(&[&wrong_alg]), Profile::Blob, CTX, &env)
        .await
        .is_err());

    let r = resolver(&[&kek]);
    assert!(matches!(
        open(&r, Profile::Blob, b"container/blob-2", &env).await,
        Err(Error::CommitmentMismatch)
    ));
    assert!(matches!(
        open(&r, Profile::Index, CTX, &env).await,
        Err(Error::CommitmentMismatch)
    ));
    // Profile byte rewritten in the header: the commitment catches it.
    let mut moved = env.clone();
    moved[6] = Profile::Index.to_byte();
    assert!(matches!(
        open(&r, Profile::Index, CTX, &moved).await,
        Err(Error::CommitmentMismatch)
    ));
}

#[tokio::test]
async fn detached_form_has_the_same_bytes() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let msg = data(40_000, 4);
    let enc = Encryptor::new(std::slice::from_ref(&kek), Profile::Blob, CTX)
        .await
        .unwrap()
        .detached();
    let header = enc.header().to_bytes();
    let body = enc.seal(&msg).unwrap();
    let h = Header::parse(&header).unwrap();
    let d = Decryptor::new(&h, &resolver(&[&kek]), Profile::Blob, CTX)
        .await
        .unwrap();
    assert_eq!(d.open(&body).unwrap(), msg);
    // header || body is a valid embedded envelope
    let mut embedded = header.clone();
    embedded.extend_from_slice(&body);
    assert_eq!(
        open(&resolver(&[&kek]), Profile::Blob, CTX, &embedded)
            .await
            .unwrap(),
        msg
    );
    // header from one envelope, body from another: commitment mismatch
    let body2 = Encryptor::new(std::slice::from_ref(&kek), Profile::Blob, CTX)
        .await
        .unwrap()
        .detached()
        .seal(&msg)
        .unwrap();
    let d = Decryptor::new(&h, &resolver(&[&kek]), Profile::Blob, CTX)
        .await
        .unwrap();
    assert!(matches!(d.open(&body2), Err(Error::CommitmentMismatch)));
}

#[tokio::test]
async fn streaming_reader_over_embedded_envelope() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let msg = data(50_000, 5);
    let mut w = Encryptor::new(std::slice::from_ref(&kek), Profile::Blob, CTX)
        .await
        .unwrap()
        .wrap_output(Vec::new())
        .unwrap();
    for piece in msg.chunks(777) {
        w.write_all(piece).unwrap();
    }
    assert_eq!(w.plaintext_len(), msg.len() as u64);
    let env = w.finish().unwrap();
    let mut r = embedded_reader(Cursor::new(&env), &resolver(&[&kek]))
        .await
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, msg);
    assert_eq!(r.authenticated_len(), Some(msg.len() as u64));
}

#[tokio::test]
async fn dropped_writer_output_fails_to_decrypt() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let r = resolver(&[&kek]);
    for len in [0usize, 10, 16384, 16384 * 2 + 5] {
        let mut out = Vec::new();
        {
            let mut w = Encryptor::new(std::slice::from_ref(&kek), Profile::Blob, CTX)
                .await
                .unwrap()
                .wrap_output(&mut out)
                .unwrap();
            w.write_all(&data(len, 6)).unwrap();
            w.flush().unwrap();
            // dropped without finish()
        }
        match open(&r, Profile::Blob, CTX, &out).await {
            Err(Error::Truncated) => {}
            other => panic!("len {len}: dropped writer produced {other:?}"),
        }
        // and the streaming reader releases at most the full chunks, then fails
        let mut rd = embedded_reader(Cursor::new(&out), &r).await.unwrap();
        let mut sink = Vec::new();
        let e = rd.read_to_end(&mut sink).unwrap_err();
        assert!(matches!(Error::from(e), Error::Truncated));
        assert_eq!(sink.len(), len / 16384 * 16384);
    }
}

/// A source that counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[tokio::test]
async fn random_access_reads_only_the_chunks_it_needs() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let msg = data(3 * 1024 * 1024 + 123, 7); // 193 chunks
    let env = seal(std::slice::from_ref(&kek), Profile::Blob, CTX, &msg)
        .await
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let mut src = Counting {
        inner: Cursor::new(&env),
        read: counter.clone(),
    };
    let h = Header::read_from(&mut src).unwrap();
    let mut r = Decryptor::new(&h, &resolver(&[&kek]), Profile::Blob, CTX)
        .await
        .unwrap()
        .decrypt(src)
        .unwrap();

    let mut buf = vec![0u8; 4096];
    let mut x = 12345u64;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = x % (msg.len() as u64 - 4096);
        counter.store(0, Ordering::Relaxed);
        let n = r.read_at(off, &mut buf).unwrap();
        assert_eq!(n, 4096);
        assert_eq!(&buf[..], &msg[off as usize..off as usize + 4096]);
        // at most two chunks read (and so at most two decrypted)
        assert!(
            counter.load(Ordering::Relaxed) <= 2 * 16400,
            "read {} bytes",
            counter.load(Ordering::Relaxed)
        );
    }
    // reads at and past the end are authenticated, then short
    let n = r.read_at(msg.len() as u64 - 10, &mut buf).unwrap();
    assert_eq!(n, 10);
    assert_eq!(r.read_at(msg.len() as u64, &mut buf).unwrap(), 0);
    assert_eq!(r.read_at(msg.len() as u64 + 99_999, &mut buf).unwrap(), 0);
    assert_eq!(r.authenticated_len(), Some(msg.len() as u64));

    // Seek + Read mix
    let end = r.seek(SeekFrom::End(-5000)).unwrap();
    assert_eq!(end, msg.len() as u64 - 5000);
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &msg[msg.len() - 5000..]);
    r.seek(SeekFrom::Start(16380)).unwrap();
    let mut eight = [0u8; 8];
    r.read_exact(&mut eight).unwrap();
    assert_eq!(&eight, &msg[16380..16388]);
    r.seek(SeekFrom::Current(-8)).unwrap();
    r.read_exact(&mut eight).unwrap();
    assert_eq!(&eight, &msg[16380..16388]);
    // a read_at in between does not move the Read position
    r.read_at(1_000_000, &mut buf).unwrap();
    r.read_exact(&mut eight).unwrap();
    assert_eq!(&eight, &msg[16388..16396]);
}

#[tokio::test]
async fn seek_from_end_authenticates_the_final_chunk() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let msg = data(40_000, 8);
    let env = seal(std::slice::from_ref(&kek), Profile::Blob, CTX, &msg)
        .await
        .unwrap();
    // cut the final chunk short by 1 byte: the length still "looks" valid
    let cut = &env[..env.len() - 1];
    let mut src = Cursor::new(cut);
    let h = Header::read_from(&mut src).unwrap();
    let mut r = Decryptor::new(&h, &resolver(&[&kek]), Profile::Blob, CTX)
        .await
        .unwrap()
        .decrypt(src)
        .unwrap();
    let e = r.seek(SeekFrom::End(0)).unwrap_err();
    assert!(matches!(
        Error::from(e),
        Error::ChunkAuthentication { chunk: 2 }
    ));
    // and later reads keep failing
    assert!(r.read(&mut [0u8; 10]).is_err());
}

#[tokio::test]
async fn range_plans_decrypt_exactly_the_fetched_chunks() {
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let msg = data(100_000, 9);
    let enc = Encryptor::new(std::slice::from_ref(&kek), Profile::Blob, CTX)
        .await
        .unwrap()
        .detached();
    let header = enc.header().to_bytes();
    let body = enc.seal(&msg).unwrap();
    let h = Header::parse(&header).unwrap();
    let bd = Decryptor::new(&h, &resolver(&[&kek]), Profile::Blob, CTX)
        .await
        .unwrap()
        .ranges(&body[..56])
        .unwrap();
    for (a, b) in [
        (0u64, 1u64),
        (0, 4096),
        (16380, 16390),
        (50_000, 99_999),
        (99_000, 200_000),
        (100_000, 100_000),
        (0, 100_000),
    ] {
        let plan = RangePlan::new(a..b, body.len() as u64).unwrap();
        let ct = plan.ciphertext();
        let mut fetched = body[ct.start as usize..ct.end as usize].to_vec();
        let got = bd.decrypt_range(&plan, &mut fetched).unwrap();
        let (a, b) = (a.min(100_000) as usize, b.min(100_000) as usize);
        assert_eq!(got, &msg[a..b], "range {a}..{b}");
    }
    // a fetched range with a flipped bit fails and returns nothing
    let plan = RangePlan::new(20_000..60_000, body.len() as u64).unwrap();
    let ct = plan.ciphertext();
    let mut fetched = body[ct.start as usize..ct.end as usize].to_vec();
    fetched[20_000] ^= 1;
    assert!(matches!(
        bd.decrypt_range(&plan, &mut fetched),
        Err(Error::ChunkAuthentication { chunk: 2 })
    ));
    // a short fetch is refused
    let mut short = body[ct.start as usize..ct.end as usize - 1].to_vec();
    assert!(bd.decrypt_range(&plan, &mut short).is_err());
}

#[tokio::test]
async fn header_is_rejected_before_any_kek_call() {
    #[derive(Debug)]
    struct Panicking;
    #[async_trait::async_trait]
    impl KeyEncryptionKey for Panicking {
        fn key_id(&self) -> &str {
            "k1"
        }
        fn algorithm(&self) -> WrapAlgorithm {
            WrapAlgorithm::A256Kw
        }
        async fn wrap_key_material(
            &self,
            _: &cmk_envelope::KeyMaterial,
        ) -> cmk_envelope::Result<cmk_envelope::WrappedKey> {
            panic!("wrap called")
        }
        async fn unwrap_key_material(
            &self,
            _: &[u8],
        ) -> cmk_envelope::Result<cmk_envelope::KeyMaterial> {
            panic!("unwrap called for a malformed header")
        }
    }
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let env = seal(&[kek], Profile::Blob, CTX, b"x").await.unwrap();
    let r: StaticResolver = [Arc::new(Panicking) as Arc<dyn KeyEncryptionKey>]
        .into_iter()
        .collect();
    for (i, v) in [(4usize, 9u8), (5, 2), (6, 7), (11, 0), (12, 9)] {
        let mut bad = env.clone();
        bad[i] = v;
        assert!(
            matches!(
                open(&r, Profile::Blob, CTX, &bad).await,
                Err(Error::MalformedHeader(_))
            ),
            "byte {i}"
        );
    }
}

#[tokio::test]
async fn a_failed_write_poisons_the_writer() {
    /// Accepts `budget` bytes, then fails.
    struct Failing {
        budget: usize,
    }
    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.budget == 0 {
                return Err(std::io::Error::other("disk full"));
            }
            let n = buf.len().min(self.budget);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let kek = aes_kek("k1", WrapAlgorithm::A256Kw);
    let enc = Encryptor::new(std::slice::from_ref(&kek), Profile::Blob, CTX)
        .await
        .unwrap();
    let mut w = enc.wrap_output(Failing { budget: 5000 }).unwrap();
    let e = w.write_all(&data(40_000, 1)).unwrap_err();
    assert_eq!(e.to_string(), "disk full");
    // every later write, and finish, fail: no half-sealed chunk is re-sealed
    assert!(w.write_all(b"more").is_err());
    assert!(matches!(w.finish(), Err(Error::ApiMisuse(_))));
}
