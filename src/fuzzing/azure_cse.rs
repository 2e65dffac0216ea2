//! Azure Storage client-side encryption: the `encryptiondata` metadata
//! (`cse_metadata`) and the decryptors, whole, streamed and ranged, over
//! edited blobs of known plaintext (`cse_differential`) and over any bytes
//! (`cse_decrypt`).

use std::io::Read;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use pollster::block_on;

use super::{assert_input_error, error_kind, plaintext};
use crate::azure_cse::{
    self, CseDecryptor, CseEncryptOptions, EncryptionData, Protocol, REGION_OVERHEAD,
};
use crate::kek::{KeyEncryptionKey, LocalKek, StaticResolver, WrapAlgorithm};
use crate::Error;

/// The KEK of every CSE fixture (key id `fuzz-cse`).
fn kek() -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key("fuzz-cse", WrapAlgorithm::A256Kw, &[0x43; 32]).expect("kek"))
}

/// `cse_metadata`: parses `encryptiondata`; what parses must encode to
/// JSON that parses back to the same metadata, and encode the same way
/// again (a fixed point). A rewrap of parsed metadata changes only the
/// wrapped key.
pub fn metadata(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let m = match EncryptionData::parse(text) {
        Ok(m) => m,
        Err(e) => return assert_input_error(&e, "EncryptionData::parse"),
    };
    let json = m.to_json();
    let back = EncryptionData::parse(&json).expect("encoded metadata parses");
    assert_eq!(back, m, "metadata changed in a round trip");
    assert_eq!(back.to_json(), json, "encoding is not a fixed point");
    if m.protocol() != Protocol::V1_0 {
        let r = m.with_wrapped_key("k2".into(), WrapAlgorithm::RsaOaep, vec![7; 384]);
        let again = EncryptionData::parse(&r.to_json()).expect("rewrapped metadata parses");
        assert_eq!(again.key_id(), "k2");
        assert_eq!(again.region_data_len(), m.region_data_len());
        assert_eq!(again.protocol(), m.protocol());
    }
}

/// The region data lengths of the fixtures.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Regions {
    /// 16 bytes, the least a writer may choose.
    Tiny,
    /// 100 bytes.
    Small,
    /// 4 KiB.
    Page,
}

impl Regions {
    const ALL: [Regions; 3] = [Regions::Tiny, Regions::Small, Regions::Page];

    fn len(self) -> u64 {
        match self {
            Regions::Tiny => 16,
            Regions::Small => 100,
            Regions::Page => 4096,
        }
    }
}

/// The plaintext lengths of the fixtures, in regions.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Length {
    /// An empty blob (no region at all).
    Empty,
    /// Less than one region.
    Partial,
    /// Exactly three regions.
    Three,
    /// Five regions and a bit.
    FiveAndABit,
}

impl Length {
    const ALL: [Length; 4] = [
        Length::Empty,
        Length::Partial,
        Length::Three,
        Length::FiveAndABit,
    ];

    fn len(self, region: u64) -> usize {
        (match self {
            Length::Empty => 0,
            Length::Partial => region / 2 + 1,
            Length::Three => 3 * region,
            Length::FiveAndABit => 5 * region + 7,
        }) as usize
    }
}

/// One edit of a CSE body; regions count from 0, modulo one more than
/// there are.
#[derive(Debug, Clone, Arbitrary)]
pub enum CseEdit {
    /// XORs `mask` (0 counts as 1) into the byte at `at`, modulo the length.
    Xor {
        /// Where.
        at: u32,
        /// What to flip.
        mask: u8,
    },
    /// Swaps two regions.
    SwapRegions(u8, u8),
    /// Removes a region.
    DropRegion(u8),
    /// Repeats a region right after itself.
    DuplicateRegion(u8),
    /// Replaces a region with the same region of another blob of the same
    /// plaintext (another content key).
    SpliceRegion(u8),
    /// Cuts this many bytes (modulo the length plus one) off the end.
    Truncate(u32),
    /// Appends `n` bytes of value `byte`.
    Append {
        /// How many.
        n: u8,
        /// Which.
        byte: u8,
    },
}

/// One input of `cse_differential`.
#[derive(Debug, Arbitrary)]
pub struct CseCase {
    /// The region size of the blob.
    pub regions: Regions,
    /// Its length.
    pub length: Length,
    /// Edits of the body (the first 8).
    pub edits: Vec<CseEdit>,
    /// `DataLength` claimed by the metadata instead of the true one, as a
    /// factor of the true one: 0 and 1 keep it.
    pub claimed_region: u8,
    /// Streamed reads: 1 to 65,536 bytes.
    pub read: u16,
    /// Ranges (start, length), modulo the plaintext length plus a region
    /// (the first 4).
    pub ranges: Vec<(u32, u32)>,
}

struct CseFixture {
    msg: Vec<u8>,
    metadata: EncryptionData,
    body: Vec<u8>,
    other: Vec<u8>,
}

fn fixtures() -> &'static [CseFixture] {
    static F: OnceLock<Vec<CseFixture>> = OnceLock::new();
    F.get_or_init(|| {
        let kek = kek();
        let mut out = Vec::new();
        for r in Regions::ALL {
            for l in Length::ALL {
                let msg = plaintext(l.len(r.len()), out.len() as u8);
                let options = CseEncryptOptions::v2_1(r.len()).expect("region size");
                let (metadata, body) =
                    block_on(azure_cse::encrypt(kek.as_ref(), &options, &msg)).expect("encrypt");
                let (_, other) =
                    block_on(azure_cse::encrypt(kek.as_ref(), &options, &msg)).expect("encrypt");
                out.push(CseFixture {
                    msg,
                    metadata,
                    body,
                    other,
                });
            }
        }
        out
    })
}

fn apply(f: &CseFixture, region: usize, edits: &[CseEdit]) -> Vec<u8> {
    let mut body = f.body.clone();
    for edit in edits {
        let mut regions: Vec<Vec<u8>> = body.chunks(region).map(<[u8]>::to_vec).collect();
        let pick = |i: u8, n: usize| usize::from(i) % (n + 1);
        body = match *edit {
            CseEdit::Xor { at, mask } => {
                if !body.is_empty() {
                    let at = at as usize % body.len();
                    body[at] ^= mask.max(1);
                }
                body
            }
            CseEdit::SwapRegions(a, b) => {
                let (a, b) = (pick(a, regions.len()), pick(b, regions.len()));
                if a < regions.len() && b < regions.len() {
                    regions.swap(a, b);
                }
                regions.concat()
            }
            CseEdit::DropRegion(i) => {
                let i = pick(i, regions.len());
                if i < regions.len() {
                    regions.remove(i);
                }
                regions.concat()
            }
            CseEdit::DuplicateRegion(i) => {
                let i = pick(i, regions.len());
                if i < regions.len() {
                    regions.insert(i, regions[i].clone());
                }
                regions.concat()
            }
            CseEdit::SpliceRegion(i) => {
                let i = pick(i, regions.len());
                // The other blob's region `i`, whole, even where this
                // body's region `i` was cut short by an earlier edit.
                if let (Some(r), Some(t)) = (regions.get_mut(i), f.other.chunks(region).nth(i)) {
                    r.clear();
                    r.extend_from_slice(t);
                }
                regions.concat()
            }
            CseEdit::Truncate(n) => {
                let n = n as usize % (body.len() + 1);
                body.truncate(body.len() - n);
                body
            }
            CseEdit::Append { n, byte } => {
                body.extend(std::iter::repeat_n(byte, usize::from(n)));
                body
            }
        };
    }
    body
}

/// Reads `r` to its end in reads of `size` bytes.
fn read_all(mut r: impl Read, size: usize) -> (Vec<u8>, Option<Error>) {
    let mut released = Vec::new();
    let mut buf = vec![0u8; size];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (released, None),
            Ok(n) => released.extend_from_slice(&buf[..n]),
            Err(e) => return (released, Some(e.into())),
        }
    }
}

/// `cse_differential`: a blob of the fixtures, its body edited and its
/// `DataLength` possibly misstated, decrypted whole, streamed and by
/// ranges, which must agree ([`check_paths`]); whatever any path releases
/// is the true plaintext at its place, and success on an edited blob
/// yields the true plaintext or a prefix of it ending at a region
/// boundary: a blob truncated there is what the format cannot detect
/// (documented in `azure_cse`).
pub fn differential(case: &CseCase) {
    let i = case.regions as usize * Length::ALL.len() + case.length as usize;
    let f = &fixtures()[i];
    let true_region = case.regions.len();
    let region = (true_region + REGION_OVERHEAD) as usize;
    let body = apply(f, region, &case.edits[..case.edits.len().min(8)]);
    let claimed = match case.claimed_region {
        0 | 1 => true_region,
        k => true_region * u64::from(k),
    };
    let metadata = if claimed == true_region {
        f.metadata.clone()
    } else {
        let json = f.metadata.to_json().replacen(
            &format!("\"DataLength\":{true_region}"),
            &format!("\"DataLength\":{claimed}"),
            1,
        );
        EncryptionData::parse(&json).expect("metadata with another DataLength")
    };
    let resolver = StaticResolver::new().with(kek());
    let d = block_on(CseDecryptor::new(&metadata, &resolver)).expect("the fixture's key unwraps");
    let span = f.msg.len() as u64 + claimed;
    let ranges = case.ranges.iter().take(4).map(|&(start, len)| {
        let start = u64::from(start) % span;
        start..start + u64::from(len) % span
    });
    check_paths(
        &d,
        &body,
        Some((&f.msg, true_region)),
        1 + usize::from(case.read),
        ranges,
    );
}

/// `cse_decrypt`: the input as `encryptiondata` (up to the first newline)
/// and a body (the rest), such as blobs the Azure Storage Python SDK wrote
/// under this target's key (`fuzz-cse`; `scripts/fuzz-corpus.sh`). A v2
/// blob is decrypted by every path, which must agree ([`check_paths`]); a
/// protocol 1.0 blob by the insecure opt-in, whole and streamed, which
/// must agree too. Every refusal is an input error.
pub fn decrypt(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let Ok(json) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let body = data.get(split + 1..).unwrap_or_default();
    let metadata = match EncryptionData::parse(json) {
        Ok(m) => m,
        Err(e) => return assert_input_error(&e, "EncryptionData::parse"),
    };
    let resolver = StaticResolver::new().with(kek());
    if metadata.protocol() == Protocol::V1_0 {
        let opt_in = azure_cse::InsecureV1::AcceptUnauthenticatedCbc;
        let d = match block_on(azure_cse::InsecureCseV1Decryptor::new(
            &metadata, &resolver, opt_in,
        )) {
            Ok(d) => d,
            Err(e) => return assert_input_error(&e, "InsecureCseV1Decryptor::new"),
        };
        let whole = d.decrypt(body);
        let (streamed, err) = read_all(d.reader(body), 1 + body.len() % 97);
        match (whole, err) {
            (Ok(p), None) => assert!(p == streamed, "v1: whole and streamed differ"),
            (Err(w), Some(s)) => {
                assert_input_error(&w, "v1 whole");
                assert_eq!(
                    error_kind(&w),
                    error_kind(&s),
                    "v1: whole and streamed disagree"
                );
            }
            (w, s) => panic!("v1: whole and streamed disagree: {w:?} vs {s:?}"),
        }
        return;
    }
    let d = match block_on(CseDecryptor::new(&metadata, &resolver)) {
        Ok(d) => d,
        Err(e) => return assert_input_error(&e, "CseDecryptor::new"),
    };
    let n = body.len() as u64;
    let r = d.region_data_len();
    let ranges = [
        0..u64::MAX,
        n / 3..2 * n / 3,
        r.saturating_sub(1)..r + 1,
        n..n,
    ];
    check_paths(&d, body, None, 1 + body.len() % 4099, ranges.into_iter());
}

/// Decrypts `body` whole, streamed (reads of `read` bytes) and by
/// `ranges` (each both in memory and streamed), and asserts that they
/// agree:
///
/// * whole and streamed decryption succeed or fail together, with the
///   same plaintext, or the same error when the blob's length is one a
///   writer produces (otherwise the whole decryption refuses the length
///   first, and streaming may find an earlier bad region); streaming
///   releases only whole verified regions, a prefix of what a success
///   returns;
/// * a range succeeds whenever the whole blob does, and then holds exactly
///   that plaintext at its place; its two ways agree;
/// * with the true plaintext and region length known (`truth`), every
///   release is that plaintext at its place, and a success is the whole of
///   it or a prefix ending at a true region boundary (the metadata may
///   claim another `DataLength`: a blob cut down to its first regions is
///   then one short region under the claimed length).
fn check_paths(
    d: &CseDecryptor,
    body: &[u8],
    truth: Option<(&[u8], u64)>,
    read: usize,
    ranges: impl Iterator<Item = std::ops::Range<u64>>,
) {
    let region = d.region_data_len();
    let prefix_of_truth = |got: &[u8], what: &str| {
        if let Some((t, _)) = truth {
            assert!(
                got.len() <= t.len() && got == &t[..got.len()],
                "{what}: released plaintext that is not the blob's"
            );
        }
    };
    let whole = d.decrypt(body);
    let (streamed, stream_err) = read_all(d.reader(body), read);
    prefix_of_truth(&streamed, "streamed");
    match (&whole, &stream_err) {
        (Ok(p), None) => {
            prefix_of_truth(p, "whole");
            assert!(*p == streamed, "whole and streamed differ");
            if let Some((t, true_region)) = truth {
                assert!(
                    p.len() == t.len() || (p.len() as u64).is_multiple_of(true_region),
                    "a prefix of {} bytes does not end at a region boundary",
                    p.len()
                );
            }
        }
        (Err(w), Some(s)) => {
            assert_input_error(w, "whole");
            assert_input_error(s, "streamed");
            assert!(matches!(w, Error::CseRegion { .. }), "whole: {w:?}");
            assert!(matches!(s, Error::CseRegion { .. }), "streamed: {s:?}");
            if azure_cse::plaintext_len(body.len() as u64, region).is_ok() {
                assert_eq!(error_kind(w), error_kind(s), "whole and streamed disagree");
            }
            assert_eq!(
                streamed.len() as u64 % region,
                0,
                "streamed released part of a region"
            );
        }
        (w, s) => panic!("whole and streamed disagree: {w:?} vs {s:?}"),
    }

    for range in ranges {
        let plan = match d.plan_range(range.clone(), body.len() as u64) {
            Ok(p) => p,
            Err(e) => {
                assert_input_error(&e, "plan_range");
                assert!(
                    whole.is_err(),
                    "plan_range refused a blob that decrypts: {e:?}"
                );
                continue;
            }
        };
        let ct = plan.ciphertext();
        let fetched = &body[ct.start as usize..ct.end as usize];
        let in_memory = d.decrypt_range(&plan, fetched);
        let (by_reader, reader_err) = read_all(d.range_reader(&plan, fetched), 4096);
        match (&in_memory, &reader_err) {
            (Ok(p), None) => {
                assert!(*p == by_reader, "range {range:?}: its two ways differ");
                // What a range releases is the plaintext at its place. (An
                // empty range may lie past the true plaintext: a misstated
                // `DataLength` makes the blob's plaintext length another.)
                let pt = plan.plaintext();
                let (s, e) = (pt.start as usize, pt.end as usize);
                if let (Ok(all), false) = (&whole, p.is_empty()) {
                    assert!(
                        e <= all.len() && p[..] == all[s..e],
                        "range {range:?}: not the blob's plaintext"
                    );
                }
                if let (Some((t, _)), false) = (truth, p.is_empty()) {
                    assert!(
                        e <= t.len() && p[..] == t[s..e],
                        "range {range:?}: wrong plaintext"
                    );
                }
            }
            (Err(m), Some(r)) => {
                assert_input_error(m, "decrypt_range");
                assert_input_error(r, "range_reader");
                assert!(
                    whole.is_err(),
                    "range {range:?} failed on a blob that decrypts: {m:?}"
                );
            }
            (m, r) => panic!("range {range:?}: its two ways disagree: {m:?} vs {r:?}"),
        }
    }
}

/// Real objects for the seed corpus of `cse_metadata` and `cse_decrypt`:
/// blobs this crate writes under the `cse_decrypt` key, protocols 2.0 and
/// 2.1, empty and not: their name, `encryptiondata` and body.
pub fn seed_blobs() -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, options, len) in [
        ("v2.0-100", CseEncryptOptions::v2_0(), 100),
        ("v2.0-empty", CseEncryptOptions::v2_0(), 0),
        (
            "v2.1-16-100",
            CseEncryptOptions::v2_1(16).expect("region size"),
            100,
        ),
        (
            "v2.1-40-80",
            CseEncryptOptions::v2_1(40).expect("region size"),
            80,
        ),
    ] {
        let msg = plaintext(len, 9);
        let (m, body) =
            block_on(azure_cse::encrypt(kek().as_ref(), &options, &msg)).expect("encrypt");
        out.push((name.to_owned(), m.to_json(), body));
    }
    out
}
