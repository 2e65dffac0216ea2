//! One encrypted property value: its type marker, the serialization of
//! its plaintext, and the base64 text stored in the item.
//!
//! ```text
//! stored string = base64( marker (1) ‖ AEAD_AES_256_CBC_HMAC_SHA256 ciphertext )
//! ```
//!
//! | JSON value | marker | plaintext |
//! |---|---|---|
//! | `true` / `false` | `0x02` Boolean | 8 bytes: `1` or `0` as a little-endian `i64` |
//! | a number stored as an integer (`i64`) | `0x04` Long | 8 bytes: the `i64`, little-endian |
//! | a number stored as a double (`f64`) | `0x03` Double | 8 bytes: the IEEE 754 bits, little-endian |
//! | a string | `0x05` String | its UTF-8 bytes |
//! | `null` | — | not encrypted: stays `null` |
//!
//! Marker `0x01` (Null) exists in the SDKs but is never written; it is
//! refused here, as any other marker.
//!
//! **Base64.** Standard alphabet with padding (RFC 4648 §4). Under `/id`,
//! `/` is written `_` and `+` is written `-` (padding stays), because an
//! id may not contain `/`; nothing else changes.
//!
//! **Numbers.** A number that `serde_json` holds as an integer (`i64`, or
//! a `u64` up to `i64::MAX`) is a Long; one it holds as a double (written
//! with a fraction or an exponent, such as `1.0`, `5e-324`, `1e300`,
//! `-0.0`) is a Double, bit for bit. This is what the .NET SDK does
//! (Newtonsoft's `Integer` and `Float` tokens). Differences of the
//! JavaScript SDK, which has only doubles:
//!
//! * it writes **every integral number as a Long**, so `1.0`, `-0.0`
//!   (as `0`) and `2^60` are Longs there, and a finite integral double
//!   outside the `i64` range (`1e300`, `2^63`) cannot be encrypted at all
//!   (`RangeError`). To match a value the JavaScript SDK wrote with an
//!   equality query, encrypt the integer form (`json!(1)`, not `1.0`).
//! * it reads a Long as the nearest double, so integers beyond ±2^53 lose
//!   precision there (this crate reads them exactly).
//!
//! Integers beyond the `i64` range are refused here, as by every SDK.
//! A Double that decrypts to NaN or an infinity (which JSON cannot hold,
//! and no SDK writes) is refused.
//!
//! **Reading** is strict: a Boolean must be exactly 8 bytes holding 0 or 1,
//! a Long or Double exactly 8 bytes, a String valid UTF-8. The SDKs accept
//! more (the JavaScript SDK reads a Boolean from its first byte of any
//! length, and decodes invalid UTF-8 with replacement characters); no SDK
//! writes anything this refuses.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Number, Value};
use zeroize::Zeroizing;

/// The byte in front of each ciphertext that says how to read the
/// plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeMarker {
    Boolean = 2,
    Double = 3,
    Long = 4,
    String = 5,
}

impl TypeMarker {
    fn from_byte(b: u8) -> Option<TypeMarker> {
        Some(match b {
            2 => TypeMarker::Boolean,
            3 => TypeMarker::Double,
            4 => TypeMarker::Long,
            5 => TypeMarker::String,
            _ => return None,
        })
    }
}

/// Why a leaf could not be serialized or read back: a fixed text, never
/// the value.
pub(crate) type Problem = &'static str;

/// The serialized plaintext of a leaf: 8 bytes (zeroized on drop), or
/// the UTF-8 of a string, borrowed from the value.
pub(crate) enum Plaintext<'a> {
    Eight(Zeroizing<[u8; 8]>),
    Text(&'a [u8]),
}

impl Plaintext<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Plaintext::Eight(b) => &b[..],
            Plaintext::Text(t) => t,
        }
    }
}

/// The marker and plaintext of a non-null leaf (`null` is never
/// encrypted; objects and arrays are walked by the caller).
pub(crate) fn serialize(value: &Value) -> Result<(TypeMarker, Plaintext<'_>), Problem> {
    let eight = |b: [u8; 8]| Plaintext::Eight(Zeroizing::new(b));
    match value {
        Value::Bool(b) => Ok((TypeMarker::Boolean, eight(i64::from(*b).to_le_bytes()))),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok((TypeMarker::Long, eight(i.to_le_bytes())))
            } else if n.is_u64() {
                Err("an integer beyond the signed 64-bit range cannot be encrypted (the SDKs refuse it too)")
            } else {
                // A double: always finite in a `serde_json::Value`.
                let f = n
                    .as_f64()
                    .ok_or("a number that is neither an integer nor a double")?;
                Ok((TypeMarker::Double, eight(f.to_le_bytes())))
            }
        }
        Value::String(s) => Ok((TypeMarker::String, Plaintext::Text(s.as_bytes()))),
        Value::Null | Value::Array(_) | Value::Object(_) => {
            Err("only booleans, numbers and strings are encrypted as values")
        }
    }
}

/// The JSON value of a decrypted leaf.
pub(crate) fn deserialize(marker: u8, plaintext: &[u8]) -> Result<Value, Problem> {
    let marker = TypeMarker::from_byte(marker).ok_or("unknown type marker")?;
    let eight = || -> Result<[u8; 8], Problem> {
        plaintext
            .try_into()
            .map_err(|_| "the type marker does not fit the decrypted value (8 bytes expected)")
    };
    Ok(match marker {
        TypeMarker::Boolean => match i64::from_le_bytes(eight()?) {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => {
                return Err(
                    "the type marker does not fit the decrypted value (a boolean is 0 or 1)",
                )
            }
        },
        TypeMarker::Long => Value::Number(i64::from_le_bytes(eight()?).into()),
        TypeMarker::Double => Value::Number(
            Number::from_f64(f64::from_le_bytes(eight()?))
                .ok_or("the decrypted double is not finite, which JSON cannot hold")?,
        ),
        TypeMarker::String => Value::String(
            std::str::from_utf8(plaintext)
                .map_err(|_| "the decrypted string is not valid UTF-8")?
                .to_owned(),
        ),
    })
}

/// The stored text of `marker ‖ ciphertext`; `escape_id` for `/id`.
pub(crate) fn encode(marker_and_ciphertext: &[u8], escape_id: bool) -> String {
    let text = STANDARD.encode(marker_and_ciphertext);
    if escape_id {
        text.replace('/', "_").replace('+', "-")
    } else {
        text
    }
}

/// The inverse of [`encode`]: `marker ‖ ciphertext`, at least the marker.
/// Strict: the standard alphabet with padding, or for `/id` the escaped
/// one.
pub(crate) fn decode(text: &str, escaped_id: bool) -> Result<Vec<u8>, Problem> {
    let bytes = if escaped_id {
        if text.contains(['/', '+']) {
            return Err("an encrypted id must use `_` and `-` instead of `/` and `+`");
        }
        STANDARD.decode(text.replace('_', "/").replace('-', "+"))
    } else {
        STANDARD.decode(text)
    }
    .map_err(|_| "the value is not a ciphertext (not base64)")?;
    if bytes.is_empty() {
        return Err("the value is not a ciphertext (empty)");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markers_and_layouts() {
        let cases = [
            (
                json!(true),
                TypeMarker::Boolean,
                vec![1, 0, 0, 0, 0, 0, 0, 0],
            ),
            (json!(false), TypeMarker::Boolean, vec![0; 8]),
            (json!(1), TypeMarker::Long, vec![1, 0, 0, 0, 0, 0, 0, 0]),
            (json!(-2), TypeMarker::Long, (-2i64).to_le_bytes().to_vec()),
            (
                json!(i64::MAX as u64),
                TypeMarker::Long,
                i64::MAX.to_le_bytes().to_vec(),
            ),
            (
                json!(1.0),
                TypeMarker::Double,
                1.0f64.to_le_bytes().to_vec(),
            ),
            (
                json!(-0.0),
                TypeMarker::Double,
                (-0.0f64).to_le_bytes().to_vec(),
            ),
            (
                json!(5e-324),
                TypeMarker::Double,
                vec![1, 0, 0, 0, 0, 0, 0, 0],
            ),
            (json!("é€"), TypeMarker::String, "é€".as_bytes().to_vec()),
            (json!(""), TypeMarker::String, vec![]),
        ];
        for (v, m, bytes) in cases {
            let (got_m, got) = serialize(&v).unwrap();
            assert_eq!((got_m, got.as_bytes()), (m, &bytes[..]), "{v}");
            let back = deserialize(m as u8, got.as_bytes()).unwrap();
            assert_eq!(back, v);
            // Bit for bit, including the sign of zero.
            if let (Some(a), Some(b)) = (back.as_f64(), v.as_f64()) {
                assert_eq!(a.to_bits(), b.to_bits());
            }
        }
        assert!(serialize(&json!(u64::MAX)).is_err());
        assert!(serialize(&json!(null)).is_err());
        assert!(serialize(&json!([1])).is_err());
    }

    #[test]
    fn strict_reading() {
        assert!(deserialize(1, &[]).is_err(), "Null is never written");
        assert!(deserialize(6, b"x").is_err());
        assert!(deserialize(2, &[2, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(deserialize(2, &[1]).is_err());
        assert!(deserialize(4, &[0; 7]).is_err());
        assert!(deserialize(3, &[0; 9]).is_err());
        assert!(deserialize(3, &f64::NAN.to_le_bytes()).is_err());
        assert!(deserialize(3, &f64::INFINITY.to_le_bytes()).is_err());
        assert!(deserialize(5, &[0xff, 0xfe]).is_err());
    }

    #[test]
    fn base64_and_id_escaping() {
        // 0x05 0xfb 0xff encodes to "Bfv/" in standard base64.
        let bytes = [5u8, 0xfb, 0xff];
        let plain = encode(&bytes, false);
        let id = encode(&bytes, true);
        assert_eq!(plain, "Bfv/");
        assert_eq!(id, "Bfv_");
        assert_eq!(decode(&plain, false).unwrap(), bytes);
        assert_eq!(decode(&id, true).unwrap(), bytes);
        assert!(decode(&plain, true).is_err(), "unescaped id");
        assert!(decode(&id, false).is_err(), "escaped non-id");
        assert!(decode("BfvA", false).is_ok());
        assert!(decode("Bfv", false).is_err(), "padding is required");
        assert!(decode("", false).is_err());
    }
}
