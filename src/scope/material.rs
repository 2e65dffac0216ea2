//! What the CMK wraps for a scope key: labelled material, so that a scope
//! key can never be taken for key material of another purpose, and the
//! material of another purpose never for a scope key.
//!
//! ```text
//! material (56 bytes) = "cmk-sk1" ‖ usage(1) ‖ scope key(32) ‖ binding(16)
//! usage   = 0x01 seal and open | 0x02 open only
//! binding = HKDF-Expand-SHA-512(prk = scope key,
//!             info = "cmk-envelope/v1 scope key binding" ‖ 0x00
//!                    ‖ "cmk-sk1" ‖ usage ‖ scope id, 16)
//! ```
//!
//! **Why.** Everything a CMK wraps is otherwise just bytes of some length:
//! an object's data key (32), an Azure CSE v2 content key (40: an 8-byte
//! protocol prefix and the key), an Azure CSE v1 content key (32). A scope
//! key wrapped bare (32 bytes) would be accepted wherever a 32-byte key
//! is: put in CSE v1 metadata that names the CMK, it would become the key
//! of the unauthenticated AES-CBC decryptor, an AES decryption oracle under
//! the scope key, and AES key wrap (RFC 3394) unwraps with AES decryptions
//! only, so that oracle would unwrap every data key of the scope. At 56 bytes,
//! scope key material has a length no other purpose uses: the data key
//! unwrap (32), CSE v2 (40 with its prefix) and CSE v1 (32) all refuse it,
//! and a scope refuses anything but 56 labelled bytes from a current
//! record. The binding ties the material to its scope: with a symmetric CMK
//! (AES key wrap authenticates what it wraps) one scope's wrapped key copied
//! into another scope's record is refused.
//!
//! **Records written before labelling** (`cmk-envelope/scope-record/v1`)
//! hold bare 32-byte keys. They stay readable, as **open only**: a scope
//! never seals under a bare key. Before its first seal under one, the scope
//! draws a fresh key version and, in the same compare-and-swap write, re-wraps
//! every old version as labelled open-only material (record format v2).
//! A v2 record holding bare material is refused.
//!
//! **What a store writer gains.** Someone who can write the store but not
//! use the CMK can only replay byte strings the CMK wrapped before. With a
//! symmetric CMK (AES key wrap, Managed HSM `oct-HSM`): a data key or CSE v1
//! key planted as a version of a v1 record is open only, so nothing new is
//! ever sealed under a key that those formats' decryptors also accept; it
//! can only unwrap header entries under it, which needs that key to have
//! wrapped them. Another scope's labelled key fails the binding. With an
//! RSA CMK, anyone holding the public key can wrap material of their
//! choosing — labelled or not — so, as for envelopes (`SECURITY.md`,
//! "What RSA KEKs do not authenticate"), write access to the store must
//! then be guarded like the key itself. Bare wrappings that already exist
//! stay unwrappable by the CMK version that made them: rotate the CMK (or,
//! in Key Vault, let the scope move to a new key version) and disable the
//! old version to retire them.

use zeroize::Zeroizing;

use crate::error::Error;
use crate::key::KeyMaterial;
use crate::provider::CryptoProvider;
use crate::util::ct_eq;

/// The length of labelled scope key material.
pub(crate) const MATERIAL_LEN: usize = 56;
/// The length of a bare scope key (records of format v1).
const BARE_LEN: usize = 32;
const MAGIC: &[u8; 7] = b"cmk-sk1";
const BINDING_INFO: &[u8] = b"cmk-envelope/v1 scope key binding\0";
const BINDING_LEN: usize = 16;

/// What a scope key version may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usage {
    /// Seal new objects and open old ones.
    SealAndOpen,
    /// Open old objects only (a key that was once wrapped bare).
    OpenOnly,
}

impl Usage {
    fn to_byte(self) -> u8 {
        match self {
            Usage::SealAndOpen => 0x01,
            Usage::OpenOnly => 0x02,
        }
    }

    fn from_byte(b: u8) -> Option<Usage> {
        match b {
            0x01 => Some(Usage::SealAndOpen),
            0x02 => Some(Usage::OpenOnly),
            _ => None,
        }
    }
}

fn binding(
    provider: &CryptoProvider,
    scope_id: &str,
    key: &[u8; 32],
    label: &[u8; 8],
) -> crate::Result<[u8; BINDING_LEN]> {
    let mut out = [0u8; BINDING_LEN];
    provider
        .hkdf
        .expand_sha512(key, &[BINDING_INFO, label, scope_id.as_bytes()], &mut out)
        .map_err(|_| Error::Internal("HKDF expansion failed"))?;
    Ok(out)
}

fn label(usage: Usage) -> [u8; 8] {
    let mut l = [0u8; 8];
    l[..7].copy_from_slice(MAGIC);
    l[7] = usage.to_byte();
    l
}

/// The material to wrap for `key`, scope key of `scope_id`.
pub(crate) fn encode(
    provider: &CryptoProvider,
    scope_id: &str,
    key: &[u8; 32],
    usage: Usage,
) -> crate::Result<KeyMaterial> {
    let label = label(usage);
    let mut m = Zeroizing::new([0u8; MATERIAL_LEN]);
    m[..8].copy_from_slice(&label);
    m[8..40].copy_from_slice(key);
    m[40..].copy_from_slice(&binding(provider, scope_id, key, &label)?);
    KeyMaterial::from_bytes(&m[..])
}

/// The scope key and its usage in material a CMK unwrapped for version
/// `version` of `scope_id`'s record. `labelled_record`: the record is of
/// format v2, where bare keys cannot occur. Anything else than labelled
/// material of this scope (or, in a v1 record, a bare 32-byte key) is
/// refused, naming the scope and version but nothing derived from the
/// bytes.
pub(crate) fn decode(
    provider: &CryptoProvider,
    scope_id: &str,
    version: u32,
    material: &KeyMaterial,
    labelled_record: bool,
) -> crate::Result<(Zeroizing<[u8; 32]>, Usage)> {
    let m = material.expose_secret_bytes();
    let refused = |why: &str| {
        Error::KeyPolicy(format!(
            "scope `{scope_id}`, key version {version}: the record holds key material that {why}"
        ))
    };
    let mut key = Zeroizing::new([0u8; 32]);
    match m.len() {
        MATERIAL_LEN => {
            let label: [u8; 8] = m[..8].try_into().expect("length checked");
            let usage = Usage::from_byte(label[7])
                .filter(|_| &label[..7] == MAGIC)
                .ok_or_else(|| refused("is not a scope key (it was wrapped for another purpose)"))?;
            key.copy_from_slice(&m[8..40]);
            if !ct_eq(&binding(provider, scope_id, &key, &label)?, &m[40..]) {
                return Err(refused("belongs to another scope"));
            }
            Ok((key, usage))
        }
        BARE_LEN if !labelled_record => {
            key.copy_from_slice(m);
            Ok((key, Usage::OpenOnly))
        }
        BARE_LEN => Err(refused(
            "is a bare key, which a record of this format never holds (was the record tampered with?)",
        )),
        _ => Err(refused(
            "is not a scope key (it was wrapped for another purpose)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_refusal() {
        let p = CryptoProvider::default_provider();
        let key = [7u8; 32];
        for usage in [Usage::SealAndOpen, Usage::OpenOnly] {
            let m = encode(p, "s-1", &key, usage).unwrap();
            assert_eq!(m.len(), MATERIAL_LEN);
            let (k, u) = decode(p, "s-1", 1, &m, true).unwrap();
            assert_eq!((*k, u), (key, usage));
            // another scope
            assert!(matches!(
                decode(p, "s-2", 1, &m, true),
                Err(Error::KeyPolicy(e)) if e.contains("another scope")
            ));
            // a flipped usage byte breaks the binding
            let mut bytes = m.expose_secret_bytes().to_vec();
            bytes[7] ^= 0x03;
            let flipped = KeyMaterial::from_bytes(&bytes).unwrap();
            assert!(decode(p, "s-1", 1, &flipped, true).is_err());
        }
        // bare keys: open only in v1 records, refused in v2 records
        let bare = KeyMaterial::from_bytes(&key).unwrap();
        assert_eq!(
            decode(p, "s-1", 1, &bare, false).unwrap().1,
            Usage::OpenOnly
        );
        assert!(decode(p, "s-1", 1, &bare, true).is_err());
        // other purposes: a CSE v2 key (40 bytes), random 56 bytes
        for other in [vec![1u8; 40], vec![2u8; 56], vec![3u8; 64]] {
            let m = KeyMaterial::from_bytes(&other).unwrap();
            for labelled in [false, true] {
                let e = decode(p, "s-1", 3, &m, labelled).unwrap_err().to_string();
                assert!(
                    e.contains("another purpose") && e.contains("version 3"),
                    "{e}"
                );
                assert!(!e.contains("0101") && !e.contains("0202"), "{e}");
            }
        }
    }
}
