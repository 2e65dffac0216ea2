//! The little DER this crate needs: RSA keys as PKCS#8 `PrivateKeyInfo`
//! (RFC 5208 / RFC 8017 `RSAPrivateKey`) and X.509 `SubjectPublicKeyInfo`
//! (RFC 5280 / RFC 8017 `RSAPublicKey`), built from and split into the JWK
//! integer fields. Pure functions, no I/O; every intermediate buffer that
//! holds private key material is zeroized.

use zeroize::Zeroizing;

/// `rsaEncryption` OID 1.2.840.113549.1.1.1, DER-encoded with its tag.
const RSA_ENCRYPTION_OID: [u8; 11] = [
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];
const NULL: [u8; 2] = [0x05, 0x00];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_SEQUENCE: u8 = 0x30;

/// The eight big-endian unsigned integers of an RSA private key, in
/// `RSAPrivateKey` order after the version: n, e, d, p, q, dp, dq, qi.
pub(crate) struct RsaParts {
    pub(crate) ints: [Zeroizing<Vec<u8>>; 8],
}

impl RsaParts {
    pub(crate) fn n(&self) -> &[u8] {
        &self.ints[0]
    }
    pub(crate) fn e(&self) -> &[u8] {
        &self.ints[1]
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    push_len(out, value.len());
    out.extend_from_slice(value);
}

/// Appends an unsigned big-endian integer as a minimal DER INTEGER.
fn push_uint(out: &mut Vec<u8>, be: &[u8]) {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let mag = &be[skip..];
    let pad = mag.first().map(|b| b & 0x80 != 0).unwrap_or(true);
    out.push(TAG_INTEGER);
    push_len(out, mag.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(mag);
}

/// PKCS#8 `PrivateKeyInfo` for an RSA key.
pub(crate) fn rsa_pkcs8_from_parts(parts: &RsaParts) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::with_capacity(2400));
    push_uint(&mut body, &[0]);
    for i in parts.ints.iter() {
        push_uint(&mut body, i);
    }
    let mut rsa_key = Zeroizing::new(Vec::with_capacity(body.len() + 8));
    push_tlv(&mut rsa_key, TAG_SEQUENCE, &body);

    let mut info = Zeroizing::new(Vec::with_capacity(rsa_key.len() + 32));
    push_uint(&mut info, &[0]);
    push_tlv(
        &mut info,
        TAG_SEQUENCE,
        &[&RSA_ENCRYPTION_OID[..], &NULL[..]].concat(),
    );
    push_tlv(&mut info, TAG_OCTET_STRING, &rsa_key);
    let mut out = Zeroizing::new(Vec::with_capacity(info.len() + 8));
    push_tlv(&mut out, TAG_SEQUENCE, &info);
    out
}

/// X.509 `SubjectPublicKeyInfo` for an RSA public key.
pub(crate) fn rsa_spki_from_parts(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    push_uint(&mut body, n);
    push_uint(&mut body, e);
    let mut rsa_pub = Vec::with_capacity(body.len() + 8);
    push_tlv(&mut rsa_pub, TAG_SEQUENCE, &body);
    let mut bits = Vec::with_capacity(rsa_pub.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&rsa_pub);

    let mut info = Vec::with_capacity(bits.len() + 32);
    push_tlv(
        &mut info,
        TAG_SEQUENCE,
        &[&RSA_ENCRYPTION_OID[..], &NULL[..]].concat(),
    );
    push_tlv(&mut info, TAG_BIT_STRING, &bits);
    let mut out = Vec::with_capacity(info.len() + 8);
    push_tlv(&mut out, TAG_SEQUENCE, &info);
    out
}

/// A DER reader over a byte slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn tlv(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.rest.split_first()?;
        if t != tag {
            return None;
        }
        let (&l0, mut rest) = rest.split_first()?;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let mut len = 0usize;
            for &b in &rest[..n] {
                len = (len << 8) | usize::from(b);
            }
            rest = &rest[n..];
            if len < 0x80 {
                return None; // not minimal
            }
            len
        };
        if rest.len() < len {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        self.rest = rest;
        Some(value)
    }

    /// A non-negative INTEGER as minimal big-endian bytes.
    fn uint(&mut self) -> Option<&'a [u8]> {
        let v = self.tlv(TAG_INTEGER)?;
        match v {
            [] => None,
            [first, ..] if first & 0x80 != 0 => None, // negative
            [0, rest @ ..] if !rest.is_empty() => Some(rest),
            _ => Some(v),
        }
    }

    fn done(&self) -> bool {
        self.rest.is_empty()
    }
}

/// Splits a PKCS#8 `PrivateKeyInfo` holding a two-prime RSA key into its
/// integers. Returns `None` for anything else.
pub(crate) fn rsa_parts_from_pkcs8(der: &[u8]) -> Option<RsaParts> {
    let mut outer = Reader { rest: der };
    let info = outer.tlv(TAG_SEQUENCE)?;
    if !outer.done() {
        return None;
    }
    let mut r = Reader { rest: info };
    if r.uint()? != [0] {
        return None;
    }
    let alg = r.tlv(TAG_SEQUENCE)?;
    let mut a = Reader { rest: alg };
    let oid = a.tlv(0x06)?;
    if oid != &RSA_ENCRYPTION_OID[2..] {
        return None;
    }
    let key = r.tlv(TAG_OCTET_STRING)?;
    let mut k = Reader { rest: key };
    let seq = k.tlv(TAG_SEQUENCE)?;
    let mut s = Reader { rest: seq };
    if s.uint()? != [0] {
        return None; // multi-prime keys (version 1) are not supported
    }
    let mut take = || s.uint().map(|v| Zeroizing::new(v.to_vec()));
    let ints = [
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
    ];
    Some(RsaParts { ints })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal() {
        let mut v = Vec::new();
        push_uint(&mut v, &[0, 0, 0x7f]);
        assert_eq!(v, [0x02, 0x01, 0x7f]);
        v.clear();
        push_uint(&mut v, &[0x80]);
        assert_eq!(v, [0x02, 0x02, 0x00, 0x80]);
        v.clear();
        push_uint(&mut v, &[0, 0]);
        assert_eq!(v, [0x02, 0x01, 0x00]);
    }

    #[test]
    fn long_lengths() {
        let mut v = Vec::new();
        push_tlv(&mut v, TAG_OCTET_STRING, &[7u8; 300]);
        assert_eq!(&v[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut r = Reader { rest: &v };
        assert_eq!(r.tlv(TAG_OCTET_STRING).unwrap().len(), 300);
        assert!(r.done());
    }

    #[test]
    fn pkcs8_round_trip() {
        let ints: [Zeroizing<Vec<u8>>; 8] =
            std::array::from_fn(|i| Zeroizing::new(vec![0x80 | i as u8; 3 + i]));
        let parts = RsaParts { ints };
        let der = rsa_pkcs8_from_parts(&parts);
        let back = rsa_parts_from_pkcs8(&der).unwrap();
        for i in 0..8 {
            assert_eq!(&back.ints[i][..], &parts.ints[i][..]);
        }
        assert!(rsa_parts_from_pkcs8(&der[..der.len() - 1]).is_none());
        let mut extra = der.to_vec();
        extra.push(0);
        assert!(rsa_parts_from_pkcs8(&extra).is_none());
    }
}
