//! Key Vault and Managed HSM key URLs: parsing and validation.
//!
//! A key URL is `https://NAME.vault.azure.net/keys/KEY[/VERSION]` (a vault)
//! or `https://NAME.managedhsm.azure.net/keys/KEY[/VERSION]` (a Managed
//! HSM), also in the sovereign clouds (`vault.azure.cn`,
//! `vault.usgovcloudapi.net`, `managedhsm.azure.cn`,
//! `managedhsm.usgovcloudapi.net`). Anything else is refused before any
//! network call: another scheme, a port other than 443, user info, a
//! query, a fragment, or a path that is not exactly `/keys/KEY` or
//! `/keys/KEY/VERSION`.
//!
//! Errors never echo the URL: a mistyped URL can carry a token in its query.

use std::fmt;

use crate::error::{Error, KekError, KekErrorKind};

use super::BACKEND;

/// Host suffixes of Key Vault vaults, per cloud.
const VAULT_SUFFIXES: [&str; 3] = [
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
];
/// Host suffixes of Managed HSMs, per cloud.
const HSM_SUFFIXES: [&str; 3] = [
    ".managedhsm.azure.net",
    ".managedhsm.azure.cn",
    ".managedhsm.usgovcloudapi.net",
];

/// Which kind of service holds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VaultKind {
    /// An Azure Key Vault vault (`*.vault.azure.net`): RSA keys.
    KeyVault,
    /// An Azure Key Vault Managed HSM (`*.managedhsm.azure.net`): RSA and
    /// `oct-HSM` (AES) keys.
    ManagedHsm,
}

/// A parsed, validated key URL.
///
/// The host is kept in lower case. Key names and versions are compared
/// ignoring ASCII case, as Key Vault does.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyUrl {
    kind: VaultKind,
    host: String,
    name: String,
    version: Option<String>,
}

impl fmt::Debug for KeyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyUrl({self})")
    }
}

impl fmt::Display for KeyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}/keys/{}", self.host, self.name)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn invalid(problem: impl Into<String>) -> Error {
    KekError::new(
        BACKEND,
        KekErrorKind::Misconfigured,
        format!("invalid key URL: {}", problem.into()),
    )
    .into()
}

impl KeyUrl {
    /// Parses and validates a key URL (versioned or not).
    ///
    /// Errors: [`Error::Kek`] with [`KekErrorKind::Misconfigured`] saying
    /// what is wrong (the URL itself is not repeated).
    pub fn parse(url: &str) -> crate::Result<KeyUrl> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| invalid("it must start with https://"))?;
        if rest.contains(['?', '#']) {
            return Err(invalid("it must not have a query or a fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(invalid("it must not contain user information"));
        }
        let host = match authority.strip_suffix(":443") {
            Some(h) => h,
            None if authority.contains(':') => {
                return Err(invalid("it must not name a port other than 443"))
            }
            None => authority,
        }
        .to_ascii_lowercase();
        let kind = if VAULT_SUFFIXES.iter().any(|s| host.ends_with(s)) {
            VaultKind::KeyVault
        } else if HSM_SUFFIXES.iter().any(|s| host.ends_with(s)) {
            VaultKind::ManagedHsm
        } else {
            return Err(invalid(format!(
                "host `{}` is neither a Key Vault (NAME.vault.azure.net) nor a Managed HSM (NAME.managedhsm.azure.net)",
                printable(&host)
            )));
        };
        let label = &host[..host.find('.').unwrap_or(host.len())];
        if !valid_vault_name(label) {
            return Err(invalid(format!(
                "`{}` is not a valid vault name (3 to 24 letters, digits and hyphens, starting with a letter)",
                printable(label)
            )));
        }
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut parts = path.split('/');
        // The path starts with '/', so the first part is empty.
        let (Some(""), Some("keys"), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("the path must be /keys/KEY or /keys/KEY/VERSION"));
        };
        if !valid_key_name(name) {
            return Err(invalid(
                "the key name must be 1 to 127 letters, digits and hyphens",
            ));
        }
        let version = match parts.next() {
            None => None,
            Some(v) if valid_version(v) => Some(v.to_owned()),
            Some(_) => {
                return Err(invalid(
                    "the key version must be 1 to 64 letters and digits",
                ))
            }
        };
        if parts.next().is_some() {
            return Err(invalid("the path must be /keys/KEY or /keys/KEY/VERSION"));
        }
        Ok(KeyUrl {
            kind,
            host,
            name: name.to_owned(),
            version,
        })
    }

    /// Vault or Managed HSM.
    pub fn kind(&self) -> VaultKind {
        self.kind
    }

    /// The host, in lower case (`myvault.vault.azure.net`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The vault's endpoint, `https://HOST` (no trailing slash).
    pub fn vault_url(&self) -> String {
        format!("https://{}", self.host)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's version, if the URL names one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The same key at `version`.
    pub fn with_version(&self, version: &str) -> crate::Result<KeyUrl> {
        if !valid_version(version) {
            return Err(invalid(
                "the key version must be 1 to 64 letters and digits",
            ));
        }
        Ok(KeyUrl {
            version: Some(version.to_owned()),
            ..self.clone()
        })
    }

    /// The same key without a version.
    pub fn unversioned(&self) -> KeyUrl {
        KeyUrl {
            version: None,
            ..self.clone()
        }
    }

    /// Whether `other` names the same key (same host and key name; versions
    /// are not compared).
    pub fn same_key(&self, other: &KeyUrl) -> bool {
        self.host == other.host && self.name.eq_ignore_ascii_case(&other.name)
    }

    /// Whether `other` names the same key and the same version.
    pub fn same_version(&self, other: &KeyUrl) -> bool {
        self.same_key(other)
            && match (&self.version, &other.version) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (None, None) => true,
                _ => false,
            }
    }
}

fn valid_vault_name(s: &str) -> bool {
    (3..=24).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn valid_key_name(s: &str) -> bool {
    (1..=127).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn valid_version(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// At most 64 printable ASCII characters of `s`, for messages.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_and_hsm_urls() {
        let u = KeyUrl::parse("https://MyVault.vault.azure.net/keys/cmk").unwrap();
        assert_eq!(u.kind(), VaultKind::KeyVault);
        assert_eq!(u.host(), "myvault.vault.azure.net");
        assert_eq!(u.name(), "cmk");
        assert_eq!(u.version(), None);
        assert_eq!(u.to_string(), "https://myvault.vault.azure.net/keys/cmk");
        let v = KeyUrl::parse("https://myvault.vault.azure.net:443/keys/cmk/0123abcdef/").unwrap();
        assert_eq!(v.version(), Some("0123abcdef"));
        assert!(u.same_key(&v) && !u.same_version(&v));
        let h = KeyUrl::parse("https://myhsm.managedhsm.azure.net/keys/aes-1/v1").unwrap();
        assert_eq!(h.kind(), VaultKind::ManagedHsm);
        assert_eq!(h.vault_url(), "https://myhsm.managedhsm.azure.net");
        assert!(KeyUrl::parse("https://gov.vault.usgovcloudapi.net/keys/k").is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "http://myvault.vault.azure.net/keys/cmk",
            "https://myvault.vault.azure.net/keys/cmk?sig=secret",
            "https://myvault.vault.azure.net/keys/cmk#x",
            "https://user:pw@myvault.vault.azure.net/keys/cmk",
            "https://myvault.vault.azure.net:8443/keys/cmk",
            "https://evil.example.com/keys/cmk",
            "https://myvault.vault.azure.net.evil.com/keys/cmk",
            "https://vault.azure.net/keys/cmk",
            "https://1vault.vault.azure.net/keys/cmk",
            "https://myvault.vault.azure.net/secrets/cmk",
            "https://myvault.vault.azure.net/keys/",
            "https://myvault.vault.azure.net/keys/cmk/v1/wrapkey",
            "https://myvault.vault.azure.net/keys/c_k",
            "https://myvault.vault.azure.net/keys/cmk/v-1",
            "https://myvault.vault.azure.net",
        ] {
            let e = KeyUrl::parse(bad).unwrap_err();
            assert!(
                !e.to_string().contains("secret") && !e.to_string().contains("pw"),
                "{e}"
            );
            assert!(
                matches!(e, Error::Kek(ref k) if k.kind() == KekErrorKind::Misconfigured),
                "{bad}: {e}"
            );
        }
    }
}
