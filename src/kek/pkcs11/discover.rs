//! Finding the token and the key objects a URI names, checking them
//! against the wrap algorithm, and choosing how each direction calls the
//! token.

use std::path::Path;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;

use super::errors::{self, Ctx, Stage, BACKEND};
use super::pool::SessionPool;
use super::{mechanism, misconfigured, Pkcs11ObjectType, Pkcs11Path, Pkcs11Uri};
use crate::error::{Error, KekError, KekErrorKind};
use crate::kek::WrapAlgorithm;

/// The object handles a KEK uses. They may go stale (the token logged out,
/// the object was re-created); they are then looked up again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Handles {
    /// The key that wraps (the secret key, or the RSA public key).
    pub(super) wrap: Option<ObjectHandle>,
    /// The key that unwraps (the secret key, or the RSA private key).
    pub(super) unwrap: Option<ObjectHandle>,
}

fn object_class(ty: Pkcs11ObjectType) -> ObjectClass {
    match ty {
        Pkcs11ObjectType::SecretKey => ObjectClass::SECRET_KEY,
        Pkcs11ObjectType::Private => ObjectClass::PRIVATE_KEY,
        Pkcs11ObjectType::Public => ObjectClass::PUBLIC_KEY,
        Pkcs11ObjectType::Cert => ObjectClass::CERTIFICATE,
        Pkcs11ObjectType::Data => ObjectClass::DATA,
    }
}

/// Objects of class `ty` matching the URI's `object` and `id`.
pub(super) fn find_objects(
    s: &Session,
    uri: &Pkcs11Uri,
    ty: Pkcs11ObjectType,
) -> Result<Vec<ObjectHandle>, CkError> {
    let mut template = vec![Attribute::Class(object_class(ty))];
    if let Some(label) = uri.object() {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = uri.id() {
        template.push(Attribute::Id(id.to_vec()));
    }
    s.find_objects(&template)
}

/// The slot whose token matches the URI, and the token's label.
pub(super) fn find_token(
    ctx: &Pkcs11,
    uri: &Pkcs11Uri,
    module: &Path,
) -> crate::Result<(Slot, String)> {
    let wanted = uri.token().unwrap_or("?");
    let module_ctx = Ctx {
        uri: wanted,
        token: wanted,
        alg: WrapAlgorithm::A256Kw,
    };
    let map = |e: CkError| errors::map(e, Stage::Module, &module_ctx);
    if uri.library_manufacturer().is_some()
        || uri.library_description().is_some()
        || uri.library_version().is_some()
    {
        let info = ctx.get_library_info().map_err(map)?;
        let version_ok = uri.library_version().is_none_or(|(maj, min)| {
            info.library_version().major() == maj
                && min.is_none_or(|m| info.library_version().minor() == m)
        });
        if uri
            .library_manufacturer()
            .is_some_and(|m| m != info.manufacturer_id())
            || uri
                .library_description()
                .is_some_and(|d| d != info.library_description())
            || !version_ok
        {
            return Err(KekError::new(
                BACKEND,
                KekErrorKind::NotFound,
                format!(
                    "token `{wanted}`: module {} is not the library the URI names",
                    module.display()
                ),
            )
            .into());
        }
    }
    let mut found = Vec::new();
    for slot in ctx.get_slots_with_token().map_err(map)? {
        if uri.slot_id().is_some_and(|id| id != slot.id()) {
            continue;
        }
        if uri.slot_description().is_some() || uri.slot_manufacturer().is_some() {
            let Ok(si) = ctx.get_slot_info(slot) else {
                continue;
            };
            if uri
                .slot_description()
                .is_some_and(|d| d != si.slot_description())
                || uri
                    .slot_manufacturer()
                    .is_some_and(|m| m != si.manufacturer_id())
            {
                continue;
            }
        }
        // A slot whose token vanished between the two calls is skipped.
        let Ok(ti) = ctx.get_token_info(slot) else {
            continue;
        };
        if uri.token().is_some_and(|t| t != ti.label())
            || uri
                .manufacturer()
                .is_some_and(|m| m != ti.manufacturer_id())
            || uri.serial().is_some_and(|s| s != ti.serial_number())
            || uri.model().is_some_and(|m| m != ti.model())
        {
            continue;
        }
        found.push((slot, ti.label().to_string()));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(KekError::new(
            BACKEND,
            KekErrorKind::NotFound,
            format!(
                "token `{wanted}` is not present: no slot of module {} holds a token matching the URI",
                module.display()
            ),
        )
        .into()),
        n => Err(misconfigured(format!(
            "{n} tokens match `{wanted}`: add `serial=` or `slot-id=` to the URI"
        ))),
    }
}

/// What the crate reads of a key object.
#[derive(Debug, Default, Clone, Copy)]
struct KeyAttrs {
    key_type: Option<KeyType>,
    value_len: Option<usize>,
    modulus_len: Option<usize>,
    encrypt: bool,
    decrypt: bool,
    wrap: bool,
    unwrap: bool,
}

fn read_attrs(s: &Session, h: ObjectHandle, ty: Pkcs11ObjectType) -> Result<KeyAttrs, CkError> {
    let mut want = vec![AttributeType::KeyType];
    match ty {
        Pkcs11ObjectType::SecretKey => want.extend([
            AttributeType::ValueLen,
            AttributeType::Encrypt,
            AttributeType::Decrypt,
            AttributeType::Wrap,
            AttributeType::Unwrap,
        ]),
        Pkcs11ObjectType::Private => want.extend([
            AttributeType::Modulus,
            AttributeType::Decrypt,
            AttributeType::Unwrap,
        ]),
        _ => want.extend([
            AttributeType::Modulus,
            AttributeType::Encrypt,
            AttributeType::Wrap,
        ]),
    }
    let mut a = KeyAttrs::default();
    for attr in s.get_attributes(h, &want)? {
        match attr {
            Attribute::KeyType(t) => a.key_type = Some(t),
            Attribute::ValueLen(n) => a.value_len = Some(usize::from(n)),
            Attribute::Modulus(m) => {
                let significant = m.iter().skip_while(|b| **b == 0).count();
                a.modulus_len = Some(significant);
            }
            Attribute::Encrypt(b) => a.encrypt = b,
            Attribute::Decrypt(b) => a.decrypt = b,
            Attribute::Wrap(b) => a.wrap = b,
            Attribute::Unwrap(b) => a.unwrap = b,
            _ => {}
        }
    }
    Ok(a)
}

/// What [`resolve`] found.
pub(super) struct Resolved {
    /// The canonical URI.
    pub(super) kek_id: String,
    /// The algorithm (given, or the key type's default).
    pub(super) alg: WrapAlgorithm,
    /// The class of the object the URI names.
    pub(super) object_type: Pkcs11ObjectType,
    /// How wraps call the token, if the key can wrap.
    pub(super) wrap_path: Option<Pkcs11Path>,
    /// How unwraps call the token, if the key can unwrap.
    pub(super) unwrap_path: Option<Pkcs11Path>,
    /// Length of a wrapped key.
    pub(super) wrapped_len: usize,
    /// The key objects.
    pub(super) handles: Handles,
}

/// Finds the key objects, checks them against the algorithm and picks the
/// paths.
pub(super) fn resolve(
    uri: &Pkcs11Uri,
    token: &str,
    pool: &SessionPool,
    alg: Option<WrapAlgorithm>,
    had_pin: bool,
) -> crate::Result<Resolved> {
    let wanted = format!("pkcs11:token={token};{}", uri.object_description());
    let ctx0 = Ctx {
        uri: &wanted,
        token,
        alg: alg.unwrap_or(WrapAlgorithm::A256Kw),
    };
    let map = |e: CkError, stage| errors::map(e, stage, &ctx0);
    let s = pool.get().map_err(|e| map(e, Stage::Session))?;

    let not_found = |what: &str| -> Error {
        let hint = if had_pin {
            ""
        } else {
            " (no PIN was given, so private objects are invisible: use .pin() or CMK_PKCS11_PIN)"
        };
        KekError::new(
            BACKEND,
            KekErrorKind::NotFound,
            format!(
                "no {what} object `{}` on token `{token}`{hint}",
                uri.object_description()
            ),
        )
        .into()
    };
    let candidates: Vec<Pkcs11ObjectType> = match (uri.object_type(), alg) {
        (
            Some(
                t @ (Pkcs11ObjectType::SecretKey
                | Pkcs11ObjectType::Private
                | Pkcs11ObjectType::Public),
            ),
            _,
        ) => vec![t],
        (Some(t), _) => {
            return Err(misconfigured(format!(
                "PKCS#11 URI: `type={t}` is not a key"
            )))
        }
        (None, Some(a)) if a.is_rsa() => vec![Pkcs11ObjectType::Private, Pkcs11ObjectType::Public],
        (None, Some(_)) => vec![Pkcs11ObjectType::SecretKey],
        (None, None) => vec![
            Pkcs11ObjectType::SecretKey,
            Pkcs11ObjectType::Private,
            Pkcs11ObjectType::Public,
        ],
    };
    let mut chosen = None;
    for ty in &candidates {
        let hs = find_objects(&s, uri, *ty).map_err(|e| map(e, Stage::FindKey))?;
        match hs.len() {
            0 => continue,
            1 => {
                chosen = Some((*ty, hs[0]));
                break;
            }
            n => {
                return Err(misconfigured(format!(
                    "{n} {ty} objects match `{wanted}`: make the URI more specific (`id=`)"
                )))
            }
        }
    }
    let what = match candidates.as_slice() {
        [one] => one.as_str(),
        _ => "key",
    };
    let Some((object_type, main)) = chosen else {
        return Err(not_found(what));
    };
    let attrs = read_attrs(&s, main, object_type).map_err(|e| map(e, Stage::FindKey))?;

    // Key type and size against the algorithm.
    let is_rsa = object_type != Pkcs11ObjectType::SecretKey;
    let alg = alg.unwrap_or(if is_rsa {
        WrapAlgorithm::RsaOaep256
    } else {
        WrapAlgorithm::A256Kw
    });
    let kek_type = if is_rsa {
        Pkcs11ObjectType::Private
    } else {
        Pkcs11ObjectType::SecretKey
    };
    // An RSA key is recorded as `type=private` whichever half this KEK
    // holds: the header names the key that can open the entry, so a
    // public-only KEK and the private KEK write the same id.
    let kek_id = uri.canonical(token, kek_type);
    let bad_key = |why: String| {
        misconfigured(format!(
            "key `{kek_id}` on token `{token}` cannot be used for {alg}: {why}"
        ))
    };
    if alg.is_rsa() != is_rsa {
        return Err(bad_key(format!("it is a {object_type} object")));
    }
    let mut wrapped_len = 40;
    if is_rsa {
        if attrs.key_type != Some(KeyType::RSA) {
            return Err(bad_key("it is not an RSA key".into()));
        }
        let bytes = attrs.modulus_len.unwrap_or(0);
        if !(256..=1024).contains(&bytes) {
            return Err(bad_key(format!(
                "its modulus is {} bits; 2048 to 8192 are accepted",
                bytes * 8
            )));
        }
        wrapped_len = bytes;
    } else {
        if attrs.key_type != Some(KeyType::AES) {
            return Err(bad_key("it is not an AES key".into()));
        }
        if attrs.value_len.is_some_and(|n| n != 32) {
            return Err(bad_key(format!(
                "it is a {}-bit AES key, not 256-bit",
                attrs.value_len.unwrap_or(0) * 8
            )));
        }
    }

    // The public half of a private key, for wrapping.
    let (wrap_attrs, handles) = match object_type {
        Pkcs11ObjectType::Private => {
            let public = find_objects(&s, uri, Pkcs11ObjectType::Public)
                .map_err(|e| map(e, Stage::FindKey))?;
            match public.as_slice() {
                [p] => (
                    Some(
                        read_attrs(&s, *p, Pkcs11ObjectType::Public)
                            .map_err(|e| map(e, Stage::FindKey))?,
                    ),
                    Handles {
                        wrap: Some(*p),
                        unwrap: Some(main),
                    },
                ),
                _ => (
                    None,
                    Handles {
                        wrap: None,
                        unwrap: Some(main),
                    },
                ),
            }
        }
        Pkcs11ObjectType::Public => (
            Some(attrs),
            Handles {
                wrap: Some(main),
                unwrap: None,
            },
        ),
        _ => (
            Some(KeyAttrs {
                encrypt: attrs.encrypt,
                wrap: attrs.wrap,
                ..KeyAttrs::default()
            }),
            Handles {
                wrap: Some(main),
                unwrap: Some(main),
            },
        ),
    };
    let unwrap_attrs = (object_type != Pkcs11ObjectType::Public).then_some(&attrs);

    // What the token offers for the mechanism.
    let kctx = Ctx {
        uri: &kek_id,
        token,
        alg,
    };
    let mech_type = mechanism(alg).mechanism_type();
    let info = match pool.context().get_mechanism_info(pool.slot(), mech_type) {
        Ok(info) => info,
        Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => {
            return Err(errors::unsupported(
                &kctx,
                "the mechanism is not in the token's mechanism list",
            ))
        }
        Err(e) => return Err(errors::map(e, Stage::FindKey, &kctx)),
    };
    let pick = |cipher: bool, key_api: bool| {
        if cipher {
            Some(Pkcs11Path::Cipher)
        } else if key_api {
            Some(Pkcs11Path::KeyObject)
        } else {
            None
        }
    };
    let wrap_path = wrap_attrs
        .as_ref()
        .and_then(|a| pick(a.encrypt && info.encrypt(), a.wrap && info.wrap()));
    let unwrap_path =
        unwrap_attrs.and_then(|a| pick(a.decrypt && info.decrypt(), a.unwrap && info.unwrap()));
    if wrap_path.is_none() && unwrap_path.is_none() {
        let offered = info.encrypt() || info.decrypt() || info.wrap() || info.unwrap();
        if !offered {
            return Err(errors::unsupported(
                &kctx,
                "the token offers it for neither encryption nor key wrapping",
            ));
        }
        return Err(KekError::new(
            BACKEND,
            KekErrorKind::KeyUsage,
            format!("key `{kek_id}` on token `{token}` may neither wrap nor unwrap with {alg} (check CKA_ENCRYPT/CKA_DECRYPT/CKA_WRAP/CKA_UNWRAP)"),
        )
        .into());
    }
    drop(s);
    Ok(Resolved {
        kek_id,
        alg,
        object_type,
        wrap_path,
        unwrap_path,
        wrapped_len,
        handles,
    })
}
