//! Entry points for the cargo-fuzz targets in `fuzz/` and their seed
//! generator. This module exists only when the crate is compiled with
//! `--cfg fuzzing` (which `cargo fuzz` sets; `fuzz/examples/gen_seeds.rs`
//! is run with `RUSTFLAGS="--cfg fuzzing"`): no normal build, and so no
//! dependent crate, can name it.
//!
//! Each target takes untrusted bytes and parses or decrypts them; nothing
//! here seals under a key or nonce of the caller's choosing. Envelopes are
//! opened with one fixed A256KW KEK (key id `fuzz`) and the context
//! `fuzz`, raw chunk-layer ciphertexts with one fixed input key: the seeds
//! are made under the same keys, so the fuzzer starts past the key checks.

use std::io::Cursor;
use std::sync::Arc;

use crate::kek::{KeyEncryptionKey, LocalKek, StaticResolver, WrapAlgorithm};
use crate::{Decryptor, Header, Profile};
use pollster::block_on;

const CONTEXT: &[u8] = b"fuzz";
/// The input key of raw chunk-layer ciphertexts ([`chunk_open`]).
const CHUNK_KEY: [u8; 32] = [7; 32];

/// The fixed KEK every envelope target opens with.
fn kek() -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key("fuzz", WrapAlgorithm::A256Kw, &[0x42; 32]).expect("kek"))
}

fn resolver() -> StaticResolver {
    StaticResolver::new().with(kek())
}

/// Parses a header; if it parses, its encoding must give back the input
/// (and the same for a header at the start of longer input, parsed from
/// bytes or read from a stream).
pub fn header(data: &[u8]) {
    if let Ok(h) = Header::parse(data) {
        assert_eq!(h.to_bytes(), data, "header re-encoding differs");
    }
    if let Ok((h, n)) = Header::parse_prefix(data) {
        assert_eq!(h.to_bytes(), &data[..n]);
    }
    if let Ok(h) = Header::read_from(&mut &data[..]) {
        assert_eq!(h.to_bytes(), &data[..h.encoded_len()]);
    }
}

/// Opens arbitrary bytes as an embedded envelope.
pub fn open(data: &[u8]) {
    let _ = block_on(crate::open(&resolver(), Profile::Blob, CONTEXT, data));
}

/// Random-access reads at offsets taken from the input (its first 2 bytes
/// seed them), over the rest of the input taken as an envelope.
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
    for _ in 0..8 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let off = u64::from(seed % 200_000);
        let len = (seed >> 8) as usize % buf.len();
        if r.read_at(off, &mut buf[..len]).is_err() {
            return;
        }
    }
}

/// Opens arbitrary bytes as a raw chunk-layer ciphertext.
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
    let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut keks = vec![kek()];
    if two_keys {
        keks.push(Arc::new(
            LocalKek::from_aes_key("fuzz-kwp", WrapAlgorithm::A256Kwp, &[0x24; 32]).expect("kek"),
        ));
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
    let msg: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    let mut w =
        crate::stream::EncryptingWriter::start(Vec::new(), cipher, &[], &prefix).expect("start");
    w.write_all(&msg).expect("write");
    w.finish().expect("finish")
}
