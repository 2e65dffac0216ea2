//! Property tests: any plaintext of 0..100 KiB round-trips through the
//! streaming writer (any write sizes) and reader (any read sizes), and any
//! random-access read equals the matching slice of the plaintext.

mod common;

use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, OnceLock};

use cmk_envelope::{
    Decryptor, Encryptor, Header, KeyEncryptionKey, Profile, StaticResolver, WrapAlgorithm,
};
use futures::executor::block_on;
use proptest::prelude::*;

fn kek() -> Arc<dyn KeyEncryptionKey> {
    static K: OnceLock<Arc<dyn KeyEncryptionKey>> = OnceLock::new();
    K.get_or_init(|| common::aes_kek("prop", WrapAlgorithm::A256Kw))
        .clone()
}

fn encrypt(msg: &[u8], write_size: usize) -> Vec<u8> {
    let enc = block_on(Encryptor::new(&[kek()], Profile::Index, b"idx/seg_1.pos")).unwrap();
    let mut w = enc.wrap_output(Vec::new()).unwrap();
    for piece in msg.chunks(write_size.max(1)) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap()
}

fn reader(env: &[u8]) -> cmk_envelope::DecryptingReader<Cursor<&[u8]>> {
    let mut cur = Cursor::new(env);
    let h = Header::read_from(&mut cur).unwrap();
    let r: StaticResolver = [kek()].into_iter().collect();
    block_on(Decryptor::new(&h, &r, Profile::Index, b"idx/seg_1.pos"))
        .unwrap()
        .decrypt(cur)
        .unwrap()
}

fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(16383usize),
        Just(16384usize),
        Just(16385usize),
        Just(32768usize),
        0usize..100 * 1024,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn streaming_round_trip(len in len_strategy(), seed in any::<u8>(), ws in 1usize..40_000, rs in 1usize..40_000) {
        let msg = common::data(len, seed);
        let env = encrypt(&msg, ws);
        let mut r = reader(&env);
        let mut out = Vec::new();
        let mut buf = vec![0u8; rs];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 { break; }
            out.extend_from_slice(&buf[..n]);
        }
        prop_assert_eq!(out, msg);
    }

    #[test]
    fn random_access_matches_slices(
        len in len_strategy(),
        seed in any::<u8>(),
        reads in proptest::collection::vec((0u64..110 * 1024, 0usize..40_000), 1..12),
    ) {
        let msg = common::data(len, seed);
        let env = encrypt(&msg, 65536);
        let mut r = reader(&env);
        for (off, n) in reads {
            let mut buf = vec![0u8; n];
            let got = r.read_at(off, &mut buf).unwrap();
            let start = (off as usize).min(len);
            let end = (off as usize + n).min(len);
            prop_assert_eq!(got, end - start);
            prop_assert_eq!(&buf[..got], &msg[start..end]);
            // the same through Seek + Read
            r.seek(SeekFrom::Start(off)).unwrap();
            let mut via_read = Vec::new();
            (&mut r).take(n as u64).read_to_end(&mut via_read).unwrap();
            prop_assert_eq!(&via_read[..], &msg[start..end]);
        }
        prop_assert_eq!(r.plaintext_len().unwrap(), len as u64);
    }
}
