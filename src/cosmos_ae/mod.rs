//! Cosmos DB client-side encryption, "Always Encrypted" (feature
//! `cosmos-ae`): read and write items in the format of the official
//! Cosmos DB SDKs (.NET, Java, JavaScript), byte for byte, under
//! customer-managed keys. Every test run checks it against the JavaScript
//! SDK's own code (`@azure/cosmos` 4.10.1); it was also read against the
//! .NET SDK's source; the Java SDK was not examined. No HTTP: this module
//! turns items, keys and policies (JSON) into other JSON; storing them is
//! the caller's (feature `cosmos`: `cosmos::EncryptedContainer` and
//! `cosmos::ClientEncryptionKeys` store them in Cosmos DB).
//!
//! # The model
//!
//! * A **client encryption key** (CEK, [`ClientEncryptionKey`]) is a
//!   database resource: a 32-byte root key wrapped by a key-encryption key
//!   (KEK), such as a Key Vault key. See [`ClientEncryptionKey::parse`]
//!   for its JSON, and [`ClientEncryptionKey::create`] /
//!   [`ClientEncryptionKey::rewrap`] for its life.
//! * A container's **client encryption policy**
//!   ([`ClientEncryptionPolicy`]) names top-level properties, each with a
//!   CEK and an [`EncryptionType`].
//! * An [`ItemCipher`] encrypts and decrypts items by the policy, with the
//!   keys of a [`CekKeyring`] (the CEKs, a [`KeyResolver`](crate::KeyResolver)
//!   allow-list for their KEKs, and a cache of unwrapped keys).
//!
//! # The format (checked against `@azure/cosmos` 4.10.1 and the .NET SDK's code)
//!
//! An encrypted property's value is replaced by a JSON string; an object
//! or array keeps its shape with every leaf replaced, and `null` stays
//! `null`, at any depth:
//!
//! ```text
//! {"id": "p1", "ssn": "078-05-1120", "tags": ["a", null], "age": 41}
//!    ──encrypt (/ssn, /tags, /age)──▶
//! {"id": "p1", "ssn": "BQH…", "tags": ["BQH…", null], "age": "BAH…"}
//!
//! leaf = base64( type marker ‖ 0x01 ‖ tag(32) ‖ IV(16) ‖ AES-256-CBC(PKCS#7(plaintext)) )
//! ```
//!
//! * **Keys**: from the CEK's root key, `K = HMAC-SHA-256(root, UTF-16LE(label))`
//!   for an encryption, a MAC and an IV key (the SQL Server cell-encryption
//!   labels).
//! * **`AEAD_AES_256_CBC_HMAC_SHA256`, version 1**: `tag =
//!   HMAC-SHA-256(MAC key, 0x01 ‖ IV ‖ CBC ciphertext ‖ 0x01)`; the IV is
//!   random (`Randomized`) or the first 16 bytes of `HMAC-SHA-256(IV key,
//!   plaintext)` (`Deterministic`). The tag is verified, in constant time,
//!   before anything is decrypted. The full specification is the module
//!   documentation of `src/cosmos_ae/algorithm.rs`.
//! * **Type markers** `0x02` Boolean (8 bytes, 0 or 1), `0x03` Double (8
//!   bytes, IEEE 754), `0x04` Long (8 bytes, `i64`), `0x05` String (UTF-8),
//!   all little-endian; base64 with padding, and under `/id` with `/`→`_`
//!   and `+`→`-`. A `serde_json` integer is a Long and a double a Double,
//!   bit for bit (`1.0`, `-0.0`, `5e-324` and `1e300` stay doubles), as in
//!   .NET; integers beyond `i64` are refused. The full
//!   specification, with the JavaScript SDK's differences, is the module
//!   documentation of `src/cosmos_ae/value.rs`.
//! * A property the item lacks is skipped, on both sides.
//! * `/id` and partition key paths can be encrypted only with policy
//!   format version 2, deterministically; the id (and the partition key
//!   value sent with a request) is then its ciphertext:
//!   [`ItemCipher::encrypt_value`] computes it, as it computes the
//!   parameter of an equality query on a deterministic path.
//!
//! # Which key-encryption keys
//!
//! Any of the crate's KEKs can wrap a root key
//! ([`ClientEncryptionKey::create`]); the metadata records the algorithm.
//! The SDKs create and read only `RSA-OAEP` (SHA-1, empty label): the
//! JavaScript SDK unwraps every CEK with it whatever the metadata says, and
//! the .NET SDK knows no other. So a CEK the SDKs must read needs an RSA
//! KEK used with `RSA-OAEP`: a Key Vault or Managed HSM RSA key (`…#RSA-OAEP`
//! on the command line), a local RSA JWK with `"alg": "RSA-OAEP"`, or a
//! PKCS#11 RSA key. A CEK wrapped with `A256KW` (a Managed HSM `oct-HSM`
//! key, a local or HSM AES key), `A256KWP` or `RSA-OAEP-256` is readable
//! only by this crate.
//!
//! # What the format binds, and what it does not
//!
//! A leaf's tag covers only its own ciphertext, under keys derived from its
//! CEK. So:
//!
//! * **Refused** ([`Error::FieldAuthentication`](crate::Error::FieldAuthentication)
//!   with the leaf's JSON Pointer): any change to the version, tag, IV or
//!   ciphertext bytes; a truncation or extension; a leaf decrypted under
//!   the wrong CEK, including a leaf **moved from a path encrypted under
//!   another CEK** or from another database's key.
//! * **Refused** ([`Error::DocumentField`](crate::Error::DocumentField)): an
//!   unknown type marker, or a marker whose type does not fit the
//!   decrypted bytes (a Boolean that is not 0 or 1, a String that is not
//!   UTF-8, 8-byte types of another length, a non-finite Double).
//! * **Not bound, undetectable by design of the format**:
//!   * the **path**: a leaf moved or copied to another path under the
//!     **same CEK** decrypts there (for example between `/a` and `/b` when
//!     both use `cek1`, or between two leaves of one object or array);
//!   * the **item**: a leaf copied from another item of any container
//!     whose policy uses the same CEK decrypts (deterministic leaves of
//!     equal values are even identical);
//!   * the **encryption type**: a randomized ciphertext placed under a
//!     deterministic path of the same CEK decrypts;
//!   * the **type marker** is outside the authenticated bytes: a Long,
//!     Double or Boolean holds 8 bytes, so relabelling one as another
//!     yields another value whenever the bytes are valid for it (Long `1`,
//!     Double `5e-324` and `true` have the same plaintext; a Long
//!     relabelled Double reads as a different number), and 8 bytes of
//!     valid UTF-8 can be relabelled String;
//!   * **absence and shape**: a property or leaf removed, a leaf or a whole
//!     encrypted property replaced by `null`, `[]` or `{}` (which read back
//!     as themselves, as the SDKs write them), or a whole item replaced by
//!     an older version of itself.
//!
//! Use one CEK per property where moves between properties matter; this
//! crate's own document format (`cmk_envelope::document`, feature
//! `document`) binds values to their path and item.
//!
//! # What is revealed
//!
//! Which properties are encrypted, the shape of encrypted objects and
//! arrays (keys, lengths, where `null`s are), each leaf's type (the marker
//! is in clear) and the length of each string to within 16 bytes.
//! Deterministic paths also reveal equality and frequency of values
//! under their CEK.
//!
//! # Differences between the SDKs, and where this crate stands
//!
//! * **Numbers.** .NET (Newtonsoft's `Integer` and `Float` tokens) and
//!   this crate keep integers and doubles apart; the JavaScript SDK writes
//!   every integral number as a Long, cannot encrypt integral doubles
//!   beyond `i64` (`1e300`), and reads Longs beyond ±2^53 to the nearest
//!   double. The Java SDK was not examined.
//! * **Booleans** are 8 bytes in every SDK (SQL Server's `bit` layout).
//! * **The JavaScript SDK caches unwrapped keys by KEK URL** (its
//!   `EncryptionKeyStoreProvider`): a fresh client that reads two CEKs
//!   wrapped by the same KEK uses the first root key for both, fails to
//!   decrypt the second CEK's values and encrypts new ones under the wrong
//!   key (seen with 4.10.1). This crate caches by CEK. Give each CEK its
//!   own KEK where JavaScript clients take part.
//! * **Tags** are compared in constant time here; the JavaScript SDK uses
//!   `Buffer.equals` and .NET `SequenceEqual`, which stop at the first
//!   differing byte.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(kek: std::sync::Arc<dyn cmk_envelope::KeyEncryptionKey>, policy_json: &str) -> cmk_envelope::Result<()> {
//! use std::sync::Arc;
//! use cmk_envelope::cosmos_ae::{CekKeyring, ClientEncryptionKey, ClientEncryptionPolicy, ItemCipher};
//! use cmk_envelope::scope::CachePolicy;
//! use cmk_envelope::StaticResolver;
//!
//! let cek = ClientEncryptionKey::create("cek1", kek.as_ref()).await?; // store cek.to_json()
//! let keys = Arc::new(CekKeyring::new(Arc::new(StaticResolver::new().with(kek)), CachePolicy::default()));
//! keys.insert(cek);
//! let items = ItemCipher::new(ClientEncryptionPolicy::parse(policy_json)?, keys);
//!
//! let mut item = serde_json::json!({"id": "p1", "ssn": "078-05-1120"});
//! items.encrypt_item(&mut item).await?;
//! items.decrypt_item(&mut item).await?;
//! # Ok(()) }
//! ```

mod algorithm;
mod cek;
mod item;
mod keyring;
mod lifecycle;
mod policy;
mod value;

#[cfg(feature = "cosmos")]
pub(crate) use cek::check_resource_id;
pub use cek::{ClientEncryptionKey, KeyWrapMetadata, AZURE_KEY_VAULT, CMK_ENVELOPE};
pub use item::ItemCipher;
pub use keyring::CekKeyring;
pub use lifecycle::VaultRule;
#[cfg(feature = "cosmos")]
pub(crate) use policy::top_level;
pub use policy::{ClientEncryptionPolicy, EncryptionType, IncludedPath, ALGORITHM};
