//! Preflight: checks that a Key Vault key is fit to be a customer-managed
//! key before it wraps anything.
//!
//! [`AzureKeyVaultKek::verify`](super::AzureKeyVaultKek::verify) runs it, and
//! every KEK runs it once on first use. The checks mirror what Azure
//! services require of a customer-managed key. Each failure is its own
//! [`PreflightProblem`], attached as the `source()` of the returned
//! [`Error::Kek`](crate::Error::Kek) so callers can match on it, and its
//! message says what to change in the vault.

use std::fmt;

use azure_core::time::OffsetDateTime;
use azure_security_keyvault_keys::models::{DeletionRecoveryLevel, Key, KeyType};

use crate::error::{KekError, KekErrorKind};
use crate::kek::WrapAlgorithm;

use super::url::KeyUrl;
use super::BACKEND;

/// One reason a key fails preflight. Each says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreflightProblem {
    /// The key (or this version of it) does not exist (HTTP 404).
    NotFound,
    /// The caller may not read the key (HTTP 403 on `get`).
    GetForbidden,
    /// The key is disabled.
    Disabled,
    /// The key's activation date (`nbf`, Unix seconds) is in the future.
    NotYetValid {
        /// `nbf`, Unix seconds.
        not_before: i64,
    },
    /// The key's expiry date (`exp`, Unix seconds) has passed.
    Expired {
        /// `exp`, Unix seconds.
        expired: i64,
    },
    /// The key's permitted operations (`key_ops`) lack some of `wrapKey`,
    /// `unwrapKey`.
    MissingKeyOps {
        /// The missing operations.
        missing: Vec<&'static str>,
    },
    /// The vault does not have soft delete and purge protection on: its
    /// `recoveryLevel` is not `Recoverable` / `CustomizedRecoverable`
    /// (optionally `+ProtectedSubscription`).
    NotRecoverable {
        /// The recovery level the service reported (`"(none)"` if absent).
        recovery_level: String,
    },
    /// The key type cannot do the configured algorithm (for example an EC
    /// key, or an RSA key asked for A256KW).
    KeyTypeMismatch {
        /// The key type the service reported.
        key_type: String,
        /// The configured algorithm.
        algorithm: WrapAlgorithm,
    },
    /// The RSA key is shorter than 2048 bits.
    KeyTooSmall {
        /// Modulus size in bits.
        bits: usize,
    },
}

impl PreflightProblem {
    /// The [`KekErrorKind`] this problem maps to.
    pub fn kind(&self) -> KekErrorKind {
        match self {
            PreflightProblem::NotFound => KekErrorKind::NotFound,
            PreflightProblem::GetForbidden => KekErrorKind::PermissionDenied,
            PreflightProblem::Disabled
            | PreflightProblem::NotYetValid { .. }
            | PreflightProblem::Expired { .. } => KekErrorKind::KeyUnavailable,
            PreflightProblem::MissingKeyOps { .. } => KekErrorKind::KeyUsage,
            PreflightProblem::NotRecoverable { .. } => KekErrorKind::Misconfigured,
            PreflightProblem::KeyTypeMismatch { .. } | PreflightProblem::KeyTooSmall { .. } => {
                KekErrorKind::Unsupported
            }
        }
    }

    /// The error for this problem with `url`.
    pub(crate) fn into_error(self, url: &KeyUrl) -> crate::Error {
        KekError::new(
            BACKEND,
            self.kind(),
            format!("preflight of {url} failed: {self}"),
        )
        .with_source(self)
        .into()
    }
}

impl fmt::Display for PreflightProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreflightProblem::NotFound => f.write_str(
                "the key or key version does not exist: create it, or fix the vault, key name or version in the URL",
            ),
            PreflightProblem::GetForbidden => f.write_str(
                "the caller may not read the key (`get`): grant the keys/get permission \
                 (for example the \"Key Vault Crypto Service Encryption User\" role) to this identity",
            ),
            PreflightProblem::Disabled => f.write_str("the key is disabled: enable it in the vault"),
            PreflightProblem::NotYetValid { not_before } => write!(
                f,
                "the key is not valid yet (activation date nbf = {not_before} Unix time): remove or move back its activation date"
            ),
            PreflightProblem::Expired { expired } => write!(
                f,
                "the key expired (exp = {expired} Unix time): extend its expiration date or rotate to a new version"
            ),
            PreflightProblem::MissingKeyOps { missing } => write!(
                f,
                "the key's permitted operations (key_ops) lack {}: add them to the key",
                missing.join(" and ")
            ),
            PreflightProblem::NotRecoverable { recovery_level } => write!(
                f,
                "the vault's recovery level is {recovery_level}, which lets keys be purged: \
                 enable soft delete and purge protection on the vault"
            ),
            PreflightProblem::KeyTypeMismatch { key_type, algorithm } => write!(
                f,
                "the key type {key_type} cannot do {algorithm}: use an RSA key for RSA-OAEP-256 / RSA-OAEP, \
                 or a Managed HSM oct-HSM key for A256KW"
            ),
            PreflightProblem::KeyTooSmall { bits } => write!(
                f,
                "the RSA key has {bits} bits: create an RSA key of at least 2048 (preferably 3072) bits"
            ),
        }
    }
}

impl std::error::Error for PreflightProblem {}

/// What preflight learned about the key, kept for the KEK's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedKey {
    /// The versioned key URL the service returned as `kid`.
    pub kid: String,
    /// The key type (`RSA`, `RSA-HSM`, `oct-HSM`).
    pub key_type: String,
    /// The vault's recovery level.
    pub recovery_level: String,
    /// For RSA keys, the size of a wrapped key (the modulus length in
    /// bytes); for A256KW, 40.
    pub wrapped_len: usize,
}

fn key_type_name(t: &KeyType) -> String {
    match t {
        KeyType::Ec => "EC".into(),
        KeyType::EcHsm => "EC-HSM".into(),
        KeyType::Oct => "oct".into(),
        KeyType::OctHsm => "oct-HSM".into(),
        KeyType::Rsa => "RSA".into(),
        KeyType::RsaHsm => "RSA-HSM".into(),
        KeyType::UnknownValue(s) => s
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect(),
    }
}

fn recovery_level_name(l: &DeletionRecoveryLevel) -> (String, bool) {
    use DeletionRecoveryLevel as L;
    match l {
        L::Recoverable => ("Recoverable".into(), true),
        L::RecoverableProtectedSubscription => ("Recoverable+ProtectedSubscription".into(), true),
        L::CustomizedRecoverable => ("CustomizedRecoverable".into(), true),
        L::CustomizedRecoverableProtectedSubscription => {
            ("CustomizedRecoverable+ProtectedSubscription".into(), true)
        }
        L::Purgeable => ("Purgeable".into(), false),
        L::RecoverablePurgeable => ("Recoverable+Purgeable".into(), false),
        L::CustomizedRecoverablePurgeable => ("CustomizedRecoverable+Purgeable".into(), false),
        L::UnknownValue(s) => (
            s.chars()
                .filter(|c| c.is_ascii_graphic() || *c == '+')
                .take(64)
                .collect(),
            false,
        ),
    }
}

/// Checks a `get` response against every requirement, in a fixed order:
/// enabled, `nbf`, `exp`, `key_ops`, recovery level, key type and size.
pub(crate) fn check(
    key: &Key,
    algorithm: WrapAlgorithm,
    now: OffsetDateTime,
) -> Result<VerifiedKey, PreflightProblem> {
    let attrs = key.attributes.clone().unwrap_or_default();
    if attrs.enabled == Some(false) {
        return Err(PreflightProblem::Disabled);
    }
    if let Some(nbf) = attrs.not_before {
        if nbf > now {
            return Err(PreflightProblem::NotYetValid {
                not_before: nbf.unix_timestamp(),
            });
        }
    }
    if let Some(exp) = attrs.expires {
        if exp <= now {
            return Err(PreflightProblem::Expired {
                expired: exp.unix_timestamp(),
            });
        }
    }
    let jwk = key.key.as_ref();
    let ops: Vec<String> = jwk.and_then(|k| k.key_ops.clone()).unwrap_or_default();
    let missing: Vec<&'static str> = ["wrapKey", "unwrapKey"]
        .into_iter()
        .filter(|op| !ops.iter().any(|o| o == op))
        .collect();
    if !missing.is_empty() {
        return Err(PreflightProblem::MissingKeyOps { missing });
    }
    let (recovery_level, recoverable) = match &attrs.recovery_level {
        Some(l) => recovery_level_name(l),
        None => ("(none)".into(), false),
    };
    if !recoverable {
        return Err(PreflightProblem::NotRecoverable { recovery_level });
    }
    let kty = jwk.and_then(|k| k.kty.clone());
    let key_type = kty
        .as_ref()
        .map(key_type_name)
        .unwrap_or_else(|| "(none)".into());
    let fits = match (&kty, algorithm.is_rsa()) {
        (Some(KeyType::Rsa | KeyType::RsaHsm), true) => true,
        (Some(KeyType::Oct | KeyType::OctHsm), false) => algorithm == WrapAlgorithm::A256Kw,
        _ => false,
    };
    if !fits {
        return Err(PreflightProblem::KeyTypeMismatch {
            key_type,
            algorithm,
        });
    }
    let wrapped_len = if algorithm.is_rsa() {
        let n = jwk.and_then(|k| k.n.as_deref()).unwrap_or_default();
        let n = &n[n.iter().take_while(|b| **b == 0).count()..];
        let bits = n.len() * 8 - n.first().map(|b| b.leading_zeros() as usize).unwrap_or(0);
        if bits < 2048 {
            return Err(PreflightProblem::KeyTooSmall { bits });
        }
        n.len()
    } else {
        40
    };
    let kid = jwk.and_then(|k| k.kid.clone()).unwrap_or_default();
    Ok(VerifiedKey {
        kid,
        key_type,
        recovery_level,
        wrapped_len,
    })
}
