//! [`EncryptedContainer`]: a Cosmos DB container whose items are encrypted
//! on the way out and decrypted on the way in.

use std::fmt;
use std::sync::Arc;

use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::models::ContainerProperties;
use serde_json::Value;

use super::error::{is_conflict, is_not_found, not_ours, storage};
use super::format::{database_rid, Format, Sdk};
use super::keys::ClientEncryptionKeys;
use super::sdk::{if_match, partition_key, partition_key_path, require_etag};
use crate::cosmos_ae::{CekKeyring, ClientEncryptionPolicy, ItemCipher, VaultRule};
use crate::document::{DocumentCipher, DocumentPolicy, JsonPointer};
use crate::error::Error;
use crate::kek::KeyEncryptionKey;
use crate::scope::{EncryptionScope, Etag};

/// A Cosmos DB container whose items are encrypted by this crate before
/// they are sent and decrypted after they are read, in one of two formats
/// chosen when it is made:
///
/// * **the crate's document format** ([`with_document_format`](Self::with_document_format)):
///   the fields a [`DocumentPolicy`] names become `cmke1:` strings and the
///   item carries a `_cmk` header, under an [`EncryptionScope`] (see
///   [`crate::document`] for the format and what it binds);
/// * **the official SDKs' client-side encryption** ([`with_sdk_format`](Self::with_sdk_format)),
///   "Always Encrypted": the container's client encryption policy and the
///   database's client encryption keys, read and written where the .NET,
///   Java and JavaScript SDKs keep them, so services in those languages
///   share the container (see [`crate::cosmos_ae`] for the format and what
///   it does not bind).
///
/// Operations: [`create`](Self::create), [`upsert`](Self::upsert),
/// [`replace`](Self::replace) and [`delete`](Self::delete) (the last two
/// optionally conditional on an ETag: a lost race is
/// [`Error::CosmosConflict`], and nothing is written),
/// [`read`](Self::read), and [`query`](Self::query) (equality on
/// deterministic paths through parameters bound to them; a query that
/// filters, orders or groups on an encrypted path is refused before it is
/// sent, see [`EncryptedQuery`](super::EncryptedQuery)). Items are JSON
/// objects with a string `id`; the partition key must be in clear in the
/// document format, and may be encrypted (deterministically, policy
/// format 2) in the SDK format, as may the id. This type computes the id
/// and partition key sent with each request from the item.
///
/// Decryption is all or nothing: every value is verified before an item
/// (or a query page) is returned. What a verified item proves depends on
/// the format: in the document format its values and header are bound to
/// its **id**, not to its partition key, so whoever can write the
/// container can copy an item to another partition under the same id
/// (another tenant's, when tenants share a scope) and it reads there as
/// written; give each tenant its own scope, or ids unique across
/// partitions, where that matters. The SDK format binds values to neither
/// (see [`crate::cosmos_ae`]). Errors name the operation, the HTTP
/// status and the service's error code, or the JSON Pointer of a field;
/// never a value, key or token. `Debug` shows the container, its partition
/// key path and the format's policy.
///
/// Cheap to clone (an `Arc`). The container's partition key must be one
/// path of plain property names (`/tenant`, `/a/b`).
#[derive(Clone)]
pub struct EncryptedContainer {
    inner: Arc<Inner>,
}

struct Inner {
    container: ContainerClient,
    name: String,
    /// The partition key path (plain property names, so also a JSON
    /// Pointer).
    pk: JsonPointer,
    format: Format,
}

impl fmt::Debug for EncryptedContainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("EncryptedContainer");
        d.field("container", &self.inner.name)
            .field("partition_key", &self.inner.pk.as_str());
        match &self.inner.format {
            Format::Document(c) => d.field("document_format", c),
            Format::AlwaysEncrypted(s) => d.field("sdk_format", s.items.policy()),
        };
        d.finish()
    }
}

/// The container's properties, as JSON with every member the service
/// returned (the SDK's model keeps unknown ones).
async fn properties(container: &ContainerClient) -> crate::Result<(ContainerProperties, Value)> {
    let props: ContainerProperties = container
        .read(None)
        .await
        .and_then(|r| r.into_model())
        .map_err(|e| storage("read container properties", &e))?;
    let json = serde_json::to_value(&props)
        .map_err(|_| not_ours("the container properties do not serialize"))?;
    Ok((props, json))
}

impl EncryptedContainer {
    /// The container of `container` (an SDK client built with the caller's
    /// credential; see the [module docs](super)) in the crate's document
    /// format: items are encrypted by `policy` under `scope`'s keys.
    ///
    /// `policy`'s partition key must be the container's (the partition key
    /// stays in clear); a policy without one fits a container partitioned
    /// on `/id`.
    ///
    /// Cost: one request (the container's properties).
    pub async fn with_document_format(
        container: ContainerClient,
        scope: EncryptionScope,
        policy: DocumentPolicy,
    ) -> crate::Result<EncryptedContainer> {
        let (props, _) = properties(&container).await?;
        let pk = partition_key_path(&props)?;
        let matches = match policy.partition_key() {
            Some(p) => p == &pk,
            None => pk.as_str() == "/id",
        };
        if !matches {
            return Err(Error::DocumentField {
                path: pk.as_str().to_owned(),
                problem: "the container is partitioned on this path, but the document policy names another partition key",
            });
        }
        Ok(EncryptedContainer {
            inner: Arc::new(Inner {
                container,
                name: props.id.into_owned(),
                pk,
                format: Format::Document(DocumentCipher::new(scope, policy)),
            }),
        })
    }

    /// The container of `container` in the official SDKs' client-side
    /// encryption format: its `clientEncryptionPolicy` (read from the
    /// container's properties) names the paths and keys; the client
    /// encryption keys are read from `keys` (the database's key resources)
    /// into `keyring`, whose resolver must allow their KEKs and whose cache
    /// bounds how long a revoked KEK keeps data readable. Share one keyring
    /// between the containers of a database.
    ///
    /// When a key fails to unwrap (its KEK disabled after a rotation made
    /// elsewhere), the keys are read again, at most once per 10 seconds,
    /// and the operation is tried once more with the keys that changed.
    ///
    /// Errors: the container has no client encryption policy, or one the
    /// SDKs would refuse ([`Error::CosmosAeMetadata`]); a key it names is
    /// missing from the database, or `keys` is a client of another database
    /// than the container's.
    ///
    /// Cost: one request for the properties, one per key the policy names.
    /// No KEK call until a key is used.
    pub async fn with_sdk_format(
        container: ContainerClient,
        keys: ClientEncryptionKeys,
        keyring: Arc<CekKeyring>,
    ) -> crate::Result<EncryptedContainer> {
        let (props, json) = properties(&container).await?;
        let pk = partition_key_path(&props)?;
        if json.get("clientEncryptionPolicy").is_none() {
            return Err(Error::CosmosAeMetadata(
                "the container has no client encryption policy".to_owned(),
            ));
        }
        let policy = ClientEncryptionPolicy::from_container(&json.to_string())?;
        let database_rid = props
            .system_properties
            .self_link
            .as_deref()
            .and_then(database_rid)
            .map(str::to_owned);
        let items = ItemCipher::new(policy, keyring.clone());
        let sdk = Sdk::load(items, keyring, keys, database_rid).await?;
        Ok(EncryptedContainer {
            inner: Arc::new(Inner {
                container,
                name: props.id.into_owned(),
                pk,
                format: Format::AlwaysEncrypted(sdk),
            }),
        })
    }

    /// The container's id.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The container's partition key path, such as `/tenant`.
    pub fn partition_key_path(&self) -> &str {
        self.inner.pk.as_str()
    }

    pub(super) fn partition_key_pointer(&self) -> &JsonPointer {
        &self.inner.pk
    }

    pub(super) fn client(&self) -> &ContainerClient {
        &self.inner.container
    }

    pub(super) fn format(&self) -> &Format {
        &self.inner.format
    }

    /// The id to name in errors about the item `id`: `None` when the
    /// container encrypts ids (the id is then plaintext).
    pub(super) fn error_id(&self, id: &str) -> Option<String> {
        self.inner.format.id_in_clear().then(|| id.to_owned())
    }

    fn conflict(&self, id: &str) -> Error {
        Error::CosmosConflict {
            resource: "item",
            id: self.error_id(id).map(|i| crate::untrusted::escape(&i)),
        }
    }

    /// Encrypts `item` and returns it with the id and partition key to send.
    async fn prepare(&self, mut item: Value) -> crate::Result<Prepared> {
        let Some(Value::String(id)) = item.get("id") else {
            return Err(Error::DocumentField {
                path: "/id".to_owned(),
                problem: "an item must be a JSON object with a string `id`",
            });
        };
        check_item_id(id)?;
        let clear_id = id.clone();
        let pointer = &self.inner.pk;
        if pointer.get(&item).is_none() {
            return Err(Error::DocumentField {
                path: pointer.as_str().to_owned(),
                problem: "the item has no value at the container's partition key path",
            });
        }
        self.inner.format.encrypt(&mut item).await?;
        let id = match item.get("id") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(Error::Internal("an encrypted id is not a string")),
        };
        let pk = partition_key(pointer.as_str(), pointer.get(&item).expect("checked above"))?;
        Ok(Prepared {
            item,
            id,
            clear_id,
            pk,
        })
    }

    /// The stored id and partition key of the item `id` in partition `pk`.
    async fn address(
        &self,
        id: &str,
        pk: &Value,
    ) -> crate::Result<(String, azure_data_cosmos::PartitionKey)> {
        check_item_id(id)?;
        let format = &self.inner.format;
        let stored_id = match format.stored("/id", &Value::String(id.to_owned())).await? {
            Value::String(s) => s,
            _ => return Err(Error::Internal("an encrypted id is not a string")),
        };
        let path = self.inner.pk.as_str();
        let stored_pk = format.stored(path, pk).await?;
        Ok((stored_id, partition_key(path, &stored_pk)?))
    }

    /// Encrypts `item` and creates it. Returns its ETag.
    ///
    /// Errors: [`Error::CosmosConflict`] when an item with its id exists
    /// in its partition; [`Error::DocumentField`] when `item` is not an
    /// object with a string `id` and a value at the partition key path, or
    /// a field cannot be encrypted; key and storage errors.
    ///
    /// Cost: one request; the format's encryption (document format: one
    /// local key wrap and one AEAD per field, no KMS call once the scope
    /// key is cached).
    pub async fn create(&self, item: Value) -> crate::Result<Etag> {
        let p = self.prepare(item).await?;
        match self
            .inner
            .container
            .create_item(p.pk, &p.id, &p.item, None)
            .await
        {
            Ok(r) => require_etag(r.headers().etag()),
            Err(e) if is_conflict(&e) => Err(self.conflict(&p.clear_id)),
            Err(e) => Err(storage("create item", &e)),
        }
    }

    /// Encrypts `item` and creates or replaces it, unconditionally.
    /// Returns its ETag. Errors and cost as for [`create`](Self::create).
    pub async fn upsert(&self, item: Value) -> crate::Result<Etag> {
        let p = self.prepare(item).await?;
        match self
            .inner
            .container
            .upsert_item(p.pk, &p.id, &p.item, None)
            .await
        {
            Ok(r) => require_etag(r.headers().etag()),
            Err(e) => Err(storage("upsert item", &e)),
        }
    }

    /// Encrypts `item` and replaces the stored item of its id, only if
    /// the stored ETag is still `if_match` when one is given. Returns the
    /// new ETag.
    ///
    /// Errors: [`Error::CosmosConflict`] when `if_match` is given and the
    /// item changed or was deleted since (nothing was written: read it
    /// again and retry); a `NotFound` storage error when no `if_match` is
    /// given and there is no such item; else as for
    /// [`create`](Self::create).
    pub async fn replace(&self, item: Value, if_match_etag: Option<&Etag>) -> crate::Result<Etag> {
        let p = self.prepare(item).await?;
        match self
            .inner
            .container
            .replace_item(p.pk, &p.id, &p.item, if_match(if_match_etag))
            .await
        {
            Ok(r) => require_etag(r.headers().etag()),
            Err(e) if is_conflict(&e) || (if_match_etag.is_some() && is_not_found(&e)) => {
                Err(self.conflict(&p.clear_id))
            }
            Err(e) => Err(storage("replace item", &e)),
        }
    }

    /// Reads and decrypts the item `id` of partition `partition_key` (its
    /// plaintext value: this type encrypts it when the format does).
    /// Returns the item and its ETag, or `None` when there is no such item.
    ///
    /// Errors: the decryption errors of the format (a modified or moved
    /// value is [`Error::FieldAuthentication`]; an item that is not of
    /// this format fails too); key and storage errors.
    ///
    /// Cost: one point read; the format's decryption.
    pub async fn read(
        &self,
        id: &str,
        partition_key: &Value,
    ) -> crate::Result<Option<(Value, Etag)>> {
        let (id, pk) = self.address(id, partition_key).await?;
        let res = match self.inner.container.read_item(pk, &id, None).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(storage("read item", &e)),
        };
        let etag = require_etag(res.headers().etag())?;
        let mut item: Value = res.into_model().map_err(|e| storage("read item", &e))?;
        self.inner.format.decrypt(&mut item).await?;
        Ok(Some((item, etag)))
    }

    /// Reads the item stored under `stored_id` in partition `pk` as it is
    /// stored (encrypted), with its ETag, or `None`. Cost: one point read.
    pub(super) async fn read_stored(
        &self,
        stored_id: &str,
        pk: azure_data_cosmos::PartitionKey,
    ) -> crate::Result<Option<(Value, Etag)>> {
        let res = match self.inner.container.read_item(pk, stored_id, None).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(storage("read item", &e)),
        };
        let etag = require_etag(res.headers().etag())?;
        let item = res.into_model().map_err(|e| storage("read item", &e))?;
        Ok(Some((item, etag)))
    }

    /// Deletes the item `id` of partition `partition_key`, only if its ETag
    /// is still `if_match` when one is given. Returns `false` when there was
    /// no such item.
    ///
    /// Errors: [`Error::CosmosConflict`] when the item changed since
    /// `if_match` was read (nothing was deleted); storage errors.
    ///
    /// Cost: one request.
    pub async fn delete(
        &self,
        id: &str,
        partition_key: &Value,
        if_match_etag: Option<&Etag>,
    ) -> crate::Result<bool> {
        let clear_id = id;
        let (id, pk) = self.address(id, partition_key).await?;
        match self
            .inner
            .container
            .delete_item(pk, &id, if_match(if_match_etag))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) if is_conflict(&e) => Err(self.conflict(clear_id)),
            Err(e) => Err(storage("delete item", &e)),
        }
    }

    /// SDK format: rotates the key-encryption key of the client encryption
    /// key `cek_id` ([`ClientEncryptionKeys::rewrap`]): one write rotates
    /// every container whose policy names the key; no item changes. The
    /// current KEK is found through the keyring's resolver; the new one
    /// must be in the same key container (vault) unless `rule` allows
    /// another. This container's keyring takes the new key at once; other
    /// instances take it when they next read the keys (after a failure to
    /// unwrap with the old KEK, or when made).
    ///
    /// Errors: [`Error::ApiMisuse`] for a document-format container (its
    /// rotation is [`EncryptionScope::rotate_cmk`], and
    /// [`rewrap_container`](super::rewrap_container) for item headers);
    /// [`Error::KeyPolicy`] when the vault rule refuses;
    /// [`Error::CosmosConflict`] when the key changed meanwhile (call
    /// again); KEK errors.
    ///
    /// Cost: two requests, one KEK unwrap and one KEK wrap.
    pub async fn rewrap_client_encryption_key(
        &self,
        cek_id: &str,
        new_kek: &dyn KeyEncryptionKey,
        rule: VaultRule,
    ) -> crate::Result<()> {
        let Format::AlwaysEncrypted(s) = &self.inner.format else {
            return Err(Error::ApiMisuse(
                "client encryption keys belong to the SDK format; a document-format container rotates its scope's CMK (EncryptionScope::rotate_cmk) and rewraps item headers (rewrap_container)",
            ));
        };
        let (key, _) = s
            .keys
            .rewrap(cek_id, s.keyring.resolver().as_ref(), new_kek, rule)
            .await?;
        s.keyring.insert(key);
        Ok(())
    }

    /// SDK format: reads the client encryption keys the policy names again
    /// and takes the ones that changed (rotated elsewhere). A
    /// document-format container has nothing to read: `Ok`.
    ///
    /// Cost: one request per key.
    pub async fn refresh_keys(&self) -> crate::Result<()> {
        match &self.inner.format {
            Format::Document(_) => Ok(()),
            Format::AlwaysEncrypted(s) => s.refresh().await.map(drop),
        }
    }
}

/// Checks an item id as the service and the SDKs do (before encryption,
/// as the SDKs check it): 1 to 1023 bytes, none of `/ \ ? #`.
fn check_item_id(id: &str) -> crate::Result<()> {
    if id.is_empty() || id.len() > 1023 || id.contains(['/', '\\', '?', '#']) {
        return Err(Error::DocumentField {
            path: "/id".to_owned(),
            problem: "an item id must be 1 to 1023 bytes, none of `/`, `\\`, `?`, `#`",
        });
    }
    Ok(())
}

/// An item ready to send.
struct Prepared {
    item: Value,
    /// The id as stored (encrypted when the format encrypts ids).
    id: String,
    /// The id as the caller gave it.
    clear_id: String,
    pk: azure_data_cosmos::PartitionKey,
}
