//! [`CosmosScopeStore`]: scope key records as Cosmos DB items, with ETag
//! compare-and-swap.

use std::fmt;

use async_trait::async_trait;
use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::models::ContainerProperties;
use azure_data_cosmos::PartitionKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;

use super::error::{is_conflict, is_not_found, not_ours, storage};
use super::sdk::{if_match, require_etag};
use crate::error::Error;
use crate::scope::{Etag, ScopeStore};

/// The `type` of a scope-record item: what tells it from other items of a
/// shared container.
const ITEM_TYPE: &str = "cmk-envelope.scope-record";

/// A [`ScopeStore`] on Azure Cosmos DB: the record of scope `id` is the
/// item `id` of one container, shared by every service instance on every
/// machine.
///
/// Each scope is its own logical partition: the item's partition key value
/// is the scope id. The container is partitioned on one top-level path;
/// with `/id` the item is
/// `{"id": ID, "type": "cmk-envelope.scope-record", "record": BASE64}`, and
/// with another path (say `/pk`, a container shared with other metadata)
/// the item also holds `"pk": ID`.
///
/// Compare-and-swap is the service's: a create is *Create Item* (it fails
/// with `409 Conflict` when the id exists), an update is *Replace Item* with
/// `If-Match: <ETag read>`, a delete is conditional on the ETag too. When
/// two machines rotate one scope at the same moment, the service accepts
/// exactly one write; the other gets [`Error::ScopeConflict`], re-reads and
/// retries. A replace is atomic: a reader sees the old record or the new
/// one.
///
/// Costs: every method is one request (a point read or a single-item
/// write, about 1 RU for small records). [`CosmosScopeStore::new`] reads
/// the container's properties once.
///
/// Records hold only wrapped keys; still, grant the container to the
/// service's identity only. The SDK client carries the credential: this
/// type never prints it (its `Debug` shows the container id and partition
/// key path), and its errors keep only the operation, the HTTP status and
/// the service's error code.
#[derive(Clone)]
pub struct CosmosScopeStore {
    container: ContainerClient,
    container_id: String,
    /// The partition key property when it is not `id`.
    pk_property: Option<String>,
}

impl fmt::Debug for CosmosScopeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosmosScopeStore")
            .field("container", &self.container_id)
            .field(
                "partition_key",
                &format!("/{}", self.pk_property.as_deref().unwrap_or("id")),
            )
            .finish()
    }
}

/// The fields of a scope-record item this store reads.
#[derive(Deserialize)]
struct RecordItem {
    id: String,
    #[serde(rename = "type")]
    item_type: String,
    /// The record bytes, base64 (records are opaque to a store).
    record: String,
}

impl CosmosScopeStore {
    /// A store in the container of `container` (an SDK client built with
    /// the caller's credential: an Entra ID
    /// [`TokenCredential`](azure_core::credentials::TokenCredential) such
    /// as [`CredentialChain`](crate::kek::azure::CredentialChain) in
    /// production; see the [module docs](super)).
    ///
    /// Reads the container's properties once (one request) to learn its
    /// partition key path, which must be a single top-level path such as
    /// `/id` or `/pk`; hierarchical or nested partition keys are refused.
    pub async fn new(container: ContainerClient) -> crate::Result<Self> {
        let props: ContainerProperties = container
            .read(None)
            .await
            .and_then(|r| r.into_model())
            .map_err(|e| storage("read container properties", &e))?;
        let pk_property = match props.partition_key.paths() {
            [path] => top_level_property(path)
                .ok_or_else(|| not_ours("the scope container's partition key path must be one top-level property, such as /id"))?,
            _ => {
                return Err(not_ours(
                    "the scope container must have one partition key path (hierarchical partition keys are not supported)",
                ))
            }
        };
        Ok(CosmosScopeStore {
            container,
            container_id: props.id.into_owned(),
            pk_property: (pk_property != "id").then(|| pk_property.to_owned()),
        })
    }

    /// The item body holding `record` for `scope_id`.
    fn item(&self, scope_id: &str, record: &[u8]) -> serde_json::Value {
        let mut item = serde_json::Map::new();
        item.insert("id".into(), scope_id.into());
        if let Some(pk) = &self.pk_property {
            item.insert(pk.clone(), scope_id.into());
        }
        item.insert("type".into(), ITEM_TYPE.into());
        item.insert("record".into(), B64.encode(record).into());
        serde_json::Value::Object(item)
    }
}

/// `p` of a path `/p` whose property name needs no escaping.
fn top_level_property(path: &str) -> Option<&str> {
    let p = path.strip_prefix('/')?;
    let ok = !p.is_empty()
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(p)
}

/// The partition key of the record of `scope_id`: the scope id.
fn pk(scope_id: &str) -> PartitionKey {
    PartitionKey::from(scope_id.to_owned())
}

#[async_trait]
impl ScopeStore for CosmosScopeStore {
    async fn get(&self, scope_id: &str) -> crate::Result<Option<(Vec<u8>, Etag)>> {
        crate::scope::validate_scope_id(scope_id)?;
        let res = match self.container.read_item(pk(scope_id), scope_id, None).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(storage("read scope record", &e)),
        };
        let etag = require_etag(res.headers().etag())?;
        let value = res
            .into_body()
            .into_single::<serde_json::Value>()
            .map_err(|e| storage("read scope record", &e))?;
        let item = RecordItem::deserialize(value)
            .map_err(|_| not_ours("the item is not a scope record (unexpected shape)"))?;
        if item.item_type != ITEM_TYPE || item.id != scope_id {
            return Err(not_ours(
                "the item is not a scope record (unexpected type or id)",
            ));
        }
        let record = B64
            .decode(item.record.as_bytes())
            .map_err(|_| not_ours("the scope record item's `record` is not base64"))?;
        Ok(Some((record, etag)))
    }

    async fn put(
        &self,
        scope_id: &str,
        record: &[u8],
        expected: Option<&Etag>,
    ) -> crate::Result<Etag> {
        crate::scope::validate_scope_id(scope_id)?;
        let item = self.item(scope_id, record);
        let res = match expected {
            None => {
                self.container
                    .create_item(pk(scope_id), scope_id, item, None)
                    .await
            }
            Some(tag) => {
                self.container
                    .replace_item(pk(scope_id), scope_id, item, if_match(Some(tag)))
                    .await
            }
        };
        match res {
            Ok(r) => require_etag(r.headers().etag()),
            // 412: the ETag changed; 409: a create found a record; 404: an
            // update found none (deleted since it was read).
            Err(e) if is_conflict(&e) || (expected.is_some() && is_not_found(&e)) => {
                Err(Error::scope_conflict(scope_id))
            }
            Err(e) => Err(storage("write scope record", &e)),
        }
    }

    async fn delete(&self, scope_id: &str, expected: &Etag) -> crate::Result<()> {
        crate::scope::validate_scope_id(scope_id)?;
        match self
            .container
            .delete_item(pk(scope_id), scope_id, if_match(Some(expected)))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::ScopeNotFound {
                scope_id: scope_id.to_owned(),
            }),
            Err(e) if is_conflict(&e) => Err(Error::scope_conflict(scope_id)),
            Err(e) => Err(storage("delete scope record", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_key_paths() {
        assert_eq!(top_level_property("/id"), Some("id"));
        assert_eq!(top_level_property("/tenant_pk"), Some("tenant_pk"));
        assert_eq!(top_level_property("/a/b"), None);
        assert_eq!(top_level_property("/"), None);
        assert_eq!(top_level_property("id"), None);
        assert_eq!(top_level_property("/\"quoted\""), None);
    }
}
