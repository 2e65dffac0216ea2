//! Field-level encryption of JSON documents (feature `document`).
//!
//! A [`DocumentCipher`] encrypts the fields a [`DocumentPolicy`] names, in
//! place in a `serde_json::Value`, and decrypts them again. The id (`/id`)
//! and the partition key stay in clear, and so does every field the policy
//! does not name.
//!
//! ```text
//! {"id": "p-1", "tenant": "t", "patient": {"ssn": "078-05-1120"}, "email": "a@b"}
//!   ──encrypt──▶
//! {"id": "p-1", "tenant": "t",
//!  "patient": {"ssn": "cmke1:r:AAAAAH…"},      randomized
//!  "email": "cmke1:d:1:q0t…",                  deterministic, scope key v1
//!  "_cmk": "Q01LRQEBAg…"}                      the header, base64
//! ```
//!
//! ```no_run
//! # async fn document(scope: cmk_envelope::scope::EncryptionScope) -> cmk_envelope::Result<()> {
//! use cmk_envelope::document::{DocumentCipher, DocumentPolicy};
//!
//! let policy = DocumentPolicy::new("/tenantId")? // the partition key stays in clear
//!     .randomized("/patient/ssn")?
//!     .deterministic("/email")?; // equality-queryable
//! let cipher = DocumentCipher::new(scope, policy);
//! let mut doc = serde_json::json!({
//!     "id": "p-1", "tenantId": "t-1",
//!     "patient": {"ssn": "078-05-1120"}, "email": "a@example.com"
//! });
//! cipher.encrypt(&mut doc).await?; // adds "_cmk"
//! let token = cipher.equality_token("/email", &"a@example.com".into()).await?;
//! assert_eq!(doc["email"], token); // what a query compares with
//! cipher.decrypt(&mut doc).await?;
//! # Ok(()) }
//! ```
//!
//! # The per-document data key
//!
//! Every call to [`DocumentCipher::encrypt`] draws a fresh 256-bit data key
//! (DEK) and wraps it under the scope key
//! ([`EncryptionScope::kek`](crate::scope::EncryptionScope::kek), A256KW,
//! no KMS call once the scope key is cached). The resulting header is a
//! FORMAT.md v1 header with profile `document` (`0x02`); it is stored in the
//! document as the property `_cmk`, standard base64 with padding
//! (RFC 4648 §4). The header can be re-wrapped like any other
//! ([`rewrap`](crate::rewrap)); the fields do not change.
//!
//! # Field ciphertexts, version 1
//!
//! An encrypted field is replaced by a JSON **string**. `b64()` below is
//! standard base64 with padding; `||` is concatenation; `path` is the
//! field's JSON Pointer exactly as written in the policy (UTF-8);
//! `plaintext` is `serde_json::to_vec` of the field's original value.
//!
//! **Randomized** (`r`), the default:
//!
//! ```text
//! "cmke1:r:" || b64( counter(4) || AES-256-GCM(Kf, nonce, aad, plaintext) || tag(16) )
//! Kf    = HKDF-Expand-SHA-512(prk = DEK,
//!             info = "cmk-envelope/v1 document fields" || 0x00 || context, 32)
//! context = "cmk-envelope/v1" || 0x00 || suite(0x01) || profile(0x02) || document id
//! nonce = 0x00 × 8 || counter            (counter: big-endian u32)
//! aad   = "cmke1:r" || 0x00 || path
//! ```
//!
//! `counter` is the field's position in the policy (0, 1, 2, …).
//!
//! **Deterministic** (`d`):
//!
//! ```text
//! "cmke1:d:" || v || ":" || b64( SIV(16) || ciphertext )  = AES-256-SIV (RFC 5297)
//! key   = HKDF-Expand-SHA-512(prk = scope key version v,
//!             info = "cmk-envelope/v1 scope-derived key" || 0x00
//!                    || "cmk-envelope/v1 document deterministic" || 0x00 || path, 64)
//! associated data (two components, in order): "cmke1:d", path
//! ```
//!
//! `v` is the scope key version, in decimal: the one current when the
//! document was written.
//!
//! # Binding
//!
//! * A **randomized** value is bound to its document twice over: its key
//!   comes from that document write's DEK, and the DEK's derivation takes
//!   the document id. It is bound to its path by the AAD. Moving it to
//!   another path, to another document, or to another version of the same
//!   document fails with [`Error::FieldAuthentication`].
//! * A **deterministic** value is bound to its path (by its key and its
//!   associated data) and to the scope, but **not** to the document: the
//!   document id cannot enter the computation, or equal values in two
//!   documents would no longer encrypt equally and equality queries would
//!   be impossible. Copying a deterministic value to the same path of
//!   another document of the same scope therefore goes undetected (it
//!   decrypts to the value it had in its own document). Moving it to
//!   another path fails.
//! * Every field the policy names must hold a ciphertext of the mode the
//!   policy gives it: a field replaced by a clear value, removed, or turned
//!   from one mode into the other is refused ([`Error::DocumentField`]).
//! * Not detected: replacing the whole document (fields and `_cmk`) by an
//!   older version of itself. The store's own concurrency token is the place
//!   for that.
//!
//! # Why no (key, nonce) pair ever repeats
//!
//! AES-GCM fails badly if a nonce repeats under a key, so the randomized
//! mode is built so that it cannot, whatever the caller does:
//!
//! 1. `Kf` is derived from the DEK, and a DEK is drawn from the OS CSPRNG
//!    inside [`DocumentCipher::encrypt`], used for that one call, and then
//!    dropped (zeroized). No API encrypts a field under an existing DEK:
//!    decryption unwraps the DEK but never encrypts, and re-wrapping a
//!    header never touches fields. So each key `Kf` encrypts the fields of
//!    exactly one document write (two writes share a key only if two
//!    256-bit random draws collide).
//! 2. Within that write, the nonce is the field's position in the policy.
//!    The policy is a list of distinct, non-overlapping paths, and each is
//!    encrypted exactly once, so the counters of one write are distinct.
//!
//! Hence every (`Kf`, nonce) pair is used at most once. The counter is
//! stored with the ciphertext so that decryption does not depend on the
//! policy's order; changing it changes the nonce and fails the tag.
//!
//! AES-SIV (the deterministic mode) takes no nonce: it is the
//! misuse-resistant construction whose only weakness under repetition is
//! the intended one, that equal inputs give equal outputs.
//!
//! # What is revealed
//!
//! Both modes reveal which fields are encrypted and the exact **length** of
//! each value's JSON serialization (there is no padding): a 9-digit number
//! and a 1 KiB object look different.
//!
//! **Deterministic mode also reveals equality and frequency**: anyone who
//! can read the store sees which documents hold the same value under a
//! path, how many distinct values there are and how often each occurs, and
//! can recognise a value whose ciphertext they have seen before (or that
//! they wrote themselves). For low-entropy fields (booleans, a country, a
//! blood group) that frequency alone often reveals the value. Values under
//! *different* paths are unrelated (each path has its own key), and
//! ciphertexts do not change with the document id. Rotating the scope key
//! ([`rotate_scope_key`](crate::scope::EncryptionScope::rotate_scope_key))
//! starts a new key for documents written afterwards: an equality query
//! then needs one token per version in use
//! ([`DocumentCipher::equality_token_for_version`]). Use it only for fields
//! that must be queried by equality.
//!
//! # Types are preserved
//!
//! The plaintext of a field is `serde_json::to_vec` of its value, and
//! decryption parses it back. So any JSON type (string, number, boolean,
//! null, object, array) comes back as the same `serde_json::Value`, with a
//! number of the same kind and bits: a `u64` or `i64` exactly (all 64
//! bits), an `f64` bit-for-bit (serde_json writes the shortest decimal that
//! parses back to the same double, so `0.1`, `1e300` and `-0.0` round-trip;
//! NaN and infinities cannot occur in a JSON value). With serde_json's
//! `arbitrary_precision` feature a number keeps its exact decimal text
//! instead. Object key order follows serde_json's map (sorted, unless the
//! `preserve_order` feature is on), which matters only for deterministic
//! equality of whole objects.

mod pointer;
mod policy;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use zeroize::Zeroizing;

pub use pointer::{JsonPointer, PointerError};
pub use policy::{DocumentPolicy, FieldMode, FieldRule};

use crate::envelope::Decryptor;
use crate::error::Error;
use crate::format::{Header, Profile, Suite, MAX_HEADER_LEN};
use crate::key::DataKey;
use crate::provider::{CryptoProvider, AES256_KEY_LEN, GCM_NONCE_LEN, GCM_TAG_LEN};
use crate::scope::{EncryptionScope, ScopeResolver};
use crate::stream::chunk::envelope_context;

/// The property that holds a document's header (base64).
pub const CMK_PROPERTY: &str = "_cmk";

const PREFIX_R: &str = "cmke1:r:";
const PREFIX_D: &str = "cmke1:d:";
const AAD_R: &[u8] = b"cmke1:r\0";
const AD_D: &[u8] = b"cmke1:d";
const FIELD_LABEL: &[u8] = b"cmk-envelope/v1 document fields\0";
const DET_LABEL: &[u8] = b"cmk-envelope/v1 document deterministic\0";
const COUNTER_LEN: usize = 4;
const SIV_LEN: usize = 16;

/// Encrypts and decrypts the fields of JSON documents under one
/// [`EncryptionScope`] and one [`DocumentPolicy`]. See the
/// [module docs](self) for the formats and guarantees.
///
/// Cheap to share behind an `Arc`; every method takes `&self`.
pub struct DocumentCipher {
    scope: EncryptionScope,
    resolver: ScopeResolver,
    policy: DocumentPolicy,
    provider: &'static CryptoProvider,
    /// Deterministic keys, by (scope key version, rule index). Only used by
    /// `encrypt` and `decrypt`, which also reach the scope key through its
    /// cache first (to wrap or unwrap the DEK), so a destroyed or revoked
    /// scope stops them within its TTL; the first refusal wipes this map
    /// (`Aes256Siv` zeroizes its keys on drop).
    siv: Mutex<HashMap<(u32, usize), Aes256Siv>>,
}

impl fmt::Debug for DocumentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentCipher")
            .field("scope", &self.scope.id())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn field_err(path: &str, problem: &'static str) -> Error {
    Error::DocumentField {
        path: crate::untrusted::escape(path),
        problem,
    }
}

fn auth_err(path: &str) -> Error {
    Error::FieldAuthentication {
        path: crate::untrusted::escape(path),
    }
}

/// The version of a scope KEK id `scope:<id>/<v>`.
fn kid_version(kid: &str) -> crate::Result<u32> {
    kid.rsplit_once('/')
        .and_then(|(_, v)| v.parse().ok())
        .ok_or(Error::Internal("a scope key id without version"))
}

impl DocumentCipher {
    /// A cipher for documents of `policy`, with keys of `scope`.
    pub fn new(scope: EncryptionScope, policy: DocumentPolicy) -> DocumentCipher {
        DocumentCipher {
            resolver: scope.resolver(),
            scope,
            policy,
            provider: CryptoProvider::default_provider(),
            siv: Mutex::new(HashMap::new()),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &DocumentPolicy {
        &self.policy
    }

    /// Encrypts, in place, every field of the policy, and adds the header
    /// as `_cmk`. A fresh data key is drawn for this call.
    ///
    /// Errors leave `doc` unchanged: [`Error::DocumentField`] when `doc` is
    /// not an object, has no string `id`, already has `_cmk`, or lacks a
    /// path of the policy; a scope error when the scope key is unavailable.
    ///
    /// Cost: no KMS call once the scope key is cached; one key wrap, one
    /// HKDF and one AES-GCM per randomized field, one AES-SIV per
    /// deterministic field.
    pub async fn encrypt(&self, doc: &mut Value) -> crate::Result<()> {
        let id = document_id(doc)?.to_owned();
        if doc.get(CMK_PROPERTY).is_some() {
            return Err(field_err(
                "/_cmk",
                "the document already has a key header (is it encrypted already?)",
            ));
        }
        for rule in self.policy.fields() {
            if rule.path.get(doc).is_none() {
                return Err(field_err(
                    rule.path.as_str(),
                    "a path to encrypt is missing from the document",
                ));
            }
        }

        let dek = DataKey::generate(self.provider)?;
        let wrapped = self
            .scope
            .kek()
            .wrap_key(&dek)
            .await
            .inspect_err(|_| self.forget_siv_keys())?;
        // The version the data key was wrapped under: the deterministic
        // fields of this write use the same one.
        let version = kid_version(&wrapped.kek_id)?;
        let header = Header::new(Suite::Cobblestone256, Profile::Document, vec![wrapped])?;
        self.ensure_siv_keys(version).await?;

        // Nothing below can fail for a well-formed policy; `doc` is only
        // changed from here on.
        let gcm = self.field_key(&dek, &id)?;
        drop(dek);
        let mut siv = self.siv.lock().expect("siv lock");
        for (i, rule) in self.policy.fields().iter().enumerate() {
            let slot = rule.path.get_mut(doc).expect("checked above");
            let plaintext =
                Zeroizing::new(serde_json::to_vec(&*slot).map_err(|_| {
                    field_err(rule.path.as_str(), "the value cannot be serialized")
                })?);
            let text = match rule.mode {
                FieldMode::Randomized => seal_randomized(&*gcm, i, rule.path.as_str(), &plaintext)?,
                FieldMode::Deterministic => {
                    let key = siv.get_mut(&(version, i)).expect("derived above");
                    seal_deterministic(key, version, rule.path.as_str(), &plaintext)?
                }
            };
            *slot = Value::String(text);
        }
        drop(siv);
        doc.as_object_mut().expect("checked above").insert(
            CMK_PROPERTY.to_owned(),
            Value::String(STANDARD.encode(header.to_bytes())),
        );
        Ok(())
    }

    /// Decrypts, in place, every field of the policy, and removes `_cmk`.
    ///
    /// Errors leave `doc` unchanged:
    /// * [`Error::MalformedHeader`]: `_cmk` is missing, not a string, not
    ///   base64, not a valid header, or not a document header;
    /// * [`Error::DocumentField`]: no string `id`, a path of the policy is
    ///   missing or holds no ciphertext of the policy's mode;
    /// * [`Error::FieldAuthentication`]: a value was modified or moved from
    ///   another path or document;
    /// * key errors when the header's key cannot be unwrapped.
    pub async fn decrypt(&self, doc: &mut Value) -> crate::Result<()> {
        let id = document_id(doc)?.to_owned();
        let header = document_header(doc)?;
        let decryptor = Decryptor::new(&header, &self.resolver, Profile::Document, id.as_bytes())
            .await
            .inspect_err(|_| self.forget_siv_keys())?;
        let gcm = self.field_key(decryptor.data_key(), &id)?;
        drop(decryptor);

        // Parse every field first, so that key derivation (async) happens
        // before any value is touched.
        let mut parsed = Vec::with_capacity(self.policy.fields().len());
        for rule in self.policy.fields() {
            let path = rule.path.as_str();
            let text = match rule.path.get(doc) {
                None => {
                    return Err(field_err(
                        path,
                        "a path the policy encrypts is missing from the document",
                    ))
                }
                Some(Value::String(s)) => s.as_str(),
                Some(_) => {
                    return Err(field_err(
                        path,
                        "the policy encrypts this field, but it holds no ciphertext",
                    ))
                }
            };
            parsed.push(parse_field(path, rule.mode, text)?);
        }
        for (i, p) in parsed.iter().enumerate() {
            if let Parsed::Deterministic { version, .. } = p {
                self.ensure_siv_key(*version, i).await?;
            }
        }

        let mut clear = Vec::with_capacity(parsed.len());
        {
            let mut siv = self.siv.lock().expect("siv lock");
            for ((i, rule), p) in self.policy.fields().iter().enumerate().zip(parsed) {
                let path = rule.path.as_str();
                let plaintext = match p {
                    Parsed::Randomized(bytes) => open_randomized(&*gcm, path, bytes)?,
                    Parsed::Deterministic { version, bytes } => {
                        let key = siv.get_mut(&(version, i)).expect("derived above");
                        open_deterministic(key, path, &bytes)?
                    }
                };
                let value: Value = serde_json::from_slice(&plaintext)
                    .map_err(|_| field_err(path, "the decrypted value is not JSON"))?;
                clear.push(value);
            }
        }
        for (rule, value) in self.policy.fields().iter().zip(clear) {
            *rule.path.get_mut(doc).expect("checked above") = value;
        }
        doc.as_object_mut()
            .expect("checked above")
            .remove(CMK_PROPERTY);
        Ok(())
    }

    /// Re-wraps `doc`'s data key under the scope's current key version: its
    /// `_cmk` header changes, every field stays as it is. Randomized fields
    /// keep their data key (the same key, wrapped anew); deterministic
    /// fields keep the scope key version they were written under (the `v`
    /// of `cmke1:d:v:`), so that version is needed to read and to query
    /// them until the document is written again.
    ///
    /// Returns whether the header changed: `false` (and `doc` unchanged)
    /// when it already names the current version. The fields are not
    /// checked (the header is re-wrapped without reading them); a header
    /// that does not open fails as in [`DocumentCipher::decrypt`], with
    /// `doc` unchanged.
    ///
    /// Cost: one unwrap and one wrap under cached scope keys (no KMS call
    /// once they are cached).
    pub async fn rewrap(&self, doc: &mut Value) -> crate::Result<bool> {
        let header = document_header(doc)?;
        let rewrapped =
            crate::envelope::rewrap(&header, &self.resolver, &[self.scope.kek()]).await?;
        let kids = |h: &Header| {
            h.keys()
                .iter()
                .map(|k| k.kek_id.clone())
                .collect::<Vec<_>>()
        };
        if kids(&rewrapped) == kids(&header) {
            return Ok(false);
        }
        doc.as_object_mut().expect("has a header").insert(
            CMK_PROPERTY.to_owned(),
            Value::String(STANDARD.encode(rewrapped.to_bytes())),
        );
        Ok(true)
    }

    /// The scope this cipher encrypts under.
    #[cfg(feature = "cosmos")]
    pub(crate) fn scope(&self) -> &EncryptionScope {
        &self.scope
    }

    /// The ciphertext that [`DocumentCipher::encrypt`] writes today for
    /// `value` under the deterministic field `path`: compare it for
    /// equality in a store query. Uses the current scope key version.
    ///
    /// Errors: [`Error::DocumentField`] when `path` is not a deterministic
    /// field of the policy.
    pub async fn equality_token(&self, path: &str, value: &Value) -> crate::Result<Value> {
        let version = self.scope.sealing_version().await?;
        self.equality_token_for_version(path, value, version).await
    }

    /// [`DocumentCipher::equality_token`] for documents written under scope
    /// key `version` (the `v` in `cmke1:d:v:…`).
    pub async fn equality_token_for_version(
        &self,
        path: &str,
        value: &Value,
        version: u32,
    ) -> crate::Result<Value> {
        let (_, rule) = self
            .policy
            .rule(path)
            .ok_or_else(|| field_err(path, "not a field of the policy"))?;
        if rule.mode != FieldMode::Deterministic {
            return Err(field_err(
                path,
                "equality tokens exist only for deterministic fields",
            ));
        }
        // Always through the scope cache: a token is an encryption too.
        let mut key = self.derive_siv(version, path).await?;
        let plaintext = Zeroizing::new(
            serde_json::to_vec(value)
                .map_err(|_| field_err(path, "the value cannot be serialized"))?,
        );
        Ok(Value::String(seal_deterministic(
            &mut key, version, path, &plaintext,
        )?))
    }

    fn field_key(
        &self,
        dek: &DataKey,
        id: &str,
    ) -> crate::Result<Box<dyn crate::provider::Aes256GcmKey>> {
        let context = envelope_context(Suite::Cobblestone256, Profile::Document, id.as_bytes());
        let mut key = Zeroizing::new([0u8; AES256_KEY_LEN]);
        self.provider
            .hkdf
            .expand_sha512(
                dek.expose_secret_bytes(),
                &[FIELD_LABEL, &context],
                &mut key[..],
            )
            .map_err(|_| Error::Internal("HKDF expansion failed"))?;
        Ok(self.provider.aead.aes256_gcm(&key))
    }

    /// Drops (and wipes) the cached deterministic keys: the scope refused
    /// a key, so it may be destroyed or its CMK revoked.
    fn forget_siv_keys(&self) {
        self.siv.lock().expect("siv lock").clear();
    }

    async fn derive_siv(&self, version: u32, path: &str) -> crate::Result<Aes256Siv> {
        let mut label = Vec::with_capacity(DET_LABEL.len() + path.len());
        label.extend_from_slice(DET_LABEL);
        label.extend_from_slice(path.as_bytes());
        let key = self
            .scope
            .derive_key(version, &label)
            .await
            .inspect_err(|_| self.forget_siv_keys())?;
        Aes256Siv::new_from_slice(&key[..]).map_err(|_| Error::Internal("AES-SIV key length"))
    }

    async fn ensure_siv_key(&self, version: u32, index: usize) -> crate::Result<()> {
        if self
            .siv
            .lock()
            .expect("siv lock")
            .contains_key(&(version, index))
        {
            return Ok(());
        }
        let path = self.policy.fields()[index].path.as_str();
        let key = self.derive_siv(version, path).await?;
        self.siv
            .lock()
            .expect("siv lock")
            .insert((version, index), key);
        Ok(())
    }

    async fn ensure_siv_keys(&self, version: u32) -> crate::Result<()> {
        for (i, rule) in self.policy.fields().iter().enumerate() {
            if rule.mode == FieldMode::Deterministic {
                self.ensure_siv_key(version, i).await?;
            }
        }
        Ok(())
    }
}

fn document_id(doc: &Value) -> crate::Result<&str> {
    let Value::Object(map) = doc else {
        return Err(field_err("", "a document must be a JSON object"));
    };
    match map.get("id") {
        Some(Value::String(s)) => Ok(s),
        _ => Err(field_err("/id", "a document needs a string `id`")),
    }
}

fn document_header(doc: &Value) -> crate::Result<Header> {
    let text = match doc.get(CMK_PROPERTY) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(Error::MalformedHeader("`_cmk` is not a string")),
        None => {
            return Err(Error::MalformedHeader(
                "the document has no `_cmk` header property",
            ))
        }
    };
    if !crate::util::base64_fits(text.len(), MAX_HEADER_LEN) {
        // Refused for its length before it is decoded.
        return Err(Error::MalformedHeader(
            "`_cmk` is longer than the base64 of the largest header (64 KiB)",
        ));
    }
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| Error::MalformedHeader("`_cmk` is not standard base64"))?;
    let header = Header::parse(&bytes)?;
    if header.profile() != Profile::Document {
        return Err(Error::MalformedHeader(
            "`_cmk` holds a header of another profile than `document`",
        ));
    }
    Ok(header)
}

/// For the `document_fields` fuzz target: the header a document's `_cmk`
/// holds.
#[cfg(fuzzing)]
pub(crate) fn fuzz_header(doc: &Value) -> crate::Result<Header> {
    document_header(doc)
}

/// For the `document_fields` fuzz target: parses `text` as a field
/// ciphertext of `mode` and writes what it parsed back as text.
#[cfg(fuzzing)]
pub(crate) fn fuzz_reencode_field(
    path: &str,
    mode: FieldMode,
    text: &str,
) -> crate::Result<String> {
    Ok(match parse_field(path, mode, text)? {
        Parsed::Randomized(bytes) => format!("{PREFIX_R}{}", STANDARD.encode(bytes)),
        Parsed::Deterministic { version, bytes } => {
            format!("{PREFIX_D}{version}:{}", STANDARD.encode(bytes))
        }
    })
}

enum Parsed {
    Randomized(Vec<u8>),
    Deterministic { version: u32, bytes: Vec<u8> },
}

fn parse_field(path: &str, mode: FieldMode, text: &str) -> crate::Result<Parsed> {
    let not_ct = || {
        field_err(
            path,
            "the policy encrypts this field, but it holds no ciphertext",
        )
    };
    if !text.starts_with("cmke1:") {
        return Err(not_ct());
    }
    let wrong_mode = || {
        field_err(
            path,
            "the field is encrypted in another mode than the policy gives it",
        )
    };
    let decode = |b64: &str| STANDARD.decode(b64).map_err(|_| auth_err(path));
    match mode {
        FieldMode::Randomized => {
            let b64 = text.strip_prefix(PREFIX_R).ok_or_else(wrong_mode)?;
            let bytes = decode(b64)?;
            if bytes.len() < COUNTER_LEN + GCM_TAG_LEN {
                return Err(auth_err(path));
            }
            Ok(Parsed::Randomized(bytes))
        }
        FieldMode::Deterministic => {
            let rest = text.strip_prefix(PREFIX_D).ok_or_else(wrong_mode)?;
            let (v, b64) = rest.split_once(':').ok_or_else(|| auth_err(path))?;
            // One encoding per value: decimal digits, no sign, no leading
            // zero (`u32::from_str` alone also takes `+1`).
            if !v.bytes().all(|b| b.is_ascii_digit()) || v.starts_with('0') {
                return Err(auth_err(path));
            }
            let version: u32 = v.parse().map_err(|_| auth_err(path))?;
            let bytes = decode(b64)?;
            if bytes.len() < SIV_LEN {
                return Err(auth_err(path));
            }
            Ok(Parsed::Deterministic { version, bytes })
        }
    }
}

fn gcm_nonce(counter: [u8; COUNTER_LEN]) -> [u8; GCM_NONCE_LEN] {
    let mut nonce = [0u8; GCM_NONCE_LEN];
    nonce[GCM_NONCE_LEN - COUNTER_LEN..].copy_from_slice(&counter);
    nonce
}

fn gcm_aad(path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_R.len() + path.len());
    aad.extend_from_slice(AAD_R);
    aad.extend_from_slice(path.as_bytes());
    aad
}

fn seal_randomized(
    gcm: &dyn crate::provider::Aes256GcmKey,
    index: usize,
    path: &str,
    plaintext: &[u8],
) -> crate::Result<String> {
    let counter = u32::try_from(index)
        .map_err(|_| Error::ApiMisuse("too many fields in one policy"))?
        .to_be_bytes();
    // Sealed out of place straight from the plaintext: the buffer never
    // holds plaintext (nothing to wipe if sealing fails).
    let n = plaintext.len();
    let mut buf = vec![0u8; COUNTER_LEN + n + GCM_TAG_LEN];
    buf[..COUNTER_LEN].copy_from_slice(&counter);
    let (ct, tag_slot) = buf[COUNTER_LEN..].split_at_mut(n);
    let tag = gcm
        .seal_to(&gcm_nonce(counter), &gcm_aad(path), plaintext, ct)
        .map_err(|_| Error::Internal("AES-GCM sealing failed"))?;
    tag_slot.copy_from_slice(&tag);
    let mut out = String::with_capacity(PREFIX_R.len() + buf.len().div_ceil(3) * 4);
    out.push_str(PREFIX_R);
    STANDARD.encode_string(&buf, &mut out);
    Ok(out)
}

fn open_randomized(
    gcm: &dyn crate::provider::Aes256GcmKey,
    path: &str,
    mut bytes: Vec<u8>,
) -> crate::Result<Zeroizing<Vec<u8>>> {
    let counter: [u8; COUNTER_LEN] = bytes[..COUNTER_LEN].try_into().expect("length checked");
    let tag_at = bytes.len() - GCM_TAG_LEN;
    let tag: [u8; GCM_TAG_LEN] = bytes[tag_at..].try_into().expect("length checked");
    gcm.open_in_place(
        &gcm_nonce(counter),
        &gcm_aad(path),
        &mut bytes[COUNTER_LEN..tag_at],
        &tag,
    )
    .map_err(|_| auth_err(path))?;
    bytes.truncate(tag_at);
    bytes.drain(..COUNTER_LEN);
    Ok(Zeroizing::new(bytes))
}

fn seal_deterministic(
    key: &mut Aes256Siv,
    version: u32,
    path: &str,
    plaintext: &[u8],
) -> crate::Result<String> {
    let ct = key
        .encrypt([AD_D, path.as_bytes()], plaintext)
        .map_err(|_| Error::Internal("AES-SIV sealing failed"))?;
    let mut out = String::with_capacity(PREFIX_D.len() + 11 + ct.len().div_ceil(3) * 4);
    out.push_str(PREFIX_D);
    out.push_str(&version.to_string());
    out.push(':');
    STANDARD.encode_string(&ct, &mut out);
    Ok(out)
}

fn open_deterministic(
    key: &mut Aes256Siv,
    path: &str,
    bytes: &[u8],
) -> crate::Result<Zeroizing<Vec<u8>>> {
    key.decrypt([AD_D, path.as_bytes()], bytes)
        .map(Zeroizing::new)
        .map_err(|_| auth_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `_cmk` longer than the base64 of the largest header is refused for
    /// its length, before it is decoded (it was decoded whole, then refused
    /// by the header parser).
    #[test]
    fn an_over_long_cmk_is_refused_before_decoding() {
        let reason =
            |cmk: String| match document_header(&serde_json::json!({"id": "d", "_cmk": cmk})) {
                Err(Error::MalformedHeader(m)) => m,
                other => panic!("{other:?}"),
            };
        assert!(reason("AAAA".repeat(30_000)).contains("longer than"));
        // The largest header's length passes the length check (and fails
        // on its content).
        let most = STANDARD.encode(vec![0u8; MAX_HEADER_LEN]);
        assert!(!reason(most).contains("longer than"));
    }

    /// A deterministic field's key version has one spelling: `+1`, `01`
    /// and `1 ` are refused like any other malformed ciphertext
    /// (`u32::from_str` alone takes `+1` for `1`: the same ciphertext under
    /// two texts, which equality queries on the stored text tell apart).
    #[test]
    fn a_key_version_has_one_spelling() {
        let b64 = STANDARD.encode([7u8; 40]);
        let parse = |v: &str| {
            parse_field(
                "/b",
                FieldMode::Deterministic,
                &format!("{PREFIX_D}{v}:{b64}"),
            )
        };
        assert!(matches!(
            parse("1"),
            Ok(Parsed::Deterministic { version: 1, .. })
        ));
        assert!(matches!(
            parse("12"),
            Ok(Parsed::Deterministic { version: 12, .. })
        ));
        for v in ["+1", "01", "0", "-1", " 1", "1 ", "", "1_0", "4294967296"] {
            assert!(parse(v).is_err(), "version {v:?} accepted");
        }
    }
}
