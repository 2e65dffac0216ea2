//! Azure Key Vault and Managed HSM key-encryption keys (feature `azure`).
//!
//! [`AzureKeyVaultKek`] wraps and unwraps data keys with a key that never
//! leaves the vault, through the official `azure_security_keyvault_keys`
//! client:
//!
//! * RSA keys (`RSA`, `RSA-HSM`) with `RSA-OAEP-256` (the default) or
//!   `RSA-OAEP`; Managed HSM `oct-HSM` keys with `A256KW`. `RSA1_5` is
//!   refused.
//! * Wrap records the **versioned** `kid` the service returns
//!   (`https://NAME.vault.azure.net/keys/KEY/VERSION`, FORMAT.md "Key
//!   identifiers"); unwrap calls exactly the version a header names, through
//!   [`AzureKeyVaultResolver`].
//! * A preflight ([`AzureKeyVaultKek::verify`], also run on first use)
//!   checks the key like a customer-managed key must be checked.
//! * Retries follow [`RetryConfig`]; authentication comes from a
//!   [`CredentialChain`] unless you pass another credential.
//! * Every call is a `tracing` span (`cmk_envelope::azure_kek`) with the key
//!   URL, the operation, the number of attempts and the outcome. Spans, logs
//!   and errors never carry key bytes or tokens.
//!
//! Cost: one HTTPS round trip per wrap or unwrap, after a one-time `get`
//! (preflight) and the one-time authentication challenge of the client.
//!
//! What stays in memory: the data key is zeroized by this crate, but the
//! request and response bodies the SDK builds (base64 of the data key) are
//! ordinary buffers that are freed, not zeroized.

mod credential;
mod http;
mod preflight;
mod resolver;
mod retry;
mod url;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::{ClientOptions, HttpClient, RequestContent, RetryOptions, Transport};
use azure_core::time::OffsetDateTime;
use azure_security_keyvault_keys::models::{
    Key, KeyClientGetKeyOptions, KeyOperationParameters, KeyOperationResult,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use base64::Engine as _;
use tracing::Instrument as _;
use zeroize::Zeroizing;

pub use self::credential::{CredentialChain, CredentialChainOptions, CredentialKind};
pub use self::http::HttpConfig;
pub use self::preflight::{PreflightProblem, VerifiedKey};
pub use self::resolver::AzureKeyVaultResolver;
pub use self::url::{KeyUrl, VaultKind};
#[doc(no_inline)]
pub use crate::RetryConfig;

use self::retry::{AttemptError, Retrier, Stats};
use super::{KeyEncryptionKey, WrapAlgorithm, WrappedKey};
use crate::error::{Error, KekError, KekErrorKind};
use crate::http::StatusKind;
use crate::key::KeyMaterial;
use crate::retry::{fmt_duration, parse_retry_after};

/// The backend name in [`KekError`]s.
pub(crate) const BACKEND: &str = "azure-key-vault";

/// The three REST operations, named as Key Vault names the permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Wrap,
    Unwrap,
}

impl Op {
    fn permission(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Wrap => "wrapKey",
            Op::Unwrap => "unwrapKey",
        }
    }
}

/// State shared by a KEK and the per-version KEKs derived from it: one SDK
/// client (so one token cache and one authentication challenge), one
/// retrier.
struct Shared {
    client: KeyClient,
    retrier: Retrier,
    alg: WrapAlgorithm,
}

/// A key-encryption key held in Azure Key Vault or a Managed HSM.
///
/// Build one with [`AzureKeyVaultKek::builder`]. It can be shared across
/// tasks (`Arc<dyn KeyEncryptionKey>`).
///
/// * Built from a **versioned** URL, it wraps and unwraps with that version,
///   and its [`key_id`](KeyEncryptionKey::key_id) is that URL.
/// * Built from an **unversioned** URL, it wraps with the version that its
///   latest successful preflight found current (the first use, or the last
///   [`verify`](AzureKeyVaultKek::verify) or
///   [`current_version`](KeyEncryptionKey::current_version); call either
///   again to pick up a rotation). It refuses to unwrap, because only the
///   header knows which version wrapped a key: read envelopes through
///   [`AzureKeyVaultResolver`], which hands out a KEK bound to the version
///   each header names. An encryption scope bound to such a key (with that
///   resolver) moves its record to the key's new versions by itself
///   ([`EncryptionScope::open_with_resolver`](crate::scope::EncryptionScope::open_with_resolver)).
pub struct AzureKeyVaultKek {
    shared: Arc<Shared>,
    url: KeyUrl,
    key_id: String,
    /// The result of the latest successful preflight.
    verified: tokio::sync::RwLock<Option<VerifiedKey>>,
    /// Serialises preflights so the first concurrent calls make one `get`.
    preflight_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for AzureKeyVaultKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultKek")
            .field("url", &self.key_id)
            .field("alg", &self.shared.alg)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AzureKeyVaultKek`].
pub struct AzureKeyVaultKekBuilder {
    url: KeyUrl,
    alg: Option<WrapAlgorithm>,
    credential: Option<Arc<dyn TokenCredential>>,
    retry: RetryConfig,
    http_client: Option<Arc<dyn HttpClient>>,
    http: Option<HttpConfig>,
}

impl fmt::Debug for AzureKeyVaultKekBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultKekBuilder")
            .field("url", &self.url)
            .field("alg", &self.alg)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

fn kek_error(kind: KekErrorKind, message: impl Into<String>) -> Error {
    KekError::new(BACKEND, kind, message).into()
}

impl AzureKeyVaultKekBuilder {
    /// Sets the algorithm. Default: `RSA-OAEP-256`. A256KW needs a Managed
    /// HSM URL (an `oct-HSM` key); A256KWP is not offered by Key Vault.
    pub fn algorithm(mut self, alg: WrapAlgorithm) -> Self {
        self.alg = Some(alg);
        self
    }

    /// Sets the algorithm by its JOSE name (`RSA-OAEP-256`, `RSA-OAEP`,
    /// `A256KW`).
    ///
    /// Errors: `RSA1_5` is refused with [`KekErrorKind::Unsupported`] (it is
    /// open to padding-oracle attacks), as is any other name.
    pub fn algorithm_name(self, name: &str) -> crate::Result<Self> {
        if name.eq_ignore_ascii_case("RSA1_5") {
            return Err(kek_error(
                KekErrorKind::Unsupported,
                "RSA1_5 (RSAES-PKCS1-v1_5) is refused: it is open to padding-oracle attacks; use RSA-OAEP-256",
            ));
        }
        match WrapAlgorithm::from_jose_name(name) {
            Some(a) => Ok(self.algorithm(a)),
            None => Err(kek_error(
                KekErrorKind::Unsupported,
                "unknown algorithm: use RSA-OAEP-256, RSA-OAEP or (Managed HSM) A256KW",
            )),
        }
    }

    /// Sets the credential. Default: [`CredentialChain::from_env`].
    pub fn credential(mut self, credential: Arc<dyn TokenCredential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Sets the retry policy. Default: [`RetryConfig::default`].
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Uses `http` to build the HTTP client (extra roots, pinned addresses).
    pub fn http(mut self, http: HttpConfig) -> Self {
        self.http = Some(http);
        self
    }

    /// Uses this HTTP client as it is (overrides [`http`](Self::http)).
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Builds the KEK. No network call is made until first use or
    /// [`AzureKeyVaultKek::verify`].
    ///
    /// Errors: an algorithm the service kind cannot do
    /// ([`KekErrorKind::Unsupported`]); an unusable HTTP configuration.
    pub fn build(self) -> crate::Result<AzureKeyVaultKek> {
        let alg = self.alg.unwrap_or(WrapAlgorithm::RsaOaep256);
        match alg {
            WrapAlgorithm::RsaOaep256 | WrapAlgorithm::RsaOaep => {}
            WrapAlgorithm::A256Kw if self.url.kind() == VaultKind::ManagedHsm => {}
            WrapAlgorithm::A256Kw => {
                return Err(kek_error(
                    KekErrorKind::Unsupported,
                    "A256KW needs an oct-HSM key in a Managed HSM (https://NAME.managedhsm.azure.net/keys/...); \
                     Key Vault vaults hold RSA keys: use RSA-OAEP-256",
                ))
            }
            _ => {
                return Err(kek_error(
                    KekErrorKind::Unsupported,
                    format!("{alg} is not offered by Key Vault: use RSA-OAEP-256, RSA-OAEP or (Managed HSM) A256KW"),
                ))
            }
        }
        let transport = match (self.http_client, self.http) {
            (Some(c), _) => Some(Transport::new(c)),
            (None, Some(h)) => Some(Transport::new(h.build()?)),
            (None, None) => None,
        };
        let credential: Arc<dyn TokenCredential> = match self.credential {
            Some(c) => c,
            None => CredentialChain::from_env(),
        };
        let client_options = ClientOptions {
            // Our Retrier is the only retry layer (see src/retry.rs).
            retry: RetryOptions::none(),
            transport,
            ..Default::default()
        };
        let options = KeyClientOptions {
            client_options,
            ..Default::default()
        };
        let client =
            KeyClient::new(&self.url.vault_url(), credential, Some(options)).map_err(|e| {
                kek_error(
                    KekErrorKind::Misconfigured,
                    format!("cannot create the Key Vault client: {e}"),
                )
            })?;
        let shared = Arc::new(Shared {
            client,
            retrier: Retrier::new(self.retry),
            alg,
        });
        Ok(AzureKeyVaultKek::with_shared(shared, self.url))
    }
}

impl AzureKeyVaultKek {
    /// Starts building a KEK for `url`
    /// (`https://NAME.vault.azure.net/keys/KEY[/VERSION]` or
    /// `https://NAME.managedhsm.azure.net/keys/KEY[/VERSION]`).
    ///
    /// Errors: an invalid URL ([`KekErrorKind::Misconfigured`]).
    pub fn builder(url: &str) -> crate::Result<AzureKeyVaultKekBuilder> {
        Ok(AzureKeyVaultKekBuilder {
            url: KeyUrl::parse(url)?,
            alg: None,
            credential: None,
            retry: RetryConfig::default(),
            http_client: None,
            http: None,
        })
    }

    fn with_shared(shared: Arc<Shared>, url: KeyUrl) -> AzureKeyVaultKek {
        AzureKeyVaultKek {
            shared,
            key_id: url.to_string(),
            url,
            verified: tokio::sync::RwLock::new(None),
            preflight_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The same key at `version`, sharing this KEK's client, credential and
    /// retry state. Its own preflight runs on its first use.
    pub fn for_version(&self, version: &str) -> crate::Result<AzureKeyVaultKek> {
        Ok(Self::with_shared(
            Arc::clone(&self.shared),
            self.url.with_version(version)?,
        ))
    }

    /// The key URL as configured.
    pub fn url(&self) -> &KeyUrl {
        &self.url
    }

    /// The retry policy in force.
    pub fn retry_config(&self) -> &RetryConfig {
        self.shared.retrier.config()
    }

    /// Runs the preflight now (one `get`, retried under the
    /// [`RetryConfig`]) and returns what it found. On success, an
    /// unversioned KEK wraps with the version found from now on.
    ///
    /// Errors: each failed requirement is its own [`PreflightProblem`],
    /// the `source()` of the returned [`Error::Kek`]; transport failures as
    /// for any call.
    pub async fn verify(&self) -> crate::Result<VerifiedKey> {
        let span = op_span("verify", &self.key_id, self.shared.alg);
        let mut stats = Stats::default();
        let r = self.preflight(&mut stats).instrument(span.clone()).await;
        record(&span, &stats, &r);
        r
    }

    async fn preflight(&self, stats: &mut Stats) -> crate::Result<VerifiedKey> {
        let _guard = self.preflight_lock.lock().await;
        self.preflight_locked(stats).await
    }

    /// The preflight proper; the caller holds `preflight_lock`.
    async fn preflight_locked(&self, stats: &mut Stats) -> crate::Result<VerifiedKey> {
        let key = self
            .shared
            .retrier
            .run("get", stats, || self.get_attempt())
            .await?;
        let v = preflight::check(&key, self.shared.alg, OffsetDateTime::now_utc())
            .map_err(|p| p.into_error(&self.url))?;
        let kid = KeyUrl::parse(&v.kid)
            .ok()
            .filter(|k| k.version().is_some() && k.same_key(&self.url));
        let Some(kid) = kid else {
            return Err(kek_error(
                KekErrorKind::Other,
                format!(
                    "Key Vault returned a key id that is not a version of {}",
                    self.url.unversioned()
                ),
            ));
        };
        if self.url.version().is_some() && !kid.same_version(&self.url) {
            return Err(kek_error(
                KekErrorKind::Other,
                format!(
                    "Key Vault returned another version than {} was asked for",
                    self.url
                ),
            ));
        }
        *self.verified.write().await = Some(v.clone());
        Ok(v)
    }

    /// The latest preflight result, running the preflight if there is none.
    async fn ensure_verified(&self, stats: &mut Stats) -> crate::Result<VerifiedKey> {
        if let Some(v) = self.verified.read().await.as_ref() {
            return Ok(v.clone());
        }
        let _guard = self.preflight_lock.lock().await;
        // Another task may have finished the preflight while we waited.
        if let Some(v) = self.verified.read().await.as_ref() {
            return Ok(v.clone());
        }
        self.preflight_locked(stats).await
    }

    async fn get_attempt(&self) -> Result<Key, AttemptError> {
        let options = KeyClientGetKeyOptions {
            key_version: self.url.version().map(str::to_owned),
            ..Default::default()
        };
        match self
            .shared
            .client
            .get_key(self.url.name(), Some(options))
            .await
        {
            Ok(rsp) => rsp.into_model().map_err(|e| self.classify(e, Op::Get)),
            Err(e) => Err(self.classify(e, Op::Get)),
        }
    }

    fn request_body(&self, value: &[u8]) -> RequestContent<KeyOperationParameters> {
        let b64 = Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value));
        let body = Zeroizing::new(format!(
            r#"{{"alg":"{}","value":"{}"}}"#,
            self.shared.alg.jose_name(),
            b64.as_str()
        ));
        RequestContent::from(body.as_bytes().to_vec())
    }

    async fn op_attempt(
        &self,
        op: Op,
        version: &str,
        value: &[u8],
    ) -> Result<KeyOperationResult, AttemptError> {
        let body = self.request_body(value);
        let client = &self.shared.client;
        let r = match op {
            Op::Wrap => {
                let options = azure_security_keyvault_keys::models::KeyClientWrapKeyOptions {
                    key_version: Some(version.to_owned()),
                    ..Default::default()
                };
                client.wrap_key(self.url.name(), body, Some(options)).await
            }
            _ => {
                client
                    .unwrap_key(self.url.name(), version, body, None)
                    .await
            }
        };
        match r {
            Ok(rsp) => rsp.into_model().map_err(|e| self.classify(e, op)),
            Err(e) => Err(self.classify(e, op)),
        }
    }

    /// Maps an SDK error to "retry" or "give up with this error".
    fn classify(&self, e: azure_core::Error, op: Op) -> AttemptError {
        let fatal =
            |kind, msg: String| AttemptError::Fatal(KekError::new(BACKEND, kind, msg).into());
        let perm = op.permission();
        match e.kind() {
            ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let code = u16::from(*status);
                let service_code = error_code
                    .as_deref()
                    .and_then(crate::untrusted::service_code)
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default();
                let retry_after = raw_response.as_ref().and_then(|r| {
                    let h = r.headers();
                    parse_retry_after(
                        h.get_optional_str(&RETRY_AFTER),
                        h.get_optional_str(&RETRY_AFTER_MS)
                            .or_else(|| h.get_optional_str(&X_MS_RETRY_AFTER_MS)),
                    )
                });
                let kind = StatusKind::of(code);
                match (code, kind) {
                    (403, _) if op == Op::Get => AttemptError::Fatal(PreflightProblem::GetForbidden.into_error(&self.url)),
                    (404, _) if op == Op::Get => AttemptError::Fatal(PreflightProblem::NotFound.into_error(&self.url)),
                    (400, _) if op == Op::Unwrap => AttemptError::Fatal(self.unwrap_failed()),
                    (_, StatusKind::Unauthenticated) => fatal(
                        kind.into(),
                        format!(
                            "{perm} on {}: Key Vault rejected the caller's token (HTTP {code}{service_code}): \
                             check the identity's tenant and that it is not disabled",
                            self.url
                        ),
                    ),
                    (_, StatusKind::PermissionDenied) => fatal(
                        kind.into(),
                        format!(
                            "{perm} on {} was refused (HTTP {code}{service_code}): grant the keys/{perm} permission \
                             (for example the \"Key Vault Crypto Service Encryption User\" role) and check that \
                             the key's key_ops include {perm}",
                            self.url
                        ),
                    ),
                    (_, StatusKind::NotFound) => fatal(
                        kind.into(),
                        format!("{perm} on {}: the key or key version does not exist (HTTP {code}{service_code})", self.url),
                    ),
                    _ if kind.is_retryable() => AttemptError::Retryable {
                        kind: kind.into(),
                        message: format!(
                            "HTTP {code}{service_code}{}",
                            retry_after.map(|d| format!(" (Retry-After {})", fmt_duration(d))).unwrap_or_default()
                        ),
                        retry_after,
                    },
                    _ => fatal(kind.into(), format!("{perm} on {} failed: HTTP {code}{service_code}", self.url)),
                }
            }
            ErrorKind::Connection | ErrorKind::Io => AttemptError::Retryable {
                kind: KekErrorKind::Transient,
                message: format!("connection failed: {}", chain(&e)),
                retry_after: None,
            },
            ErrorKind::Credential => AttemptError::Fatal(
                KekError::new(
                    BACKEND,
                    KekErrorKind::Unauthenticated,
                    format!(
                        "{perm} on {}: could not get a token: {}",
                        self.url,
                        chain(&e)
                    ),
                )
                .with_source(e)
                .into(),
            ),
            _ => AttemptError::Fatal(
                KekError::new(
                    BACKEND,
                    KekErrorKind::Other,
                    format!("{perm} on {} failed: {}", self.url, chain(&e)),
                )
                .with_source(e)
                .into(),
            ),
        }
    }

    fn unwrap_failed(&self) -> Error {
        Error::UnwrapFailed {
            kek_id: self.key_id.clone(),
        }
    }

    async fn wrap_inner(
        &self,
        material: &KeyMaterial,
        stats: &mut Stats,
    ) -> crate::Result<WrappedKey> {
        let verified = self.ensure_verified(stats).await?;
        let pinned = KeyUrl::parse(&verified.kid)?;
        let version = pinned.version().unwrap_or_default().to_owned();
        let secret = material.expose_secret_bytes();
        self.shared.alg.check_material_len(secret.len())?;
        let r = self
            .shared
            .retrier
            .run("wrapKey", stats, || {
                self.op_attempt(Op::Wrap, &version, secret)
            })
            .await?;
        let w = wrapped_key_from_response(r, &pinned, self.shared.alg)?;
        tracing::Span::current().record("kid", w.kek_id.as_str());
        Ok(w)
    }

    async fn unwrap_inner(&self, wrapped: &[u8], stats: &mut Stats) -> crate::Result<KeyMaterial> {
        let Some(version) = self.url.version() else {
            return Err(kek_error(
                KekErrorKind::KeyUsage,
                format!(
                    "{} names no key version, and unwrap must use the version that wrapped the key: \
                     resolve the header's key id through AzureKeyVaultResolver, or build the KEK from the versioned URL",
                    self.url
                ),
            ));
        };
        let verified = self.ensure_verified(stats).await?;
        // A wrapped key of the wrong size cannot open: no call needed. RSA
        // output is the modulus size; AES key wrap adds 8 bytes to 16..=64.
        let plausible = if self.shared.alg.is_rsa() {
            wrapped.len() == verified.wrapped_len
        } else {
            wrapped.len().is_multiple_of(8) && (24..=72).contains(&wrapped.len())
        };
        if !plausible {
            return Err(self.unwrap_failed());
        }
        let r = self
            .shared
            .retrier
            .run("unwrapKey", stats, || {
                self.op_attempt(Op::Unwrap, version, wrapped)
            })
            .await?;
        let clear = Zeroizing::new(r.result.unwrap_or_default());
        KeyMaterial::from_bytes(&clear).map_err(|_| self.unwrap_failed())
    }
}

/// The wrapped key of a `wrapKey` response (untrusted: it comes from the
/// network), checked: its `kid` names the `pinned` key version, and it
/// holds a wrapped key within a header's limits.
pub(crate) fn wrapped_key_from_response(
    r: KeyOperationResult,
    pinned: &KeyUrl,
    alg: WrapAlgorithm,
) -> crate::Result<WrappedKey> {
    let kid = r.kid.unwrap_or_default();
    if !KeyUrl::parse(&kid)
        .map(|k| k.same_version(pinned))
        .unwrap_or(false)
    {
        return Err(kek_error(
            KekErrorKind::Other,
            format!("wrapKey on {pinned}: Key Vault returned a key id for another key or version"),
        ));
    }
    let wrapped = r.result.unwrap_or_default();
    if wrapped.is_empty()
        || wrapped.len() > crate::format::MAX_WRAPPED_LEN
        || kid.len() > crate::format::MAX_KEK_ID_LEN
    {
        return Err(kek_error(
            KekErrorKind::Other,
            format!("wrapKey on {pinned}: malformed response"),
        ));
    }
    Ok(WrappedKey {
        alg,
        kek_id: kid,
        wrapped,
    })
}

/// The checks of a `get` key response, for the `key_vault_response` fuzz
/// target.
#[cfg(fuzzing)]
pub(crate) use self::preflight::check as fuzz_preflight_check;

/// All messages of an SDK error and its sources, on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = inner.source();
    }
    crate::untrusted::escape(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn op_span(op: &'static str, key: &str, alg: WrapAlgorithm) -> tracing::Span {
    tracing::info_span!(
        "cmk_envelope::azure_kek",
        op,
        key,
        alg = alg.jose_name(),
        kid = tracing::field::Empty,
        attempts = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

fn record<T>(span: &tracing::Span, stats: &Stats, r: &crate::Result<T>) {
    span.record("attempts", stats.attempts);
    match r {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(e) => {
            let outcome = match e {
                Error::Kek(k) => k.kind().to_string(),
                Error::UnwrapFailed { .. } => "unwrap failed".to_string(),
                other => other.to_string(),
            };
            span.record("outcome", outcome.as_str());
            span.in_scope(|| tracing::warn!(error = %e, "Key Vault call failed"));
        }
    }
}

#[async_trait]
impl KeyEncryptionKey for AzureKeyVaultKek {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn algorithm(&self) -> WrapAlgorithm {
        self.shared.alg
    }

    fn key_container(&self) -> Option<String> {
        Some(self.url.vault_url())
    }

    async fn wrap_key_material(&self, material: &KeyMaterial) -> crate::Result<WrappedKey> {
        let span = op_span("wrapKey", &self.key_id, self.shared.alg);
        let mut stats = Stats::default();
        let r = self
            .wrap_inner(material, &mut stats)
            .instrument(span.clone())
            .await;
        record(&span, &stats, &r);
        r
    }

    /// For a KEK built from a URL **without** version: runs the preflight
    /// (one `get` of the key's current version), so that wrapping uses that
    /// version from now on, and returns its versioned `kid`. A versioned
    /// KEK never moves: `Ok(None)`, no call.
    async fn current_version(&self) -> crate::Result<Option<String>> {
        if self.url.version().is_some() {
            return Ok(None);
        }
        Ok(Some(self.verify().await?.kid))
    }

    async fn unwrap_key_material(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
        let span = op_span("unwrapKey", &self.key_id, self.shared.alg);
        let mut stats = Stats::default();
        let r = self
            .unwrap_inner(wrapped, &mut stats)
            .instrument(span.clone())
            .await;
        record(&span, &stats, &r);
        r
    }
}
