//! What a crate that depends on cmk-envelope gets, through the public API
//! alone (an integration test links the crate as any dependent does):
//!
//! * `?` on a read of a tampered or truncated body gives the crate's own
//!   error — [`Error::ChunkAuthentication`], [`Error::Truncated`] — never an
//!   [`Error::Io`] hiding it; a genuine I/O failure stays [`Error::Io`];
//! * key ids taken from a hostile header reach errors escaped and bounded.
//!
//! (That such a crate can name neither the fuzz entry points nor a
//! hand-made `RangePlan` is checked by `compile_fail` doctests on
//! [`cmk_envelope::envelope`] and [`cmk_envelope::RangePlan`].)

mod common;

use std::io::{Cursor, Read};
use std::sync::Arc;

use cmk_envelope::{
    seal, Decryptor, Error, Header, KeyEncryptionKey, LocalKek, Profile, StaticResolver,
    WrapAlgorithm,
};
use common::{aes_kek, data};

const CTX: &[u8] = b"container/public";

/// What a caller writes: read everything, `?` the error.
fn read_all(mut r: impl Read) -> cmk_envelope::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

async fn reader_of<'a>(
    env: &'a [u8],
    kek: &Arc<dyn KeyEncryptionKey>,
) -> cmk_envelope::Result<cmk_envelope::DecryptingReader<Cursor<&'a [u8]>>> {
    let mut src = Cursor::new(env);
    let header = Header::read_from(&mut src)?;
    let resolver: StaticResolver = [kek.clone()].into_iter().collect();
    Decryptor::new(&header, &resolver, Profile::Blob, CTX)
        .await?
        .decrypt(src)
}

#[tokio::test]
async fn question_mark_on_a_tampered_read_is_the_crate_error() {
    let kek = aes_kek("public", WrapAlgorithm::A256Kw);
    let msg = data(3 * 16384 + 10, 1);
    let env = seal(std::slice::from_ref(&kek), Profile::Blob, CTX, &msg)
        .await
        .unwrap();
    let chunk1 = Header::parse_prefix(&env).unwrap().1 + 56 + 16400 + 9;

    let mut tampered = env.clone();
    tampered[chunk1] ^= 1;
    let r = reader_of(&tampered, &kek).await.unwrap();
    match read_all(r) {
        Err(Error::ChunkAuthentication { chunk: 1 }) => {}
        other => panic!("expected ChunkAuthentication {{ chunk: 1 }}, got {other:?}"),
    }

    let r = reader_of(&env[..env.len() - 5], &kek).await.unwrap();
    assert!(matches!(
        read_all(r),
        Err(Error::ChunkAuthentication { chunk: 3 })
    ));
    let cut = env.len() - 26; // right after the last full chunk
    let r = reader_of(&env[..cut], &kek).await.unwrap();
    assert!(matches!(read_all(r), Err(Error::Truncated)));

    // The untouched envelope reads back.
    let r = reader_of(&env, &kek).await.unwrap();
    assert_eq!(read_all(r).unwrap(), msg);
}

#[tokio::test]
async fn question_mark_on_the_async_reader_is_the_crate_error() {
    use tokio::io::AsyncReadExt;
    let kek = aes_kek("public", WrapAlgorithm::A256Kw);
    let env = seal(
        std::slice::from_ref(&kek),
        Profile::Blob,
        CTX,
        &data(40_000, 2),
    )
    .await
    .unwrap();
    let mut tampered = env.clone();
    let n = tampered.len();
    tampered[n - 5] ^= 1;
    let read = async {
        let mut src = &tampered[..];
        let header = Header::read_from_async(&mut src).await?;
        let resolver: StaticResolver = [kek.clone()].into_iter().collect();
        let mut r = Decryptor::new(&header, &resolver, Profile::Blob, CTX)
            .await?
            .decrypt_async(src)
            .await?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).await?;
        cmk_envelope::Result::Ok(out)
    };
    assert!(matches!(
        read.await,
        Err(Error::ChunkAuthentication { chunk: 2 })
    ));
}

#[test]
fn a_genuine_io_failure_stays_an_io_error() {
    struct Disk;
    impl Read for Disk {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("bad sector"))
        }
    }
    match read_all(Disk) {
        Err(Error::Io(e)) => assert_eq!(e.to_string(), "bad sector"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hostile_key_ids_reach_errors_escaped_and_bounded() {
    // Sixteen KEKs whose ids carry terminal escape sequences, a right-to-
    // left override and a newline, each at the format's 2,048-byte limit.
    let keks: Vec<Arc<dyn KeyEncryptionKey>> = (0..16)
        .map(|i| {
            let mut kid = format!("k{i}\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}\n");
            kid.push_str(&"x".repeat(2048 - kid.len()));
            Arc::new(LocalKek::from_aes_key(&kid, WrapAlgorithm::A256Kw, &[i as u8; 32]).unwrap())
                as Arc<dyn KeyEncryptionKey>
        })
        .collect();
    let env = seal(&keks, Profile::Blob, CTX, b"x").await.unwrap();
    let stranger: StaticResolver = [aes_kek("other", WrapAlgorithm::A256Kw)]
        .into_iter()
        .collect();
    let e = cmk_envelope::open(&stranger, Profile::Blob, CTX, &env)
        .await
        .unwrap_err();
    let Error::UnknownKek { kek_ids } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(kek_ids.len(), 16);
    let text = e.to_string();
    assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    assert!(!text.contains('\u{202e}'), "{text:?}");
    assert!(text.len() < 16 * 300, "{} bytes", text.len());
    assert!(text.contains("k0\\u{1b}]0;owned"), "{text:?}");
}
