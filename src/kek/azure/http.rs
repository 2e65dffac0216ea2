//! [`HttpConfig`]: the HTTP client Key Vault calls go through.
//!
//! By default the Azure SDK's own client is used. `HttpConfig` builds a
//! `reqwest` client with extra trusted roots (a TLS-inspecting proxy, a test
//! server) and pinned addresses (a private endpoint without DNS, a test
//! server on loopback). Pinning an address keeps the request's **host
//! name**: TLS still verifies the certificate for that name, and the SDK's
//! check that a Key Vault authentication challenge names the vault's own
//! domain stays on.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::HttpClient;

use crate::error::{Error, KekError, KekErrorKind};

use super::BACKEND;

/// How to build the HTTP client for Key Vault (and, through
/// [`CredentialChainOptions`](super::CredentialChainOptions), for Entra ID).
#[derive(Clone, Default)]
pub struct HttpConfig {
    roots_pem: Vec<Vec<u8>>,
    resolve: Vec<(String, SocketAddr)>,
    connect_timeout: Option<Duration>,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("extra_roots", &self.roots_pem.len())
            .field("resolve", &self.resolve)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl HttpConfig {
    /// The default: the platform's trusted roots, normal DNS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also trusts the root certificate(s) in `pem`.
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.roots_pem.push(pem.to_vec());
        self
    }

    /// Sends requests for `host` to `addr` instead of resolving it. TLS
    /// still checks the certificate against `host`.
    pub fn resolve(mut self, host: &str, addr: SocketAddr) -> Self {
        self.resolve.push((host.to_ascii_lowercase(), addr));
        self
    }

    /// Sets the TCP connect timeout (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// Builds the client.
    ///
    /// Errors: [`Error::Kek`] ([`KekErrorKind::Misconfigured`]) for an
    /// unreadable certificate.
    pub fn build(&self) -> crate::Result<Arc<dyn HttpClient>> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true);
        for pem in &self.roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| misconfigured("a trusted root certificate is not valid PEM", e))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        for (host, addr) in &self.resolve {
            b = b.resolve(host, *addr);
        }
        let client = b
            .build()
            .map_err(|e| misconfigured("cannot build the HTTP client", e))?;
        Ok(Arc::new(client))
    }
}

fn misconfigured(what: &str, e: reqwest::Error) -> Error {
    KekError::new(BACKEND, KekErrorKind::Misconfigured, format!("{what}: {e}"))
        .with_source(e)
        .into()
}
