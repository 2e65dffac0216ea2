//! The envelope's own parsers: the header, one-shot opening, random
//! access, and the raw chunk layer.

use std::io::Cursor;
use std::sync::Arc;

use pollster::block_on;

use super::{assert_input_error, kek, resolver, CONTEXT};
use crate::kek::{KeyEncryptionKey, LocalKek, WrapAlgorithm};
use crate::{Decryptor, Header, Profile};

/// The input key of raw chunk-layer ciphertexts ([`chunk_open`]).
const CHUNK_KEY: [u8; 32] = [7; 32];

/// `header_parse`: parses a header; if it parses, its encoding must give
/// back the input (and the same for a header at the start of longer input,
/// parsed from bytes or read from a stream).
pub fn header(data: &[u8]) {
    match Header::parse(data) {
        Ok(h) => assert_eq!(h.to_bytes(), data, "header re-encoding differs"),
        Err(e) => assert_input_error(&e, "Header::parse"),
    }
    if let Ok((h, n)) = Header::parse_prefix(data) {
        assert_eq!(h.to_bytes(), &data[..n]);
    }
    match Header::read_from(&mut &data[..]) {
        Ok(h) => assert_eq!(h.to_bytes(), &data[..h.encoded_len()]),
        Err(e) => assert_input_error(&e, "Header::read_from"),
    }
}

/// `open_envelope`: opens arbitrary bytes as an embedded envelope; every
/// failure is an input error.
pub fn open(data: &[u8]) {
    if let Err(e) = block_on(crate::open(&resolver(), Profile::Blob, CONTEXT, data)) {
        assert_input_error(&e, "open");
    }
}

/// `read_at`: random-access reads at offsets taken from the input (its
/// first 2 bytes seed them), over the rest of the input taken as an
/// envelope. Once a read fails, every later one fails the same way.
pub fn read_at(data: &[u8]) {
    let Some((ctl, env)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut cur = Cursor::new(env);
    let Ok(header) = Header::read_from(&mut cur) else {
        return;
    };
    let Ok(dec) = block_on(Decryptor::new(&header, &resolver(), Profile::Blob, CONTEXT)) else {
        return;
    };
    let Ok(mut r) = dec.decrypt(cur) else { return };
    let mut buf = vec![0u8; 40_000];
    let mut seed = u32::from(u16::from_le_bytes(*ctl));
    let mut failed: Option<String> = None;
    for _ in 0..8 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let off = u64::from(seed % 200_000);
        let len = (seed >> 8) as usize % buf.len();
        match (r.read_at(off, &mut buf[..len]), &failed) {
            (Ok(_), None) => {}
            (Ok(n), Some(e)) => panic!("read_at succeeded ({n} bytes) after {e}"),
            (Err(e), _) => {
                assert_input_error(&e, "read_at");
                let kind = super::error_kind(&e);
                assert!(
                    failed.as_ref().is_none_or(|k| *k == kind),
                    "read_at failed with {kind} after {failed:?}"
                );
                failed = Some(kind);
            }
        }
    }
}

/// `chunk_open`: opens arbitrary bytes as a raw chunk-layer ciphertext.
pub fn chunk_open(data: &[u8]) {
    let _ = crate::stream::raw::chunked_decrypt(
        crate::CryptoProvider::default_provider(),
        &CHUNK_KEY,
        CONTEXT,
        data,
    );
}

/// A valid envelope of `len` bytes of plaintext for the seed corpus,
/// wrapped by the fixed KEK and, when `two_keys`, by a second one.
pub fn seed_envelope(len: usize, two_keys: bool) -> Vec<u8> {
    let msg = super::plaintext(len, 0);
    let mut keks = vec![kek()];
    if two_keys {
        keks.push(Arc::new(
            LocalKek::from_aes_key("fuzz-kwp", WrapAlgorithm::A256Kwp, &[0x24; 32]).expect("kek"),
        ) as Arc<dyn KeyEncryptionKey>);
    }
    block_on(crate::seal(&keks, Profile::Blob, CONTEXT, &msg)).expect("seal")
}

/// A valid raw chunk-layer ciphertext of `len` bytes of plaintext under
/// the fixed input key (with a fresh salt), for the seed corpus of
/// [`chunk_open`].
pub fn seed_chunk_ciphertext(len: usize) -> Vec<u8> {
    use std::io::Write;
    let p = crate::CryptoProvider::default_provider();
    let mut salt = [0u8; crate::stream::SALT_LEN];
    p.fill_random(&mut salt).expect("random salt");
    let (cipher, prefix) =
        crate::stream::chunk::ChunkCipher::for_encryption(p, &CHUNK_KEY, &salt, CONTEXT)
            .expect("derive");
    let msg = super::plaintext(len, 1);
    let mut w =
        crate::stream::EncryptingWriter::start(Vec::new(), cipher, &[], &prefix).expect("start");
    w.write_all(&msg).expect("write");
    w.finish().expect("finish")
}
