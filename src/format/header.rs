//! The envelope header, format v1.
//!
//! This module is the reference for the header's wire format; it restates
//! `FORMAT.md` (which is normative and fixed) next to the code that parses
//! it. All integers are unsigned big-endian.
//!
//! ```text
//! magic       4   "CMKE" (43 4D 4B 45)
//! version     1   0x01
//! suite       1   0x01 = Cobblestone-256
//! profile     1   0x01 blob, 0x02 document, 0x03 index segment
//! header_len  4   total header length, magic .. last wrapped key;
//!                 19 <= header_len <= 65,536
//! key_count   1   1 <= n <= 16
//! key_count × wrapped key:
//!   alg         1   0x01 A256KW, 0x02 A256KWP, 0x03 RSA-OAEP-256,
//!                   0x04 RSA-OAEP; anything else is rejected
//!   kek_id_len  2   1 <= len <= 2,048
//!   kek_id      kek_id_len   UTF-8 id of the KEK
//!   wrapped_len 2   1 <= len <= 1,024
//!   wrapped     wrapped_len  the data key wrapped by that KEK
//! ```
//!
//! Every entry wraps the same 32-byte data key. The header is followed by
//! the body (embedded form) or stored apart from it (detached form); the
//! bytes are the same either way.
//!
//! [`Header::parse`] is a pure function from bytes to a header — no I/O, no
//! KEK call — and rejects, before anything else happens:
//!
//! * a length field out of its range;
//! * fields that do not add up to exactly `header_len`;
//! * an unknown `alg`, `suite`, `profile` or `version`;
//! * a `kek_id` that is not valid UTF-8.
//!
//! The header is not MACed: its integrity follows from the body's key
//! commitment (see the `format` module docs), which is what allows a KEK
//! rotation to rewrite only the header.

use crate::error::Error;
use crate::kek::{WrapAlgorithm, WrappedKey};

use super::{Profile, Suite};

/// `"CMKE"`.
pub const MAGIC: [u8; 4] = *b"CMKE";
/// The only format version this crate reads and writes.
pub const VERSION: u8 = 0x01;
/// Bytes before the first wrapped key: magic, version, suite, profile,
/// header_len, key_count.
pub const FIXED_LEN: usize = 12;
/// Smallest possible header (one entry with a 1-byte id and 1-byte key).
pub const MIN_HEADER_LEN: usize = 19;
/// Largest header a reader must handle.
pub const MAX_HEADER_LEN: usize = 65_536;
/// Most wrapped keys in one header.
pub const MAX_KEYS: usize = 16;
/// Longest `kek_id`.
pub const MAX_KEK_ID_LEN: usize = 2_048;
/// Longest wrapped key.
pub const MAX_WRAPPED_LEN: usize = 1_024;

/// A parsed (or to-be-written) envelope header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    suite: Suite,
    profile: Profile,
    keys: Vec<WrappedKey>,
}

fn bad(reason: &'static str) -> Error {
    Error::MalformedHeader(reason)
}

impl Header {
    /// Builds a header, checking every limit of the format.
    pub fn new(suite: Suite, profile: Profile, keys: Vec<WrappedKey>) -> crate::Result<Header> {
        if keys.is_empty() {
            return Err(Error::ApiMisuse(
                "an envelope needs at least one wrapped key",
            ));
        }
        if keys.len() > MAX_KEYS {
            return Err(Error::ApiMisuse(
                "an envelope holds at most 16 wrapped keys",
            ));
        }
        for k in &keys {
            if k.kek_id.is_empty() || k.kek_id.len() > MAX_KEK_ID_LEN {
                return Err(Error::ApiMisuse("a kek_id must be 1 to 2,048 bytes"));
            }
            if k.wrapped.is_empty() || k.wrapped.len() > MAX_WRAPPED_LEN {
                return Err(Error::ApiMisuse("a wrapped key must be 1 to 1,024 bytes"));
            }
        }
        let h = Header {
            suite,
            profile,
            keys,
        };
        if h.encoded_len() > MAX_HEADER_LEN {
            return Err(Error::ApiMisuse("the header would exceed 64 KiB"));
        }
        Ok(h)
    }

    /// The body's cipher suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The object profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The wrapped copies of the data key, in header order.
    pub fn keys(&self) -> &[WrappedKey] {
        &self.keys
    }

    /// The encoded length in bytes (`header_len`).
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN
            + self
                .keys
                .iter()
                .map(|k| 5 + k.kek_id.len() + k.wrapped.len())
                .sum::<usize>()
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = self.encoded_len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.suite.to_byte());
        out.push(self.profile.to_byte());
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.push(self.keys.len() as u8);
        for k in &self.keys {
            out.push(k.alg.to_byte());
            out.extend_from_slice(&(k.kek_id.len() as u16).to_be_bytes());
            out.extend_from_slice(k.kek_id.as_bytes());
            out.extend_from_slice(&(k.wrapped.len() as u16).to_be_bytes());
            out.extend_from_slice(&k.wrapped);
        }
        debug_assert_eq!(out.len(), len);
        out
    }

    /// Reads `header_len` from the first 11 bytes of a header, validating
    /// magic, version and range. Lets a streaming reader know how many bytes
    /// to read before calling [`Header::parse`].
    pub fn peek_len(prefix: &[u8; 11]) -> crate::Result<usize> {
        if prefix[..4] != MAGIC {
            return Err(bad("bad magic (not a cmk-envelope)"));
        }
        if prefix[4] != VERSION {
            return Err(bad("unknown version"));
        }
        let len = u32::from_be_bytes([prefix[7], prefix[8], prefix[9], prefix[10]]) as usize;
        if !(MIN_HEADER_LEN..=MAX_HEADER_LEN).contains(&len) {
            return Err(bad("header_len out of range"));
        }
        Ok(len)
    }

    /// Parses exactly one header occupying all of `bytes`.
    pub fn parse(bytes: &[u8]) -> crate::Result<Header> {
        let (h, used) = Self::parse_prefix(bytes)?;
        if used != bytes.len() {
            return Err(bad("bytes after the header"));
        }
        Ok(h)
    }

    /// Parses the header at the start of `bytes` and returns it with its
    /// length; the rest of `bytes` (the body, in the embedded form) is not
    /// examined.
    pub fn parse_prefix(bytes: &[u8]) -> crate::Result<(Header, usize)> {
        let prefix: &[u8; 11] = bytes
            .get(..11)
            .and_then(|p| p.try_into().ok())
            .ok_or(bad("shorter than the fixed header fields"))?;
        let header_len = Self::peek_len(prefix)?;
        let suite = Suite::from_byte(bytes[5]).ok_or(bad("unknown suite"))?;
        let profile = Profile::from_byte(bytes[6]).ok_or(bad("unknown profile"))?;
        let h = bytes
            .get(..header_len)
            .ok_or(bad("shorter than header_len"))?;
        let count = usize::from(*h.get(11).ok_or(bad("header_len too small"))?);
        if !(1..=MAX_KEYS).contains(&count) {
            return Err(bad("key_count out of range"));
        }
        let mut rest = &h[FIXED_LEN..];
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let (&alg, r) = rest.split_first().ok_or(bad("fields exceed header_len"))?;
            let alg = WrapAlgorithm::from_byte(alg).ok_or(bad("unknown wrap algorithm"))?;
            let (id, r) = take_u16_prefixed(r, MAX_KEK_ID_LEN, "kek_id_len out of range")?;
            let kek_id = std::str::from_utf8(id).map_err(|_| bad("kek_id is not valid UTF-8"))?;
            let (wrapped, r) = take_u16_prefixed(r, MAX_WRAPPED_LEN, "wrapped_len out of range")?;
            keys.push(WrappedKey {
                alg,
                kek_id: kek_id.to_owned(),
                wrapped: wrapped.to_vec(),
            });
            rest = r;
        }
        if !rest.is_empty() {
            return Err(bad("fields do not add up to header_len"));
        }
        Ok((
            Header {
                suite,
                profile,
                keys,
            },
            header_len,
        ))
    }

    /// The same header with its wrapped keys replaced (for re-wrapping under
    /// new KEKs; the body is unchanged).
    pub fn with_keys(&self, keys: Vec<WrappedKey>) -> crate::Result<Header> {
        Header::new(self.suite, self.profile, keys)
    }
}

fn take_u16_prefixed<'a>(
    buf: &'a [u8],
    max: usize,
    reason: &'static str,
) -> crate::Result<(&'a [u8], &'a [u8])> {
    let len_bytes: [u8; 2] = buf
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or(bad("fields exceed header_len"))?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    if len == 0 || len > max {
        return Err(bad(reason));
    }
    let value = buf.get(2..2 + len).ok_or(bad("fields exceed header_len"))?;
    Ok((value, &buf[2 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wk(alg: WrapAlgorithm, id: &str, n: usize) -> WrappedKey {
        WrappedKey {
            alg,
            kek_id: id.into(),
            wrapped: vec![0xAA; n],
        }
    }

    fn sample() -> Header {
        Header::new(
            Suite::Cobblestone256,
            Profile::Blob,
            vec![
                wk(WrapAlgorithm::A256Kw, "k1", 40),
                wk(
                    WrapAlgorithm::RsaOaep256,
                    "https://v.vault.azure.net/keys/x/1",
                    384,
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let b = h.to_bytes();
        assert_eq!(b.len(), h.encoded_len());
        assert_eq!(&b[..4], b"CMKE");
        assert_eq!(Header::parse(&b).unwrap(), h);
        let mut with_body = b.clone();
        with_body.extend_from_slice(b"body");
        let (h2, n) = Header::parse_prefix(&with_body).unwrap();
        assert_eq!((h2, n), (h, b.len()));
    }

    #[test]
    fn minimal_header_is_19_bytes() {
        let h = Header::new(
            Suite::Cobblestone256,
            Profile::Index,
            vec![wk(WrapAlgorithm::A256Kwp, "x", 1)],
        )
        .unwrap();
        assert_eq!(h.to_bytes().len(), MIN_HEADER_LEN);
        assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
    }

    fn reject(b: &[u8], want: &str) {
        match Header::parse(b) {
            Err(Error::MalformedHeader(r)) => {
                assert!(r.contains(want), "{r:?} does not mention {want:?}")
            }
            other => panic!("expected MalformedHeader({want}), got {other:?}"),
        }
    }

    #[test]
    fn rejects_each_malformation() {
        let good = sample().to_bytes();
        let mut b = good.clone();
        b[0] = b'X';
        reject(&b, "magic");
        let mut b = good.clone();
        b[4] = 2;
        reject(&b, "version");
        let mut b = good.clone();
        b[5] = 2;
        reject(&b, "suite");
        let mut b = good.clone();
        b[6] = 0;
        reject(&b, "profile");
        let mut b = good.clone();
        b[6] = 4;
        reject(&b, "profile");
        // header_len out of range
        let mut b = good.clone();
        b[7..11].copy_from_slice(&18u32.to_be_bytes());
        reject(&b, "header_len");
        let mut b = good.clone();
        b[7..11].copy_from_slice(&65_537u32.to_be_bytes());
        reject(&b, "header_len");
        // header_len larger than the fields
        let mut b = good.clone();
        b[7..11].copy_from_slice(&((good.len() + 1) as u32).to_be_bytes());
        b.push(0);
        reject(&b, "add up");
        // header_len smaller than the fields
        let mut b = good.clone();
        b[7..11].copy_from_slice(&((good.len() - 1) as u32).to_be_bytes());
        b.pop();
        reject(&b, "exceed");
        // key_count
        let mut b = good.clone();
        b[11] = 0;
        reject(&b, "key_count");
        let mut b = good.clone();
        b[11] = 17;
        reject(&b, "key_count");
        // alg
        let mut b = good.clone();
        b[12] = 5;
        reject(&b, "algorithm");
        // kek_id_len 0 and > 2048
        let mut b = good.clone();
        b[13..15].copy_from_slice(&0u16.to_be_bytes());
        reject(&b, "kek_id_len");
        let mut b = good.clone();
        b[13..15].copy_from_slice(&2049u16.to_be_bytes());
        reject(&b, "kek_id_len");
        // wrapped_len 0
        let mut b = good.clone();
        b[17..19].copy_from_slice(&0u16.to_be_bytes());
        reject(&b, "wrapped_len");
        // invalid UTF-8 in kek_id
        let mut b = good.clone();
        b[15] = 0xff;
        reject(&b, "UTF-8");
        // truncated anywhere
        for cut in 0..good.len() {
            assert!(
                Header::parse(&good[..cut]).is_err(),
                "accepted a header cut at {cut}"
            );
        }
    }

    #[test]
    fn new_enforces_limits() {
        assert!(Header::new(Suite::Cobblestone256, Profile::Blob, vec![]).is_err());
        let many = (0..17)
            .map(|i| wk(WrapAlgorithm::A256Kw, &format!("k{i}"), 40))
            .collect();
        assert!(Header::new(Suite::Cobblestone256, Profile::Blob, many).is_err());
        assert!(Header::new(
            Suite::Cobblestone256,
            Profile::Blob,
            vec![wk(WrapAlgorithm::A256Kw, "", 40)]
        )
        .is_err());
        assert!(Header::new(
            Suite::Cobblestone256,
            Profile::Blob,
            vec![wk(WrapAlgorithm::A256Kw, "a", 1025)]
        )
        .is_err());
        // The largest header the limits allow (16 × 2,048-byte ids and
        // 1,024-byte keys) is 49,244 bytes: within 64 KiB, and it parses.
        let big: Vec<_> = (0..16)
            .map(|_| wk(WrapAlgorithm::A256Kw, &"x".repeat(2048), 1024))
            .collect();
        let h = Header::new(Suite::Cobblestone256, Profile::Blob, big).unwrap();
        assert_eq!(h.encoded_len(), 49_244);
        assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
    }
}
