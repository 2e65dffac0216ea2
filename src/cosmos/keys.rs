//! [`ClientEncryptionKeys`]: the client encryption key resources of one
//! database, read and written over the Cosmos DB REST API (the Rust SDK
//! has no API for them).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_data_cosmos::CosmosCredential;
use reqwest::{Method, StatusCode, Url};

use super::error::{answered, not_ours};
use crate::cosmos_ae::{ClientEncryptionKey, VaultRule};
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::http::StatusKind;
use crate::kek::{KeyEncryptionKey, KeyResolver};
use crate::provider::{CryptoProvider, HmacSha256Key};
use crate::retry::{parse_retry_after, Backoff, RetryConfig};
use crate::scope::Etag;

/// The scope of the Entra ID tokens Cosmos DB's data plane accepts: the one
/// the official SDKs ask for (`azure_data_cosmos_driver`'s
/// `COSMOS_AAD_SCOPE`, `@azure/cosmos`'s `AAD_DEFAULT_SCOPE`).
pub const COSMOS_TOKEN_SCOPE: &str = "https://cosmos.azure.com/.default";

/// The REST API version the official SDKs send (`x-ms-version`).
const API_VERSION: &str = "2020-07-15";

/// How requests are authorized.
enum Auth {
    /// `type=aad&ver=1.0&sig=<token>`.
    EntraId(Arc<dyn TokenCredential>),
    /// `type=master&ver=1.0&sig=<HMAC-SHA256 of the request>`; the key
    /// itself is not kept, only its HMAC key schedule (wiped on drop).
    AccountKey(Box<dyn HmacSha256Key>),
}

/// The client encryption keys (CEKs) of one Cosmos DB database: the
/// resources `dbs/{database}/clientencryptionkeys/{id}` where the official
/// SDKs (.NET, Java, JavaScript) keep the wrapped root keys of Always
/// Encrypted, with their ETags.
///
/// * [`read`](Self::read), [`create`](Self::create) (once per id),
///   [`replace`](Self::replace) conditional on the ETag, and
///   [`rewrap`](Self::rewrap): read, re-wrap under a new KEK, replace
///   under the ETag read. A lost race is [`Error::CosmosConflict`].
/// * Authentication: an Entra ID [`TokenCredential`] (production: the
///   crate's [`CredentialChain`](crate::kek::azure::CredentialChain)),
///   with a token for [`COSMOS_TOKEN_SCOPE`], as the SDKs ask for; the
///   identity needs a role that may read (and, to create or rewrap,
///   write) client encryption keys. An account key is accepted only for
///   an endpoint on a loopback address (the Cosmos DB emulator, a test
///   server): this type never sends one anywhere else.
/// * Errors keep the operation, the HTTP status, the sub-status and the
///   service's error code: never a token, key, URL query or response text.
///   `Debug` shows the endpoint's host, the database and the kind of
///   credential.
///
/// Cost: every method is one HTTPS request (plus a token request when the
/// credential's cached token has expired); [`rewrap`](Self::rewrap) is two
/// requests and one unwrap and one wrap by KEKs. Requests that time out,
/// cannot connect, or get a status the crate's status table retries (408,
/// 429, 5xx but 501 and 505) are retried under a
/// [`RetryConfig`] ([`with_retry`](Self::with_retry); the default
/// otherwise), honouring the service's `x-ms-retry-after-ms`. A retried
/// write whose first attempt took effect unseen reports
/// [`Error::CosmosConflict`] (409 or 412): re-read to see the state.
pub struct ClientEncryptionKeys {
    http: reqwest::Client,
    endpoint: Url,
    database: String,
    auth: Auth,
    backoff: Backoff,
}

impl fmt::Debug for ClientEncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientEncryptionKeys")
            .field("endpoint", &self.endpoint.host_str().unwrap_or(""))
            .field("database", &self.database)
            .field(
                "credential",
                &match self.auth {
                    Auth::EntraId(_) => "Entra ID",
                    Auth::AccountKey(_) => "account key",
                },
            )
            .finish()
    }
}

/// Whether `url`'s host is a loopback address (or `localhost`).
fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as the
/// `authorization` header wants its value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ClientEncryptionKeys {
    /// The client encryption keys of database `database` of the account
    /// at `endpoint` (`https://ACCOUNT.documents.azure.com/`), with
    /// `credential`: a token credential, or, for a loopback endpoint only,
    /// an account key. No I/O.
    ///
    /// Errors ([`Error::ApiMisuse`]): the endpoint is not an `https` URL
    /// with a host and nothing after it, the database id is not a resource
    /// id, or an account key is given for a non-loopback endpoint.
    pub fn new(
        endpoint: &str,
        database: &str,
        credential: CosmosCredential,
    ) -> crate::Result<ClientEncryptionKeys> {
        let endpoint = Url::parse(endpoint)
            .map_err(|_| Error::ApiMisuse("the Cosmos DB endpoint does not parse as a URL"))?;
        if endpoint.scheme() != "https"
            || endpoint.host().is_none()
            || !endpoint.username().is_empty()
            || endpoint.password().is_some()
            || endpoint.query().is_some()
            || endpoint.fragment().is_some()
            || endpoint.path() != "/"
        {
            return Err(Error::ApiMisuse(
                "the Cosmos DB endpoint must be the account's https URL (https://ACCOUNT.documents.azure.com/)",
            ));
        }
        crate::cosmos_ae::check_resource_id(database, "a database id")
            .map_err(|_| Error::ApiMisuse("the database id is not a Cosmos DB resource id"))?;
        let auth = match credential {
            CosmosCredential::TokenCredential(c) => Auth::EntraId(c),
            CosmosCredential::AccountKey(key) => {
                if !is_loopback(&endpoint) {
                    return Err(Error::ApiMisuse(
                        "an account key is accepted only for an endpoint on a loopback address (the emulator or a test server); authenticate with an Entra ID credential",
                    ));
                }
                let key = zeroize::Zeroizing::new(
                    base64::Engine::decode(
                        &base64::engine::general_purpose::STANDARD,
                        key.secret(),
                    )
                    .map_err(|_| Error::ApiMisuse("the account key is not base64"))?,
                );
                Auth::AccountKey(
                    CryptoProvider::default_provider()
                        .hmac
                        .hmac_sha256_key(&key),
                )
            }
            _ => return Err(Error::ApiMisuse("unsupported Cosmos DB credential")),
        };
        let http = reqwest::Client::builder()
            .https_only(true)
            .build()
            .map_err(|_| Error::Internal("the HTTPS client could not be built"))?;
        Ok(ClientEncryptionKeys {
            http,
            endpoint,
            database: database.to_owned(),
            auth,
            backoff: Backoff::new(RetryConfig::default()),
        })
    }

    /// The same client, retrying under `retry` instead of
    /// [`RetryConfig::default`].
    pub fn with_retry(mut self, retry: RetryConfig) -> ClientEncryptionKeys {
        self.backoff = Backoff::new(retry);
        self
    }

    /// The database's id.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The key `id` and its ETag, or `None` if the database has no such
    /// key. The resource is parsed strictly
    /// ([`ClientEncryptionKey::parse`]). Cost: one request.
    pub async fn read(&self, id: &str) -> crate::Result<Option<(ClientEncryptionKey, Etag)>> {
        Ok(self.fetch(id).await?.map(|f| (f.key, f.etag)))
    }

    /// [`read`](Self::read), with the resource's `_self` link.
    pub(super) async fn fetch(&self, id: &str) -> crate::Result<Option<Fetched>> {
        const OP: &str = "read client encryption key";
        crate::cosmos_ae::check_resource_id(id, "a client encryption key id")?;
        let (body, etag) = match self.send(OP, Method::GET, Some(id), None, None).await? {
            Answer::NotFound => return Ok(None),
            Answer::Ok { body, etag } => (body, etag),
        };
        let text = std::str::from_utf8(&body)
            .map_err(|_| not_ours("the client encryption key is not UTF-8 JSON"))?;
        let key = ClientEncryptionKey::parse(text)?;
        if key.id() != id {
            return Err(not_ours(
                "the service returned a client encryption key of another id",
            ));
        }
        #[derive(serde::Deserialize)]
        struct SelfLink {
            #[serde(rename = "_self")]
            link: Option<String>,
        }
        let self_link = serde_json::from_str::<SelfLink>(text)
            .ok()
            .and_then(|s| s.link);
        Ok(Some(Fetched {
            key,
            etag,
            self_link,
        }))
    }

    /// Stores `key` as a new resource (`POST`); [`Error::CosmosConflict`]
    /// when the id exists. Returns the new ETag. Cost: one request.
    pub async fn create(&self, key: &ClientEncryptionKey) -> crate::Result<Etag> {
        const OP: &str = "create client encryption key";
        let body = key.to_json().into_bytes();
        match self.send(OP, Method::POST, None, Some(body), None).await? {
            Answer::Ok { etag, .. } => Ok(etag),
            Answer::NotFound => Err(answered(OP, 404, None, b"")),
        }
    }

    /// Replaces the resource `key.id()` with `key` (`PUT`) if its ETag is
    /// still `if_match`; [`Error::CosmosConflict`] when it changed or was
    /// deleted. Returns the new ETag. Cost: one request.
    pub async fn replace(&self, key: &ClientEncryptionKey, if_match: &Etag) -> crate::Result<Etag> {
        const OP: &str = "replace client encryption key";
        let body = key.to_json().into_bytes();
        match self
            .send(OP, Method::PUT, Some(key.id()), Some(body), Some(if_match))
            .await?
        {
            Answer::Ok { etag, .. } => Ok(etag),
            Answer::NotFound => Err(conflict(key.id())),
        }
    }

    /// Rotates the KEK of key `id`: reads it, unwraps its root key with the
    /// current KEK (found through `resolver`), wraps it with `new_kek`
    /// under `rule` ([`ClientEncryptionKey::rewrap`]), and replaces the
    /// resource under the ETag read. The root key does not change, so no
    /// item is touched: one write rotates every container whose policy
    /// names the key. Returns the stored key and its new ETag.
    ///
    /// Errors: a missing key is [`Error::Storage`] of kind `NotFound`; a
    /// concurrent change is [`Error::CosmosConflict`] (nothing was
    /// written: call again); the rule and KEK errors of
    /// [`ClientEncryptionKey::rewrap`].
    ///
    /// Cost: two requests, one KEK unwrap, one KEK wrap.
    pub async fn rewrap(
        &self,
        id: &str,
        resolver: &dyn KeyResolver,
        new_kek: &dyn KeyEncryptionKey,
        rule: VaultRule,
    ) -> crate::Result<(ClientEncryptionKey, Etag)> {
        let (key, etag) = self.read(id).await?.ok_or_else(|| {
            answered(
                "read client encryption key",
                404,
                None,
                br#"{"code":"NotFound"}"#,
            )
        })?;
        let rewrapped = key.rewrap(resolver, new_kek, rule).await?;
        let etag = self.replace(&rewrapped, &etag).await?;
        Ok((rewrapped, etag))
    }

    /// One request, retried (see the type's docs). `id` is the key's id
    /// (`None` for the collection); 404 and 2xx are answers, anything
    /// else an error (412 and 409 a conflict).
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        id: Option<&str>,
        body: Option<Vec<u8>>,
        if_match: Option<&Etag>,
    ) -> crate::Result<Answer> {
        let start = Instant::now();
        let mut n = 0;
        loop {
            let limit = self.backoff.attempt_limit(start.elapsed());
            let attempt = self.attempt(op, method.clone(), id, body.clone(), if_match);
            let (e, retry_after) = match tokio::time::timeout(limit, attempt).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(Failure::Fatal(e))) => return Err(e),
                Ok(Err(Failure::Retryable(e, retry_after))) => (e, retry_after),
                Err(_) => (
                    transport_error(op, StorageErrorKind::Transient, "timed out"),
                    None,
                ),
            };
            match self.backoff.next(n, start.elapsed(), retry_after) {
                Ok(wait) => tokio::time::sleep(wait).await,
                Err(_) => return Err(e),
            }
            n += 1;
        }
    }

    /// One attempt of [`send`](Self::send).
    async fn attempt(
        &self,
        op: &'static str,
        method: Method,
        id: Option<&str>,
        body: Option<Vec<u8>>,
        if_match: Option<&Etag>,
    ) -> Result<Answer, Failure> {
        // The resource link is signed unencoded; the URL is encoded.
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| Failure::Fatal(Error::Internal("the endpoint URL cannot take a path")))?
            .clear()
            .extend(["dbs", &self.database, "clientencryptionkeys"])
            .extend(id);
        let signed_link = match id {
            Some(id) => format!("dbs/{}/clientencryptionkeys/{id}", self.database),
            None => format!("dbs/{}", self.database),
        };
        let date = azure_core::time::to_rfc7231(&azure_core::time::OffsetDateTime::now_utc());
        let auth = self
            .authorization(&method, &signed_link, &date)
            .await
            .map_err(Failure::Fatal)?;
        let mut req = self
            .http
            .request(method, url)
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("accept", "application/json")
            .header("authorization", auth.as_str());
        if let Some(tag) = if_match {
            req = req.header("if-match", &tag.0);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.map_err(|e| no_answer(op, &e))?;
        let status = res.status();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let sub = header("x-ms-substatus").and_then(|v| v.parse().ok());
        let etag = header("etag").map(Etag);
        let retry_after = parse_retry_after(
            header("retry-after").as_deref(),
            header("x-ms-retry-after-ms").as_deref(),
        );
        let body = res.bytes().await.map_err(|e| no_answer(op, &e))?;
        if status.is_success() {
            let etag =
                etag.ok_or_else(|| Failure::Fatal(not_ours("the service returned no ETag")))?;
            return Ok(Answer::Ok {
                body: body.to_vec(),
                etag,
            });
        }
        match status {
            StatusCode::NOT_FOUND if sub.is_none_or(|s| s == 0) => Ok(Answer::NotFound),
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
                Err(Failure::Fatal(conflict(id.unwrap_or_default())))
            }
            _ => {
                let e = answered(op, status.as_u16(), sub, &body);
                if StatusKind::of(status.as_u16()).is_retryable() {
                    Err(Failure::Retryable(e, retry_after))
                } else {
                    Err(Failure::Fatal(e))
                }
            }
        }
    }

    /// The `authorization` header value of a request.
    async fn authorization(
        &self,
        method: &Method,
        link: &str,
        date: &str,
    ) -> crate::Result<zeroize::Zeroizing<String>> {
        let value = match &self.auth {
            Auth::EntraId(credential) => {
                let token = credential
                    .get_token(&[COSMOS_TOKEN_SCOPE], None)
                    .await
                    .map_err(|_| {
                        Error::Storage(
                            StorageError::new(
                                StorageErrorKind::Unauthenticated,
                                None,
                                "no Entra ID token for Cosmos DB could be obtained",
                            )
                            .in_service("Cosmos DB"),
                        )
                    })?;
                zeroize::Zeroizing::new(format!("type=aad&ver=1.0&sig={}", token.token.secret()))
            }
            Auth::AccountKey(key) => {
                let text = format!(
                    "{}\nclientencryptionkeys\n{link}\n{}\n\n",
                    method.as_str().to_ascii_lowercase(),
                    date.to_ascii_lowercase()
                );
                let sig = key.sign(&[text.as_bytes()]);
                let sig =
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sig[..]);
                zeroize::Zeroizing::new(format!("type=master&ver=1.0&sig={sig}"))
            }
        };
        Ok(zeroize::Zeroizing::new(percent_encode(&value)))
    }
}

/// A client encryption key as read.
pub(super) struct Fetched {
    pub(super) key: ClientEncryptionKey,
    pub(super) etag: Etag,
    /// Its `_self` link (`dbs/{database rid}/clientencryptionkeys/{rid}/`).
    pub(super) self_link: Option<String>,
}

/// A successful or "not found" answer.
enum Answer {
    Ok { body: Vec<u8>, etag: Etag },
    NotFound,
}

/// Why an attempt failed.
enum Failure {
    Fatal(Error),
    /// Worth another attempt, after the service's `Retry-After` if any.
    Retryable(Error, Option<Duration>),
}

fn conflict(id: &str) -> Error {
    Error::CosmosConflict {
        resource: "client encryption key",
        id: Some(crate::untrusted::escape(id)),
    }
}

/// A request that got no answer: what kind of failure, never its text
/// (which may hold the URL). Connection failures, timeouts and cut-off
/// responses are retried.
fn no_answer(op: &'static str, e: &reqwest::Error) -> Failure {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() || e.is_request() {
        "the connection failed"
    } else {
        return Failure::Fatal(transport_error(
            op,
            StorageErrorKind::Other,
            "the request failed",
        ));
    };
    Failure::Retryable(transport_error(op, StorageErrorKind::Transient, what), None)
}

fn transport_error(op: &'static str, kind: StorageErrorKind, what: &str) -> Error {
    Error::Storage(StorageError::new(kind, None, format!("{op}: {what}")).in_service("Cosmos DB"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::Secret;

    #[test]
    fn account_keys_only_for_loopback_endpoints() {
        let key = || CosmosCredential::from(Secret::new("a2V5".to_owned()));
        for ok in [
            "https://127.0.0.1:8081/",
            "https://localhost:8081/",
            "https://[::1]:8081/",
        ] {
            assert!(ClientEncryptionKeys::new(ok, "db", key()).is_ok(), "{ok}");
        }
        for remote in [
            "https://acct.documents.azure.com/",
            "https://localhost.evil.com/",
            "https://localhost./",
            "https://127.0.0.1.nip.io/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
            "https://evil.com#@127.0.0.1/",
            "https://evil.com?@127.0.0.1/",
        ] {
            match ClientEncryptionKeys::new(remote, "db", key()) {
                Err(Error::ApiMisuse(_)) => {}
                other => panic!("{remote}: {other:?}"),
            }
        }
        let e = ClientEncryptionKeys::new("https://acct.documents.azure.com/", "db", key())
            .unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        // Other spellings of 127.0.0.1 that the URL parser normalizes.
        for ok in [
            "https://127.1/",
            "https://0x7f.0.0.1/",
            "https://LOCALHOST/",
        ] {
            assert!(ClientEncryptionKeys::new(ok, "db", key()).is_ok(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:8081/",
            "https://127.0.0.1:8081/dbs",
            "https://127.0.0.1:8081/?sig=x",
            "https://u:p@127.0.0.1/",
            "https://127.0.0.1@evil.com/",
            "https://evil.com\\@127.0.0.1/",
            "not a url",
        ] {
            assert!(
                matches!(
                    ClientEncryptionKeys::new(bad, "db", key()),
                    Err(Error::ApiMisuse(_))
                ),
                "{bad}"
            );
        }
        assert!(ClientEncryptionKeys::new("https://127.0.0.1/", "a/b", key()).is_err());
        let c = ClientEncryptionKeys::new("https://127.0.0.1:1/", "db", key()).unwrap();
        assert_eq!(
            format!("{c:?}"),
            r#"ClientEncryptionKeys { endpoint: "127.0.0.1", database: "db", credential: "account key" }"#
        );
    }
}
