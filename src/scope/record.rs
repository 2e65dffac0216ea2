//! The scope key record: a scope's keys, each version wrapped by the CMK.
//!
//! The record is the only place a scope key is persisted, and only ever
//! wrapped. It is JSON, so operators can read it:
//!
//! ```json
//! {
//!   "format": "cmk-envelope/scope-record/v2",
//!   "scope_id": "tenant-7",
//!   "mode": "customer-managed",
//!   "cmk_container": "myvault.vault.azure.net",
//!   "current": 2,
//!   "versions": [
//!     {"version": 1, "alg": "RSA-OAEP-256", "kek_id": "https://…/keys/cmk/ab12", "wrapped": "<base64url>"},
//!     {"version": 2, "alg": "RSA-OAEP-256", "kek_id": "https://…/keys/cmk/ab12", "wrapped": "<base64url>"}
//!   ]
//! }
//! ```
//!
//! Every version stays in the record so that objects sealed under it stay
//! readable; a CMK rotation re-wraps every version. In format `v2` each
//! `wrapped` holds labelled scope key material (`material.rs`); records of
//! format `v1`, written before labelling, hold bare 32-byte keys and are
//! read as such (open only) until their first write, which migrates them.
//! The store is the truth: an open scope re-reads the record once per
//! cache refresh.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::format::{MAX_KEK_ID_LEN, MAX_WRAPPED_LEN};
use crate::kek::{WrapAlgorithm, WrappedKey};

/// Records whose versions hold labelled scope key material.
const FORMAT_V2: &str = "cmk-envelope/scope-record/v2";
/// Records written before labelling: bare 32-byte keys.
const FORMAT_V1: &str = "cmk-envelope/scope-record/v1";

/// Who holds a scope's root key. Fixed when the scope is created: a scope
/// never switches between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeMode {
    /// The service holds the key that protects the scope key.
    ServiceManaged,
    /// The customer holds it, in their vault or HSM.
    CustomerManaged,
}

impl std::fmt::Display for ScopeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScopeMode::ServiceManaged => "service-managed",
            ScopeMode::CustomerManaged => "customer-managed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RawVersion {
    version: u32,
    alg: String,
    kek_id: String,
    wrapped: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RawRecord {
    format: String,
    scope_id: String,
    mode: ScopeMode,
    cmk_container: String,
    current: u32,
    versions: Vec<RawVersion>,
}

/// One version of a scope key, wrapped by the CMK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeKeyVersion {
    /// Version number, from 1.
    pub version: u32,
    /// The scope key wrapped by the CMK.
    pub wrapped: WrappedKey,
}

/// A parsed scope key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRecord {
    /// The scope's id.
    pub scope_id: String,
    /// Service- or customer-managed; never changes.
    pub mode: ScopeMode,
    /// The key container (vault, token, key directory) of the CMK.
    pub cmk_container: String,
    /// The version new objects are sealed under.
    pub current: u32,
    /// Every version, oldest first.
    pub versions: Vec<ScopeKeyVersion>,
    /// Whether every version holds labelled scope key material (record
    /// format v2, what this crate writes). `false` for records written
    /// before labelling (format v1): their bare keys are readable but
    /// never sealed under, and the first write migrates them.
    pub labelled: bool,
}

/// Scope ids: 1 to 128 characters from `[A-Za-z0-9._-]`, not starting with
/// a dot. They appear in file names and in `scope:<id>/<version>` key ids.
pub(crate) fn validate_scope_id(id: &str) -> crate::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::ApiMisuse(
            "a scope id is 1 to 128 characters of [A-Za-z0-9._-], not starting with '.'",
        ))
    }
}

impl ScopeRecord {
    /// The version entry `v`.
    pub fn version(&self, v: u32) -> Option<&ScopeKeyVersion> {
        self.versions.iter().find(|e| e.version == v)
    }

    /// The entry of the current version (a parsed record always has it).
    pub fn current_version(&self) -> Option<&ScopeKeyVersion> {
        self.version(self.current)
    }

    /// Serializes the record.
    pub fn to_json(&self) -> Vec<u8> {
        let raw = RawRecord {
            format: if self.labelled { FORMAT_V2 } else { FORMAT_V1 }.into(),
            scope_id: self.scope_id.clone(),
            mode: self.mode,
            cmk_container: self.cmk_container.clone(),
            current: self.current,
            versions: self
                .versions
                .iter()
                .map(|v| RawVersion {
                    version: v.version,
                    alg: v.wrapped.alg.jose_name().into(),
                    kek_id: v.wrapped.kek_id.clone(),
                    wrapped: URL_SAFE_NO_PAD.encode(&v.wrapped.wrapped),
                })
                .collect(),
        };
        let mut s = serde_json::to_vec_pretty(&raw).expect("record serializes");
        s.push(b'\n');
        s
    }

    /// Parses and validates a record read from a store.
    ///
    /// Each version's key id and wrapped key are held to the limits of an
    /// envelope header's entries (1 to 2,048 and 1 to 1,024 bytes), the
    /// wrapped key's before it is decoded. Cost: linear in the record's
    /// length.
    pub fn from_json(bytes: &[u8]) -> crate::Result<ScopeRecord> {
        let bad = |why: &str| Error::KeyPolicy(format!("malformed scope key record: {why}"));
        let raw: RawRecord = serde_json::from_slice(bytes)
            .map_err(|e| bad(&format!("bad JSON at line {}", e.line())))?;
        let labelled = match raw.format.as_str() {
            FORMAT_V2 => true,
            FORMAT_V1 => false,
            _ => return Err(bad("unknown format")),
        };
        validate_scope_id(&raw.scope_id).map_err(|_| bad("invalid scope id"))?;
        let mut versions = Vec::with_capacity(raw.versions.len());
        let mut seen = std::collections::HashSet::with_capacity(raw.versions.len());
        for v in raw.versions {
            let alg = WrapAlgorithm::from_jose_name(&v.alg)
                .ok_or_else(|| bad("unknown wrap algorithm"))?;
            if v.kek_id.is_empty() || v.kek_id.len() > MAX_KEK_ID_LEN {
                return Err(bad("a key id must be 1 to 2,048 bytes"));
            }
            if !crate::util::base64_fits(v.wrapped.len(), MAX_WRAPPED_LEN) {
                return Err(bad("a wrapped key must be 1 to 1,024 bytes"));
            }
            let wrapped = URL_SAFE_NO_PAD
                .decode(&v.wrapped)
                .map_err(|_| bad("wrapped key is not base64url"))?;
            if wrapped.is_empty() || wrapped.len() > MAX_WRAPPED_LEN {
                return Err(bad("a wrapped key must be 1 to 1,024 bytes"));
            }
            if v.version == 0 || !seen.insert(v.version) {
                return Err(bad("version numbers must be unique and start at 1"));
            }
            versions.push(ScopeKeyVersion {
                version: v.version,
                wrapped: WrappedKey {
                    alg,
                    kek_id: v.kek_id,
                    wrapped,
                },
            });
        }
        if !seen.contains(&raw.current) {
            return Err(bad("the current version is missing"));
        }
        Ok(ScopeRecord {
            scope_id: raw.scope_id,
            mode: raw.mode,
            cmk_container: raw.cmk_container,
            current: raw.current,
            versions,
            labelled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> ScopeRecord {
        ScopeRecord {
            scope_id: "tenant-7".into(),
            mode: ScopeMode::CustomerManaged,
            cmk_container: "myvault.vault.azure.net".into(),
            current: 2,
            versions: (1..=2)
                .map(|v| ScopeKeyVersion {
                    version: v,
                    wrapped: WrappedKey {
                        alg: WrapAlgorithm::A256Kw,
                        kek_id: "k".into(),
                        wrapped: vec![v as u8; 40],
                    },
                })
                .collect(),
            labelled: true,
        }
    }

    #[test]
    fn json_round_trip() {
        let mut r = rec();
        let j = r.to_json();
        let text = std::str::from_utf8(&j).unwrap();
        assert!(text.contains("customer-managed") && text.contains("scope-record/v2"));
        assert_eq!(ScopeRecord::from_json(&j).unwrap(), r);
        // records written before labelling keep their format
        r.labelled = false;
        let j = r.to_json();
        assert!(std::str::from_utf8(&j).unwrap().contains("scope-record/v1"));
        assert_eq!(ScopeRecord::from_json(&j).unwrap(), r);
        let other = std::str::from_utf8(&j)
            .unwrap()
            .replace("record/v1", "record/v3");
        assert!(ScopeRecord::from_json(other.as_bytes()).is_err());
    }

    #[test]
    fn rejects_inconsistent_records() {
        let mut r = rec();
        r.current = 3;
        assert!(ScopeRecord::from_json(&r.to_json()).is_err());
        let mut r = rec();
        r.versions[1].version = 1;
        assert!(ScopeRecord::from_json(&r.to_json()).is_err());
        assert!(ScopeRecord::from_json(b"{").is_err());
        // Key ids and wrapped keys within a header's limits.
        for (kek_id, wrapped) in [("", 40), (&*"k".repeat(2_049), 40), ("k", 0), ("k", 1_025)] {
            let mut r = rec();
            r.versions[0].wrapped.kek_id = kek_id.into();
            r.versions[0].wrapped.wrapped = vec![1; wrapped];
            assert!(
                ScopeRecord::from_json(&r.to_json()).is_err(),
                "{} {wrapped}",
                kek_id.len()
            );
        }
    }

    #[test]
    fn scope_ids() {
        for ok in ["a", "tenant-7", "A.b_c-9"] {
            validate_scope_id(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(validate_scope_id(bad).is_err(), "{bad:?}");
        }
    }
}
