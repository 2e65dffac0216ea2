//! Clients of the in-process Key Vault server (keyvault_server.rs): a
//! credential with the server's token, the HTTP configuration that trusts
//! its CA and reaches it on loopback, and KEKs built with them.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use cmk_envelope::kek::azure::{AzureKeyVaultKek, HttpConfig, RetryConfig};
use cmk_envelope::WrapAlgorithm;

use crate::keyvault_server::{KeyVaultServer, HSM_HOST, LOGIN_HOST, VAULT_HOST};

/// A credential that returns a fixed token (what the server accepts, or
/// not).
#[derive(Debug)]
pub struct FixedToken(pub String);

#[async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            Secret::new(self.0.clone()),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

pub fn http(server: &KeyVaultServer) -> HttpConfig {
    HttpConfig::new()
        .add_root_certificate_pem(server.ca_pem.as_bytes())
        .resolve(VAULT_HOST, server.addr)
        .resolve(HSM_HOST, server.addr)
        .resolve(LOGIN_HOST, server.addr)
}

/// Small waits, so retry tests stay fast.
pub fn fast_retry() -> RetryConfig {
    RetryConfig::default()
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .max_retries(10)
        .max_total_time(Duration::from_secs(20))
        .per_request_timeout(Duration::from_secs(5))
        .seed(42)
}

pub fn kek_with(
    server: &KeyVaultServer,
    url: &str,
    alg: WrapAlgorithm,
    retry: RetryConfig,
) -> AzureKeyVaultKek {
    AzureKeyVaultKek::builder(url)
        .unwrap()
        .algorithm(alg)
        .credential(Arc::new(FixedToken(server.token.clone())))
        .http(http(server))
        .retry(retry)
        .build()
        .unwrap()
}

pub fn kek(server: &KeyVaultServer, url: &str, alg: WrapAlgorithm) -> AzureKeyVaultKek {
    kek_with(server, url, alg, fast_retry())
}
