//! [`CredentialChain`]: one `TokenCredential` that tries the usual Azure
//! credentials in a documented order, since `azure_identity` 1.x ships no
//! default chain.
//!
//! # Order
//!
//! 1. **Client secret** ([`CredentialKind::ClientSecret`]): when
//!    `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` are all
//!    set.
//! 2. **Workload identity** ([`CredentialKind::WorkloadIdentity`]): when
//!    `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`
//!    are set (Kubernetes with Entra workload identity).
//! 3. **Managed identity** ([`CredentialKind::ManagedIdentity`]): the
//!    user-assigned identity whose client id is `AZURE_CLIENT_ID` if that is
//!    set, else the system-assigned identity (App Service, Functions, VMs,
//!    …).
//! 4. **Developer tools** ([`CredentialKind::DeveloperTools`]): the Azure
//!    CLI (`az login`), then the Azure Developer CLI (`azd auth login`).
//!
//! `AZURE_AUTHORITY_HOST` selects another cloud's login endpoint, as
//! `azure_identity` documents.
//!
//! The first credential that returns a token is remembered and asked first
//! from then on. When every credential fails, the error lists each one and
//! why it failed (never a token or secret: only the messages the credentials
//! themselves return, which carry none). Each attempt is cut off after
//! [`CredentialChainOptions::source_timeout`], so an unreachable managed
//! identity endpoint cannot stall the chain for the SDK's full IMDS retry
//! budget.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

/// One kind of credential in a [`CredentialChain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// A service principal with a client secret, from `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// Entra workload identity, from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity,
    /// A managed identity: user-assigned when `AZURE_CLIENT_ID` is set,
    /// else system-assigned.
    ManagedIdentity,
    /// The Azure CLI, then the Azure Developer CLI.
    DeveloperTools,
}

impl CredentialKind {
    /// Every kind, in the chain's default order.
    pub const DEFAULT_ORDER: [CredentialKind; 4] = [
        CredentialKind::ClientSecret,
        CredentialKind::WorkloadIdentity,
        CredentialKind::ManagedIdentity,
        CredentialKind::DeveloperTools,
    ];

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::ClientSecret => "client secret (AZURE_CLIENT_SECRET)",
            CredentialKind::WorkloadIdentity => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
            CredentialKind::ManagedIdentity => "managed identity",
            CredentialKind::DeveloperTools => "developer tools (az / azd)",
        }
    }
}

/// Options of a [`CredentialChain`].
#[derive(Clone)]
#[non_exhaustive]
pub struct CredentialChainOptions {
    /// Which credentials to try, in order. Default:
    /// [`CredentialKind::DEFAULT_ORDER`].
    pub kinds: Vec<CredentialKind>,
    /// The longest one credential may take to return a token or fail.
    /// Default: 10 s.
    pub source_timeout: Duration,
    /// HTTP options for the credentials that call Entra ID or a managed
    /// identity endpoint (transport, cloud). Default: the SDK's.
    pub client_options: ClientOptions,
}

impl Default for CredentialChainOptions {
    fn default() -> Self {
        CredentialChainOptions {
            kinds: CredentialKind::DEFAULT_ORDER.to_vec(),
            source_timeout: Duration::from_secs(10),
            client_options: ClientOptions::default(),
        }
    }
}

impl fmt::Debug for CredentialChainOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialChainOptions")
            .field("kinds", &self.kinds)
            .field("source_timeout", &self.source_timeout)
            .finish_non_exhaustive()
    }
}

struct Source {
    kind: CredentialKind,
    /// The credential, or why it is not configured.
    credential: Result<Arc<dyn TokenCredential>, String>,
}

/// A [`TokenCredential`] that tries several credentials in order.
///
/// The default order ([`CredentialKind::DEFAULT_ORDER`]):
///
/// 1. client secret, when `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
///    `AZURE_CLIENT_SECRET` are set;
/// 2. workload identity, when `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
///    `AZURE_FEDERATED_TOKEN_FILE` are set;
/// 3. managed identity: user-assigned with client id `AZURE_CLIENT_ID` if
///    set, else system-assigned;
/// 4. developer tools: `az login`, then `azd auth login`.
///
/// `AZURE_AUTHORITY_HOST` selects another cloud's login endpoint. The first
/// credential that returns a token is asked first from then on. When all
/// fail, the error names each one and why it failed (never a token or a
/// secret). Each attempt is cut off after
/// [`CredentialChainOptions::source_timeout`]. Cheap to share: it comes in
/// an `Arc`.
pub struct CredentialChain {
    sources: Vec<Source>,
    /// Index of the source that last produced a token; `usize::MAX` if none.
    cached: AtomicUsize,
    source_timeout: Duration,
}

impl fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<_> = self.sources.iter().map(|s| s.kind).collect();
        f.debug_struct("CredentialChain")
            .field("kinds", &kinds)
            .finish_non_exhaustive()
    }
}

impl CredentialChain {
    /// The default chain, configured from the process environment.
    pub fn from_env() -> Arc<CredentialChain> {
        Self::from_env_with(CredentialChainOptions::default(), |k| std::env::var(k).ok())
    }

    /// A chain configured from `lookup` (an environment) and `options`.
    /// Credentials whose variables are missing stay in the chain as "not
    /// configured", so the final error can say what was missing.
    pub fn from_env_with(
        options: CredentialChainOptions,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Arc<CredentialChain> {
        let var = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let tenant = var("AZURE_TENANT_ID");
        let client = var("AZURE_CLIENT_ID");
        let sources = options
            .kinds
            .iter()
            .map(|&kind| {
                let credential = match kind {
                    CredentialKind::ClientSecret => {
                        match (&tenant, &client, var("AZURE_CLIENT_SECRET")) {
                            (Some(t), Some(c), Some(secret)) => ClientSecretCredential::new(
                                t,
                                c.clone(),
                                Secret::new(secret),
                                Some(ClientSecretCredentialOptions {
                                    client_options: options.client_options.clone(),
                                }),
                            )
                            .map(|c| c as Arc<dyn TokenCredential>)
                            .map_err(|e| e.to_string()),
                            _ => Err(missing(
                                &[("AZURE_TENANT_ID", &tenant), ("AZURE_CLIENT_ID", &client)],
                                "AZURE_CLIENT_SECRET",
                                &var,
                            )),
                        }
                    }
                    CredentialKind::WorkloadIdentity => {
                        match (&tenant, &client, var("AZURE_FEDERATED_TOKEN_FILE")) {
                            (Some(t), Some(c), Some(file)) => WorkloadIdentityCredential::new(
                                Some(WorkloadIdentityCredentialOptions {
                                    credential_options: ClientAssertionCredentialOptions {
                                        client_options: options.client_options.clone(),
                                    },
                                    client_id: Some(c.clone()),
                                    tenant_id: Some(t.clone()),
                                    token_file_path: Some(PathBuf::from(file)),
                                }),
                            )
                            .map(|c| c as Arc<dyn TokenCredential>)
                            .map_err(|e| e.to_string()),
                            _ => Err(missing(
                                &[("AZURE_TENANT_ID", &tenant), ("AZURE_CLIENT_ID", &client)],
                                "AZURE_FEDERATED_TOKEN_FILE",
                                &var,
                            )),
                        }
                    }
                    CredentialKind::ManagedIdentity => {
                        ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                            user_assigned_id: client.clone().map(UserAssignedId::ClientId),
                            client_options: options.client_options.clone(),
                        }))
                        .map(|c| c as Arc<dyn TokenCredential>)
                        .map_err(|e| e.to_string())
                    }
                    CredentialKind::DeveloperTools => DeveloperToolsCredential::new(None)
                        .map(|c| c as Arc<dyn TokenCredential>)
                        .map_err(|e| e.to_string()),
                };
                Source { kind, credential }
            })
            .collect();
        Arc::new(CredentialChain {
            sources,
            cached: AtomicUsize::new(usize::MAX),
            source_timeout: options.source_timeout,
        })
    }

    /// A chain over credentials you built yourself, tried in the given
    /// order (each labelled with the kind it stands for, for messages).
    pub fn from_credentials(
        credentials: Vec<(CredentialKind, Arc<dyn TokenCredential>)>,
        source_timeout: Duration,
    ) -> Arc<CredentialChain> {
        let sources = credentials
            .into_iter()
            .map(|(kind, c)| Source {
                kind,
                credential: Ok(c),
            })
            .collect();
        Arc::new(CredentialChain {
            sources,
            cached: AtomicUsize::new(usize::MAX),
            source_timeout,
        })
    }

    /// The kinds in this chain, in order, each with `true` when it is
    /// configured (its environment variables are present).
    pub fn kinds(&self) -> Vec<(CredentialKind, bool)> {
        self.sources
            .iter()
            .map(|s| (s.kind, s.credential.is_ok()))
            .collect()
    }

    async fn try_source(
        &self,
        source: &Source,
        scopes: &[&str],
        options: &Option<TokenRequestOptions<'_>>,
    ) -> Result<AccessToken, String> {
        let credential = source
            .credential
            .as_ref()
            .map_err(|why| format!("not configured: {why}"))?;
        match tokio::time::timeout(
            self.source_timeout,
            credential.get_token(scopes, options.clone()),
        )
        .await
        {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(e)) => Err(one_line(&e.to_string())),
            Err(_) => Err(format!("no token within {:?}", self.source_timeout)),
        }
    }
}

fn missing(
    present: &[(&str, &Option<String>)],
    own: &str,
    var: &impl Fn(&str) -> Option<String>,
) -> String {
    let mut unset: Vec<&str> = present
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    if var(own).is_none() {
        unset.push(own);
    }
    format!("{} unset", unset.join(", "))
}

/// Messages from credentials can span lines (CLI output); keep one line.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.chars().take(400).collect()
}

#[async_trait]
impl TokenCredential for CredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let cached = self.cached.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        if let Some(source) = self.sources.get(cached) {
            match self.try_source(source, scopes, &options).await {
                Ok(t) => return Ok(t),
                Err(why) => failures.push(format!("{}: {why}", source.kind.name())),
            }
        }
        for (i, source) in self.sources.iter().enumerate() {
            if i == cached {
                continue;
            }
            match self.try_source(source, scopes, &options).await {
                Ok(t) => {
                    tracing::debug!(
                        credential = source.kind.name(),
                        "credential chain: token acquired"
                    );
                    self.cached.store(i, Ordering::Relaxed);
                    return Ok(t);
                }
                Err(why) => failures.push(format!("{}: {why}", source.kind.name())),
            }
        }
        Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!(
                "no credential in the chain produced a token (tried in order: {})",
                if failures.is_empty() {
                    "none configured".to_string()
                } else {
                    failures.join("; ")
                }
            ),
        ))
    }
}
