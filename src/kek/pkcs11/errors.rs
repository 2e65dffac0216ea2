//! Mapping PKCS#11 return codes to the crate's error groups.
//!
//! | return codes | becomes |
//! |---|---|
//! | `CKR_PIN_INCORRECT`, `CKR_PIN_INVALID`, `CKR_PIN_LEN_RANGE`, `CKR_PIN_EXPIRED`, `CKR_PIN_LOCKED`, `CKR_USER_NOT_LOGGED_IN` | [`KekErrorKind::Unauthenticated`] |
//! | `CKR_TOKEN_NOT_PRESENT`, `CKR_TOKEN_NOT_RECOGNIZED`, `CKR_DEVICE_REMOVED`, `CKR_SLOT_ID_INVALID` | [`KekErrorKind::NotFound`] (the message says *token*) |
//! | `CKR_KEY_HANDLE_INVALID`, `CKR_OBJECT_HANDLE_INVALID`, `CKR_(UN)WRAPPING_KEY_HANDLE_INVALID` | [`KekErrorKind::NotFound`] (the key) |
//! | `CKR_MECHANISM_INVALID`, `CKR_MECHANISM_PARAM_INVALID`, `CKR_FUNCTION_NOT_SUPPORTED`, `CKR_ARGUMENTS_BAD` from an operation | [`KekErrorKind::Unsupported`] ("mechanism not supported by this token") |
//! | `CKR_KEY_FUNCTION_NOT_PERMITTED`, `CKR_KEY_NOT_WRAPPABLE`, `CKR_KEY_UNEXTRACTABLE`, `CKR_ACTION_PROHIBITED`, template errors | [`KekErrorKind::KeyUsage`] / [`KekErrorKind::PermissionDenied`] |
//! | `CKR_*KEY_TYPE_INCONSISTENT`, `CKR_*KEY_SIZE_RANGE`, `CKR_USER_PIN_NOT_INITIALIZED` | [`KekErrorKind::Misconfigured`] |
//! | `CKR_DEVICE_ERROR`, `CKR_DEVICE_MEMORY`, `CKR_HOST_MEMORY`, `CKR_FUNCTION_FAILED`, `CKR_SESSION_*`, `CKR_OPERATION_ACTIVE`, `CKR_GENERAL_ERROR` outside an unwrap | [`KekErrorKind::Transient`] (retryable) |
//! | `CKR_ENCRYPTED_DATA_INVALID`, `CKR_ENCRYPTED_DATA_LEN_RANGE`, `CKR_WRAPPED_KEY_INVALID`, `CKR_WRAPPED_KEY_LEN_RANGE`, `CKR_DATA_INVALID`, `CKR_DATA_LEN_RANGE`, and `CKR_GENERAL_ERROR` from the unwrap call itself | [`Error::UnwrapFailed`] |
//!
//! `CKR_GENERAL_ERROR` is in the last row because SoftHSM2 2.6 reports a
//! failed RFC 3394/5649 integrity check and a bad OAEP encoding with it. It
//! is only read that way from `C_UnwrapKey`/`C_Decrypt` on bytes taken from
//! a header, after the session, the login and the key have all been used
//! successfully in the same call sequence.
//!
//! Messages name the URI, the token and the PKCS#11 function and return
//! code. They never contain key bytes, wrapped keys or the PIN.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::error::{Error, KekError, KekErrorKind};
use crate::kek::WrapAlgorithm;

/// The backend name in [`KekError`]s.
pub(crate) const BACKEND: &str = "pkcs11";

/// What the crate was doing when a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Loading or initialising the module, listing slots and tokens.
    Module,
    /// Opening a session.
    Session,
    /// `C_Login`.
    Login,
    /// Finding the key objects and reading their attributes.
    FindKey,
    /// Wrapping a data key.
    Wrap,
    /// Unwrapping a data key from header bytes.
    Unwrap,
}

/// What an error message names.
pub(super) struct Ctx<'a> {
    /// The canonical URI (the key id) or, before it is known, the
    /// description of what was asked for.
    pub(super) uri: &'a str,
    /// The token label.
    pub(super) token: &'a str,
    /// The wrap algorithm.
    pub(super) alg: WrapAlgorithm,
}

/// The return code inside a cryptoki error, if any.
pub(super) fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// `C_Login` said we are already logged in: that is success.
pub(super) fn is_already_logged_in(e: &CkError) -> bool {
    matches!(rv(e), Some(RvError::UserAlreadyLoggedIn))
}

/// A cached object handle went stale (the object was re-created, or the
/// token logged out and back in): find the key again and retry.
pub(super) fn is_stale_handle(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
                | RvError::WrappingKeyHandleInvalid
                | RvError::UnwrappingKeyHandleInvalid
        )
    )
}

/// The return codes of a token that failed for now (device, memory, lock
/// or session trouble, too many sessions): the table's "transient" row.
fn is_transient_code(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::HostMemory
            | RvError::FunctionFailed
            | RvError::FunctionCanceled
            | RvError::GeneralError
            | RvError::SessionClosed
            | RvError::SessionHandleInvalid
            | RvError::SessionCount
            | RvError::OperationActive
            | RvError::OperationNotInitialized
            | RvError::CantLock
    )
}

/// Whether opening a session or logging in may succeed if tried again:
/// a transient return code. PIN errors never are (retrying a wrong PIN
/// would lock the token).
pub(super) fn is_transient(e: &CkError) -> bool {
    rv(e).is_some_and(is_transient_code)
}

/// The login was lost (every session was closed at some point): log in
/// again and retry.
pub(super) fn is_not_logged_in(e: &CkError) -> bool {
    matches!(rv(e), Some(RvError::UserNotLoggedIn))
}

/// The session can no longer be trusted and must be closed rather than
/// returned to the pool.
pub(super) fn session_is_broken(e: &CkError) -> bool {
    match rv(e) {
        Some(rv) => matches!(
            rv,
            RvError::SessionClosed
                | RvError::SessionHandleInvalid
                | RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::OperationActive
                | RvError::OperationNotInitialized
                | RvError::FunctionFailed
                | RvError::FunctionCanceled
                | RvError::CryptokiNotInitialized
        ),
        None => true,
    }
}

/// Whether a failed call is the HSM refusing the *input bytes* of an
/// unwrap, as opposed to the key, the session or the device.
fn is_bad_wrapped_input(e: &CkError) -> bool {
    let CkError::Pkcs11(rv, func) = e else {
        return false;
    };
    let data_call = matches!(
        func,
        Function::Decrypt | Function::UnwrapKey | Function::DecryptUpdate | Function::DecryptFinal
    );
    match rv {
        RvError::EncryptedDataInvalid
        | RvError::EncryptedDataLenRange
        | RvError::WrappedKeyInvalid
        | RvError::WrappedKeyLenRange
        | RvError::DataInvalid
        | RvError::DataLenRange => true,
        // SoftHSM2: failed integrity check / OAEP decoding.
        RvError::GeneralError => data_call,
        _ => false,
    }
}

fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("{func} returned {rv:?}"),
        CkError::LibraryLoading(_) => "the module could not be loaded".to_string(),
        other => format!("{other}"),
    }
}

/// The mechanism behind an algorithm, for messages.
pub(super) fn mechanism_name(alg: WrapAlgorithm) -> &'static str {
    match alg {
        WrapAlgorithm::A256Kw => "CKM_AES_KEY_WRAP",
        WrapAlgorithm::A256Kwp => "CKM_AES_KEY_WRAP_PAD",
        WrapAlgorithm::RsaOaep256 => "CKM_RSA_PKCS_OAEP with SHA-256/MGF1-SHA-256",
        WrapAlgorithm::RsaOaep => "CKM_RSA_PKCS_OAEP with SHA-1/MGF1-SHA-1",
    }
}

/// An error for `alg` being refused by the token.
pub(super) fn unsupported(ctx: &Ctx<'_>, detail: &str) -> Error {
    KekError::new(
        BACKEND,
        KekErrorKind::Unsupported,
        format!(
            "mechanism not supported by this token: token `{}` refuses {} ({}) for `{}`: {detail}",
            ctx.token,
            ctx.alg,
            mechanism_name(ctx.alg),
            ctx.uri
        ),
    )
    .into()
}

/// Maps a cryptoki error raised at `stage` to the crate's error.
pub(super) fn map(e: CkError, stage: Stage, ctx: &Ctx<'_>) -> Error {
    if stage == Stage::Unwrap && is_bad_wrapped_input(&e) {
        return Error::UnwrapFailed {
            kek_id: ctx.uri.to_string(),
        };
    }
    let what = describe(&e);
    let (token, uri) = (ctx.token, ctx.uri);
    let Some(code) = rv(&e) else {
        let kind = match &e {
            CkError::LibraryLoading(_)
            | CkError::MissingSymbol(_)
            | CkError::NullFunctionPointer => KekErrorKind::Misconfigured,
            CkError::NotSupported => KekErrorKind::Unsupported,
            _ => KekErrorKind::Other,
        };
        return KekError::new(BACKEND, kind, format!("`{uri}`: {what}"))
            .with_source(e)
            .into();
    };
    use KekErrorKind as K;
    let (kind, message) = match code {
        RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange => {
            (K::Unauthenticated, format!("wrong PIN for token `{token}` ({what})"))
        }
        RvError::PinExpired => (K::Unauthenticated, format!("the PIN of token `{token}` has expired ({what})")),
        RvError::PinLocked => (K::Unauthenticated, format!("the PIN of token `{token}` is locked ({what})")),
        RvError::UserNotLoggedIn => (
            K::Unauthenticated,
            format!("not logged in to token `{token}`: give a PIN to the builder or set CMK_PKCS11_PIN ({what})"),
        ),
        RvError::UserPinNotInitialized => {
            (K::Misconfigured, format!("the user PIN of token `{token}` was never set ({what})"))
        }
        RvError::UserTypeInvalid | RvError::UserAnotherAlreadyLoggedIn | RvError::UserTooManyTypes => {
            (K::Unauthenticated, format!("cannot log in to token `{token}` ({what})"))
        }
        RvError::TokenNotPresent | RvError::TokenNotRecognized | RvError::SlotIdInvalid | RvError::DeviceRemoved => {
            (K::NotFound, format!("token `{token}` is not present ({what})"))
        }
        RvError::KeyHandleInvalid
        | RvError::ObjectHandleInvalid
        | RvError::WrappingKeyHandleInvalid
        | RvError::UnwrappingKeyHandleInvalid => {
            (K::NotFound, format!("key `{uri}` was not found on token `{token}` ({what})"))
        }
        RvError::MechanismInvalid
        | RvError::MechanismParamInvalid
        | RvError::FunctionNotSupported
        | RvError::ArgumentsBad
            if matches!(stage, Stage::Wrap | Stage::Unwrap | Stage::FindKey) =>
        {
            return unsupported(ctx, &what);
        }
        RvError::KeyFunctionNotPermitted => (
            K::KeyUsage,
            format!("key `{uri}` on token `{token}` does not permit this operation ({what})"),
        ),
        RvError::KeyNotWrappable | RvError::KeyUnextractable | RvError::ActionProhibited => (
            K::PermissionDenied,
            format!("token `{token}` refused the operation on `{uri}` by policy ({what})"),
        ),
        RvError::TemplateInconsistent
        | RvError::TemplateIncomplete
        | RvError::AttributeValueInvalid
        | RvError::AttributeTypeInvalid
        | RvError::AttributeReadOnly
        | RvError::AttributeSensitive => (
            K::PermissionDenied,
            format!(
                "token `{token}` refused a transient data-key object for `{uri}` ({what}); \
                 if it forbids extractable session keys, give the KEK CKA_ENCRYPT/CKA_DECRYPT so C_Encrypt/C_Decrypt is used"
            ),
        ),
        RvError::KeyTypeInconsistent
        | RvError::WrappingKeyTypeInconsistent
        | RvError::UnwrappingKeyTypeInconsistent
        | RvError::KeySizeRange
        | RvError::WrappingKeySizeRange
        | RvError::UnwrappingKeySizeRange => (
            K::Misconfigured,
            format!("key `{uri}` on token `{token}` does not fit {} ({what})", ctx.alg),
        ),
        rv if is_transient_code(rv) => (K::Transient, format!("token `{token}` failed for `{uri}` ({what})")),
        _ => (K::Other, format!("token `{token}`, `{uri}`: {what}")),
    };
    KekError::new(BACKEND, kind, message).with_source(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            uri: "pkcs11:token=t;object=o;type=secret-key",
            token: "t",
            alg: WrapAlgorithm::A256Kw,
        }
    }

    fn kind(e: &Error) -> Option<KekErrorKind> {
        match e {
            Error::Kek(k) => Some(k.kind()),
            _ => None,
        }
    }

    fn ck(rv: RvError, f: Function) -> CkError {
        CkError::Pkcs11(rv, f)
    }

    #[test]
    fn groups() {
        let c = ctx();
        let e = map(ck(RvError::PinIncorrect, Function::Login), Stage::Login, &c);
        assert_eq!(kind(&e), Some(KekErrorKind::Unauthenticated));
        assert!(
            e.to_string().contains("wrong PIN") && e.to_string().contains("`t`"),
            "{e}"
        );
        assert!(!e.is_retryable());

        let e = map(
            ck(RvError::TokenNotPresent, Function::OpenSession),
            Stage::Session,
            &c,
        );
        assert_eq!(kind(&e), Some(KekErrorKind::NotFound));
        assert!(e.to_string().contains("token"), "{e}");

        let e = map(
            ck(RvError::KeyHandleInvalid, Function::DecryptInit),
            Stage::Unwrap,
            &c,
        );
        assert_eq!(kind(&e), Some(KekErrorKind::NotFound));

        let e = map(
            ck(RvError::ArgumentsBad, Function::EncryptInit),
            Stage::Wrap,
            &c,
        );
        assert_eq!(kind(&e), Some(KekErrorKind::Unsupported));
        assert!(
            e.to_string()
                .contains("mechanism not supported by this token"),
            "{e}"
        );

        let e = map(ck(RvError::DeviceError, Function::WrapKey), Stage::Wrap, &c);
        assert_eq!(kind(&e), Some(KekErrorKind::Transient));
        assert!(e.is_retryable());

        // GENERAL_ERROR is a device failure, except from the unwrap call
        let e = map(
            ck(RvError::GeneralError, Function::WrapKey),
            Stage::Wrap,
            &c,
        );
        assert_eq!(kind(&e), Some(KekErrorKind::Transient));
        let e = map(
            ck(RvError::GeneralError, Function::DecryptInit),
            Stage::Unwrap,
            &c,
        );
        assert_eq!(kind(&e), Some(KekErrorKind::Transient));
    }

    #[test]
    fn tampered_input_is_unwrap_failed() {
        let c = ctx();
        for (rv, f) in [
            (RvError::EncryptedDataInvalid, Function::Decrypt),
            (RvError::EncryptedDataLenRange, Function::Decrypt),
            (RvError::WrappedKeyInvalid, Function::UnwrapKey),
            (RvError::WrappedKeyLenRange, Function::UnwrapKey),
            (RvError::GeneralError, Function::UnwrapKey),
            (RvError::GeneralError, Function::Decrypt),
        ] {
            match map(ck(rv, f), Stage::Unwrap, &c) {
                Error::UnwrapFailed { kek_id } => assert_eq!(kek_id, c.uri),
                other => panic!("{rv:?}: {other:?}"),
            }
        }
        // the same codes while wrapping are not "unwrap failed"
        assert!(kind(&map(
            ck(RvError::DataLenRange, Function::Encrypt),
            Stage::Wrap,
            &c
        ))
        .is_some());
    }

    #[test]
    fn session_health() {
        assert!(session_is_broken(&ck(
            RvError::SessionHandleInvalid,
            Function::Decrypt
        )));
        assert!(!session_is_broken(&ck(
            RvError::EncryptedDataInvalid,
            Function::Decrypt
        )));
        assert!(is_already_logged_in(&ck(
            RvError::UserAlreadyLoggedIn,
            Function::Login
        )));
        assert!(is_stale_handle(&ck(
            RvError::ObjectHandleInvalid,
            Function::WrapKey
        )));
        assert!(is_not_logged_in(&ck(
            RvError::UserNotLoggedIn,
            Function::UnwrapKey
        )));
        for rv in [
            RvError::DeviceError,
            RvError::SessionCount,
            RvError::CantLock,
            RvError::DeviceMemory,
        ] {
            assert!(is_transient(&ck(rv, Function::Login)), "{rv:?}");
        }
        for rv in [
            RvError::PinIncorrect,
            RvError::PinLocked,
            RvError::UserPinNotInitialized,
            RvError::TokenNotPresent,
        ] {
            assert!(!is_transient(&ck(rv, Function::Login)), "{rv:?}");
        }
    }
}
