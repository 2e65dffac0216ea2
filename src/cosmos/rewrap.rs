//! [`rewrap_container`]: every item's `_cmk` header re-wrapped under the
//! scope's current key version, page by page, resumable.

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};

use azure_data_cosmos::feed::ContinuationToken;
use azure_data_cosmos::options::{MaxItemCountHint, QueryOptions};
use azure_data_cosmos::FeedScope;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::container::EncryptedContainer;
use super::error::{is_conflict, is_not_found, storage};
use super::format::Format;
use super::sdk::{if_match, partition_key};
use crate::document::{DocumentCipher, JsonPointer, CMK_PROPERTY};
use crate::error::Error;
use crate::scope::Etag;

/// How [`rewrap_container`] runs.
///
/// | field | default |
/// |---|---|
/// | `concurrency` | 8 items in flight |
/// | `page_size` | 100 items per query page |
/// | `max_attempts` | 5 writes per item (a lost race re-reads the item and tries again) |
/// | `resume_from` | `None`: from the first item |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewrapOptions {
    /// Items re-wrapped at the same time, within a page.
    pub concurrency: NonZeroUsize,
    /// Items per query page (the unit of progress and of resumption).
    pub page_size: NonZeroU32,
    /// Writes per item before it is reported failed with
    /// [`Error::CosmosConflict`] (each lost race re-reads the item).
    pub max_attempts: NonZeroU32,
    /// A [`RewrapProgress::resume_token`] of an interrupted run: start
    /// after the last page it completed.
    pub resume_from: Option<String>,
}

impl Default for RewrapOptions {
    fn default() -> Self {
        RewrapOptions {
            concurrency: NonZeroUsize::new(8).expect("non-zero"),
            page_size: NonZeroU32::new(100).expect("non-zero"),
            max_attempts: NonZeroU32::new(5).expect("non-zero"),
            resume_from: None,
        }
    }
}

impl RewrapOptions {
    /// Sets `concurrency`.
    pub fn concurrency(mut self, n: NonZeroUsize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets `page_size`.
    pub fn page_size(mut self, n: NonZeroU32) -> Self {
        self.page_size = n;
        self
    }

    /// Sets `max_attempts`.
    pub fn max_attempts(mut self, n: NonZeroU32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets `resume_from`.
    pub fn resume_from(mut self, token: impl Into<String>) -> Self {
        self.resume_from = Some(token.into());
        self
    }
}

/// What happened to one item.
#[derive(Debug)]
#[non_exhaustive]
pub enum ItemOutcome {
    /// Its header was re-wrapped and written (after `conflicts` lost races
    /// with other writers, each followed by a re-read).
    Rewrapped {
        /// Lost races before the write went through.
        conflicts: u32,
    },
    /// Its header already named the current version; nothing was written.
    AlreadyCurrent,
    /// Another writer replaced it first with a current header.
    UpdatedConcurrently,
    /// It was deleted before it could be written.
    Deleted,
    /// It could not be re-wrapped: its header does not open (not this
    /// scope's, modified), or every attempt lost a race
    /// ([`Error::CosmosConflict`]). It was left as it is.
    Failed(Error),
}

/// One item's result: its id and partition key (both in clear in the
/// document format) and what happened.
#[derive(Debug)]
pub struct ItemResult {
    /// The item's id.
    pub id: String,
    /// The item's partition key value.
    pub partition_key: Value,
    /// What happened.
    pub outcome: ItemOutcome,
}

/// Counts of a run so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewrapTotals {
    /// Items the query returned.
    pub scanned: u64,
    /// [`ItemOutcome::Rewrapped`].
    pub rewrapped: u64,
    /// [`ItemOutcome::AlreadyCurrent`].
    pub already_current: u64,
    /// [`ItemOutcome::UpdatedConcurrently`].
    pub updated_concurrently: u64,
    /// [`ItemOutcome::Deleted`].
    pub deleted: u64,
    /// [`ItemOutcome::Failed`].
    pub failed: u64,
    /// Races lost and retried, over every item.
    pub conflicts: u64,
}

impl RewrapTotals {
    fn add(&mut self, r: &ItemResult) {
        self.scanned += 1;
        match &r.outcome {
            ItemOutcome::Rewrapped { conflicts } => {
                self.rewrapped += 1;
                self.conflicts += u64::from(*conflicts);
            }
            ItemOutcome::AlreadyCurrent => self.already_current += 1,
            ItemOutcome::UpdatedConcurrently => self.updated_concurrently += 1,
            ItemOutcome::Deleted => self.deleted += 1,
            ItemOutcome::Failed(_) => self.failed += 1,
        }
    }
}

/// Where a run is, after one page.
#[non_exhaustive]
pub struct RewrapProgress<'a> {
    /// The results of the page just completed, in query order.
    pub page: &'a [ItemResult],
    /// The counts so far (this run only).
    pub totals: RewrapTotals,
    /// Where to resume ([`RewrapOptions::resume_from`]) if the run stops
    /// after this page. Persist it: a run interrupted later resumes here,
    /// and re-processing the pages after it is harmless (current headers
    /// are skipped). `None` in the last call, made once every page is done
    /// (with an empty `page`).
    pub resume_token: Option<&'a str>,
}

impl fmt::Debug for RewrapProgress<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RewrapProgress")
            .field("page_len", &self.page.len())
            .field("totals", &self.totals)
            .field("resume_token", &self.resume_token.is_some())
            .finish()
    }
}

/// The end of a run that went through every page.
#[derive(Debug)]
#[non_exhaustive]
pub struct RewrapReport {
    /// The counts (this run only).
    pub totals: RewrapTotals,
    /// Every item that failed, with its error (the per-item results of the
    /// others reached the progress callback page by page).
    pub failures: Vec<ItemResult>,
}

/// Re-wraps the `_cmk` header of every item of a document-format container
/// under its scope's current key version ([`DocumentCipher::rewrap`]):
/// after [`EncryptionScope::rotate_scope_key`](crate::scope::EncryptionScope::rotate_scope_key),
/// this moves every item's data key to the new version. Field ciphertexts
/// are not touched (deterministic fields keep the version they were
/// written under: keep that version in the scope; queries match it).
///
/// * **Paging.** `SELECT * FROM c WHERE IS_DEFINED(c._cmk)` over the whole
///   container, `page_size` items per page, each item's header re-wrapped
///   with `concurrency` in flight and written with *Replace Item* under
///   `If-Match: <the ETag read>`; other items of the container are not
///   read.
/// * **Concurrent writers** are never overwritten: a lost race re-reads the
///   item; if another writer already gave it a current header it is
///   [`ItemOutcome::UpdatedConcurrently`], else its new header is written
///   under the new ETag, at most `max_attempts` times.
/// * **Progress and resumption.** After each page, `progress` gets the
///   page's per-item results, the totals and a resume token. A run stopped
///   at any point (process killed, service down) resumes from the last
///   token with [`RewrapOptions::resume_from`]: pages after it are
///   processed again, and items already current are skipped.
/// * **Errors.** An item that cannot be re-wrapped (its header does not
///   open: another scope's, modified) is reported ([`ItemOutcome::Failed`])
///   and the run goes on. A failure of the service (a query page that
///   fails, or an item write that fails with a retryable error after the
///   SDK's retries) or of the scope (destroyed, its CMK unavailable) stops
///   the run with that error, before the page's progress is reported.
///
/// Errors: [`Error::ApiMisuse`] for an SDK-format container (its rotation
/// is one write: [`EncryptedContainer::rewrap_client_encryption_key`]);
/// storage errors that stop the run.
///
/// Cost: one query request per page, one replace per re-wrapped item (the
/// whole item is read and written back), one point read per lost race;
/// one local unwrap and wrap per item (no KMS call once the scope keys are
/// cached).
pub async fn rewrap_container(
    container: &EncryptedContainer,
    options: RewrapOptions,
    progress: &(dyn Fn(&RewrapProgress<'_>) + Send + Sync),
) -> crate::Result<RewrapReport> {
    let Format::Document(cipher) = container.format() else {
        return Err(Error::ApiMisuse(
            "rewrap_container re-wraps document-format item headers; an SDK-format container rotates with one client encryption key rewrap (rewrap_client_encryption_key)",
        ));
    };
    let mut query_options =
        QueryOptions::default().with_max_item_count(MaxItemCountHint::Limit(options.page_size));
    if let Some(token) = &options.resume_from {
        query_options =
            query_options.with_continuation_token(ContinuationToken::from_string(token.clone()));
    }
    let query = format!("SELECT * FROM c WHERE IS_DEFINED(c.{CMK_PROPERTY})");
    let mut pages = container
        .client()
        .query_items::<Value>(query, FeedScope::full_container(), Some(query_options))
        .await
        .map_err(|e| storage("query items to rewrap", &e))?
        .into_pages();
    let mut totals = RewrapTotals::default();
    let mut failures = Vec::new();
    let job = Job {
        container,
        cipher,
        pk_pointer: container.partition_key_pointer(),
        max_attempts: options.max_attempts.get(),
    };
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| storage("query items to rewrap", &e))?;
        let job = &job;
        let mut results: Vec<ItemResult> = stream::iter(page.into_items())
            .map(|item| job.item(item))
            .buffered(options.concurrency.get())
            .collect()
            .await;
        // A failure of the service or the scope stops the run; the page is
        // redone on resume.
        if let Some(pos) = results
            .iter()
            .position(|r| matches!(&r.outcome, ItemOutcome::Failed(e) if stops_the_run(e)))
        {
            if let ItemOutcome::Failed(e) = results.swap_remove(pos).outcome {
                return Err(e);
            }
        }
        let token = pages
            .to_continuation_token()
            .map_err(|e| storage("query continuation token", &e))?;
        results.iter().for_each(|r| totals.add(r));
        progress(&RewrapProgress {
            page: &results,
            totals,
            resume_token: Some(token.as_str()),
        });
        failures.extend(
            results
                .into_iter()
                .filter(|r| matches!(r.outcome, ItemOutcome::Failed(_))),
        );
    }
    progress(&RewrapProgress {
        page: &[],
        totals,
        resume_token: None,
    });
    Ok(RewrapReport { totals, failures })
}

/// Whether `e` stops the whole run rather than failing one item: the
/// service failing (a retryable error, after the SDK's retries), or the
/// scope unusable (destroyed, its CMK unavailable), where every other item
/// would fail the same way.
fn stops_the_run(e: &Error) -> bool {
    e.is_retryable() || matches!(e, Error::ScopeNotFound { .. } | Error::Kek(_))
}

/// What every item of a run needs.
struct Job<'a> {
    container: &'a EncryptedContainer,
    cipher: &'a DocumentCipher,
    pk_pointer: &'a JsonPointer,
    max_attempts: u32,
}

impl Job<'_> {
    /// Re-wraps one item as the query returned it.
    async fn item(&self, mut item: Value) -> ItemResult {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let pk_value = self.pk_pointer.get(&item).cloned().unwrap_or(Value::Null);
        let outcome = self.rewrap(&id, &pk_value, &mut item).await;
        ItemResult {
            id,
            partition_key: pk_value,
            outcome,
        }
    }

    async fn rewrap(&self, id: &str, pk_value: &Value, item: &mut Value) -> ItemOutcome {
        let pk = match partition_key(self.container.partition_key_path(), pk_value) {
            Ok(pk) => pk,
            Err(e) => return ItemOutcome::Failed(e),
        };
        let mut etag = match item.get("_etag").and_then(Value::as_str) {
            Some(e) => Etag(e.to_owned()),
            None => {
                return ItemOutcome::Failed(super::error::not_ours(
                    "a query returned an item without `_etag`",
                ))
            }
        };
        for attempt in 0..self.max_attempts {
            match self.cipher.rewrap(item).await {
                Ok(true) => {}
                Ok(false) if attempt == 0 => return ItemOutcome::AlreadyCurrent,
                Ok(false) => return ItemOutcome::UpdatedConcurrently,
                Err(e) => return ItemOutcome::Failed(e),
            }
            let res = self
                .container
                .client()
                .replace_item(pk.clone(), id, &*item, if_match(Some(&etag)))
                .await;
            match res {
                Ok(_) => return ItemOutcome::Rewrapped { conflicts: attempt },
                Err(e) if is_not_found(&e) => return ItemOutcome::Deleted,
                Err(e) if is_conflict(&e) => {}
                Err(e) => return ItemOutcome::Failed(storage("replace item to rewrap", &e)),
            }
            // Lost a race: read the item as it is now.
            match self.container.read_stored(id, pk.clone()).await {
                Ok(Some((now, tag))) => {
                    *item = now;
                    etag = tag;
                }
                Ok(None) => return ItemOutcome::Deleted,
                Err(e) => return ItemOutcome::Failed(e),
            }
        }
        ItemOutcome::Failed(Error::CosmosConflict {
            resource: "item",
            id: Some(crate::untrusted::escape(id)),
        })
    }
}
