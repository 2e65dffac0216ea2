//! RFC 7512 `pkcs11:` URIs: parsing, and the canonical form recorded as a
//! key id.
//!
//! The parser is strict on purpose. A URI names the key that protects data,
//! so anything this crate would not use to select that key (an unknown or
//! duplicated attribute, a vendor `x-` attribute, bad percent-encoding) is
//! refused rather than skipped: skipping it would match more objects than
//! the operator wrote.
//!
//! The PIN is never taken from a URI. `pin-value` and `pin-source` are
//! refused, and no error message ever repeats a value from the URI, so a
//! PIN pasted into one cannot leak through logs.

use std::fmt::{self, Write as _};

use crate::error::{Error, KekError, KekErrorKind};

use super::errors::BACKEND;

/// The object class named by the `type` attribute of a PKCS#11 URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pkcs11ObjectType {
    /// `type=secret-key` (an AES key, for A256KW/A256KWP).
    SecretKey,
    /// `type=private` (an RSA private key, for RSA-OAEP).
    Private,
    /// `type=public` (an RSA public key: it can wrap but not unwrap).
    Public,
    /// `type=cert` (not usable as a KEK).
    Cert,
    /// `type=data` (not usable as a KEK).
    Data,
}

impl Pkcs11ObjectType {
    /// The RFC 7512 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Pkcs11ObjectType::SecretKey => "secret-key",
            Pkcs11ObjectType::Private => "private",
            Pkcs11ObjectType::Public => "public",
            Pkcs11ObjectType::Cert => "cert",
            Pkcs11ObjectType::Data => "data",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "secret-key" => Pkcs11ObjectType::SecretKey,
            "private" => Pkcs11ObjectType::Private,
            "public" => Pkcs11ObjectType::Public,
            "cert" => Pkcs11ObjectType::Cert,
            "data" => Pkcs11ObjectType::Data,
            _ => return None,
        })
    }
}

impl fmt::Display for Pkcs11ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed RFC 7512 PKCS#11 URI, such as
/// `pkcs11:token=kek-test;object=cmk;type=secret-key` or
/// `pkcs11:token=kek-test;id=%01%02;type=private`.
///
/// Understood path attributes: `token`, `manufacturer`, `serial`, `model`
/// (token info), `slot-id`, `slot-description`, `slot-manufacturer` (slot
/// info), `library-manufacturer`, `library-description`, `library-version`
/// (module info), and `object`, `id`, `type` (the object). Understood query
/// attributes: `module-path` and `module-name`.
///
/// A KEK URI must select a token (`token`, `serial` or `slot-id`) and an
/// object (`object` or `id`). Values are percent-decoded; `id` is raw bytes,
/// every other value must be UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    token: Option<String>,
    manufacturer: Option<String>,
    serial: Option<String>,
    model: Option<String>,
    slot_id: Option<u64>,
    slot_description: Option<String>,
    slot_manufacturer: Option<String>,
    library_manufacturer: Option<String>,
    library_description: Option<String>,
    library_version: Option<(u8, Option<u8>)>,
    object: Option<String>,
    id: Option<Vec<u8>>,
    object_type: Option<Pkcs11ObjectType>,
    module_path: Option<String>,
    module_name: Option<String>,
}

fn bad(message: impl Into<String>) -> Error {
    KekError::new(
        BACKEND,
        KekErrorKind::Misconfigured,
        format!("PKCS#11 URI: {}", message.into()),
    )
    .into()
}

/// Decodes `%XX` escapes. Errors name the attribute, never the value.
fn percent_decode(raw: &str, attr: &str) -> crate::Result<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (hi, lo) = match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => {
                        return Err(bad(format!(
                            "invalid percent-encoding in attribute `{attr}`"
                        )))
                    }
                };
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b if b.is_ascii_control() || b == b' ' || b == b'#' => {
                return Err(bad(format!(
                    "attribute `{attr}` contains a character that must be percent-encoded"
                )))
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn decode_text(raw: &str, attr: &str) -> crate::Result<String> {
    String::from_utf8(percent_decode(raw, attr)?)
        .map_err(|_| bad(format!("attribute `{attr}` is not valid UTF-8")))
}

/// Appends `bytes` percent-encoded: everything but RFC 3986 "unreserved"
/// characters is escaped, with upper-case hex.
fn percent_encode_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn set<T>(slot: &mut Option<T>, value: T, attr: &str) -> crate::Result<()> {
    if slot.is_some() {
        return Err(bad(format!("attribute `{attr}` appears more than once")));
    }
    *slot = Some(value);
    Ok(())
}

impl Pkcs11Uri {
    /// Parses and checks a URI. It must select a token and an object.
    ///
    /// Errors ([`KekErrorKind::Misconfigured`]) name the offending attribute
    /// but never echo a value.
    pub fn parse(uri: &str) -> crate::Result<Pkcs11Uri> {
        let parsed = Self::parse_any(uri)?;
        if parsed.token.is_none() && parsed.serial.is_none() && parsed.slot_id.is_none() {
            return Err(bad(
                "no token given: add `token=<label>` (or `serial=` or `slot-id=`)",
            ));
        }
        if parsed.object.is_none() && parsed.id.is_none() {
            return Err(bad(
                "no object given: add `object=<label>` or `id=<percent-encoded bytes>`",
            ));
        }
        Ok(parsed)
    }

    /// Parses without requiring a token or an object.
    fn parse_any(uri: &str) -> crate::Result<Pkcs11Uri> {
        let rest = match uri.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("pkcs11:") => &uri[7..],
            _ => return Err(bad("must start with `pkcs11:`")),
        };
        if rest.contains('#') {
            return Err(bad("a fragment (`#`) is not allowed"));
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut u = Pkcs11Uri::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| bad("every path attribute must be `name=value`"))?;
            u.path_attribute(name, value)?;
        }
        for part in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| bad("every query attribute must be `name=value`"))?;
            u.query_attribute(name, value)?;
        }
        Ok(u)
    }

    fn path_attribute(&mut self, name: &str, value: &str) -> crate::Result<()> {
        let text = |v: &str| decode_text(v, name);
        match name {
            "token" => set(&mut self.token, text(value)?, name),
            "manufacturer" => set(&mut self.manufacturer, text(value)?, name),
            "serial" => set(&mut self.serial, text(value)?, name),
            "model" => set(&mut self.model, text(value)?, name),
            "slot-description" => set(&mut self.slot_description, text(value)?, name),
            "slot-manufacturer" => set(&mut self.slot_manufacturer, text(value)?, name),
            "library-manufacturer" => set(&mut self.library_manufacturer, text(value)?, name),
            "library-description" => set(&mut self.library_description, text(value)?, name),
            "object" => set(&mut self.object, text(value)?, name),
            "id" => set(&mut self.id, percent_decode(value, name)?, name),
            "slot-id" => {
                let t = text(value)?;
                let n = t
                    .parse::<u64>()
                    .ok()
                    .filter(|_| t.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| bad("`slot-id` must be a decimal number"))?;
                set(&mut self.slot_id, n, name)
            }
            "library-version" => {
                let t = text(value)?;
                let num = |s: &str| {
                    s.parse::<u8>()
                        .ok()
                        .filter(|_| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                };
                let v = match t.split_once('.') {
                    Some((maj, min)) => num(maj).zip(num(min)).map(|(a, b)| (a, Some(b))),
                    None => num(&t).map(|a| (a, None)),
                }
                .ok_or_else(|| bad("`library-version` must be `major` or `major.minor`"))?;
                set(&mut self.library_version, v, name)
            }
            "type" => {
                let t = text(value)?;
                let ty = Pkcs11ObjectType::parse(&t).ok_or_else(|| {
                    bad("`type` must be one of `secret-key`, `private`, `public`, `cert`, `data`")
                })?;
                set(&mut self.object_type, ty, name)
            }
            "pin-value" | "pin-source" => Err(pin_refused(name)),
            other => Err(unknown(other, "path")),
        }
    }

    fn query_attribute(&mut self, name: &str, value: &str) -> crate::Result<()> {
        match name {
            "module-path" => set(&mut self.module_path, decode_text(value, name)?, name),
            "module-name" => set(&mut self.module_name, decode_text(value, name)?, name),
            "pin-value" | "pin-source" => Err(pin_refused(name)),
            other => Err(unknown(other, "query")),
        }
    }

    /// The `token` label, if given.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The token `manufacturer`, if given.
    pub fn manufacturer(&self) -> Option<&str> {
        self.manufacturer.as_deref()
    }

    /// The token `serial`, if given.
    pub fn serial(&self) -> Option<&str> {
        self.serial.as_deref()
    }

    /// The token `model`, if given.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The `slot-id`, if given.
    pub fn slot_id(&self) -> Option<u64> {
        self.slot_id
    }

    /// The `slot-description`, if given.
    pub fn slot_description(&self) -> Option<&str> {
        self.slot_description.as_deref()
    }

    /// The `slot-manufacturer`, if given.
    pub fn slot_manufacturer(&self) -> Option<&str> {
        self.slot_manufacturer.as_deref()
    }

    /// The `library-manufacturer`, if given.
    pub fn library_manufacturer(&self) -> Option<&str> {
        self.library_manufacturer.as_deref()
    }

    /// The `library-description`, if given.
    pub fn library_description(&self) -> Option<&str> {
        self.library_description.as_deref()
    }

    /// The `library-version` as (major, minor), if given.
    pub fn library_version(&self) -> Option<(u8, Option<u8>)> {
        self.library_version
    }

    /// The `object` label (`CKA_LABEL`), if given.
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// The decoded `id` (`CKA_ID`), if given.
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// The `type`, if given.
    pub fn object_type(&self) -> Option<Pkcs11ObjectType> {
        self.object_type
    }

    /// The `module-path` query attribute, if given.
    pub fn module_path(&self) -> Option<&str> {
        self.module_path.as_deref()
    }

    /// The `module-name` query attribute, if given (informational: modules
    /// are loaded by path only).
    pub fn module_name(&self) -> Option<&str> {
        self.module_name.as_deref()
    }

    /// How the object is named in messages: `object=cmk`, `id=%01%02`, or
    /// both.
    pub(super) fn object_description(&self) -> String {
        let mut s = String::new();
        if let Some(o) = &self.object {
            s.push_str("object=");
            percent_encode_into(&mut s, o.as_bytes());
        }
        if let Some(id) = &self.id {
            if !s.is_empty() {
                s.push(';');
            }
            s.push_str("id=");
            percent_encode_into(&mut s, id);
        }
        s
    }

    /// The canonical key id: `pkcs11:token=<label>;object=<label>;id=<id>;type=<type>`
    /// in that order, with only the parts that are known, every value
    /// percent-encoded the same way (upper-case hex, unreserved characters
    /// left as they are). Token-selecting attributes other than the label,
    /// library attributes and query attributes are left out: they say where
    /// to find the key, not which key it is.
    pub fn canonical(&self, token_label: &str, object_type: Pkcs11ObjectType) -> String {
        let mut s = String::from("pkcs11:token=");
        percent_encode_into(&mut s, token_label.as_bytes());
        let object = self.object_description();
        if !object.is_empty() {
            s.push(';');
            s.push_str(&object);
        }
        s.push_str(";type=");
        s.push_str(object_type.as_str());
        s
    }
}

fn pin_refused(name: &str) -> Error {
    bad(format!(
        "`{name}` is not accepted (a PIN must not live in a key id); give the PIN to the builder or set CMK_PKCS11_PIN"
    ))
}

fn unknown(name: &str, part: &str) -> Error {
    // Attribute names are not secret, but they are untrusted (a URI can
    // come from a header): keep them short, with control characters
    // escaped.
    let shown: String = name.chars().take(40).collect();
    bad(format!(
        "unknown {part} attribute `{}`",
        crate::untrusted::escape(&shown)
    ))
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = Error;

    fn from_str(s: &str) -> crate::Result<Pkcs11Uri> {
        Pkcs11Uri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(uri: &str) -> String {
        match Pkcs11Uri::parse(uri) {
            Err(Error::Kek(e)) => {
                assert_eq!(e.kind(), KekErrorKind::Misconfigured);
                e.to_string()
            }
            other => panic!("{uri}: expected a Misconfigured error, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_common_forms() {
        let u = Pkcs11Uri::parse("pkcs11:token=kek-test;object=cmk;type=secret-key").unwrap();
        assert_eq!(u.token(), Some("kek-test"));
        assert_eq!(u.object(), Some("cmk"));
        assert_eq!(u.object_type(), Some(Pkcs11ObjectType::SecretKey));
        assert_eq!(u.id(), None);

        let u = Pkcs11Uri::parse("PKCS11:token=kek-test;id=%01%02;type=private").unwrap();
        assert_eq!(u.id(), Some(&[1u8, 2][..]));
        assert_eq!(u.object_type(), Some(Pkcs11ObjectType::Private));
        assert_eq!(u.object(), None);

        let u = Pkcs11Uri::parse("pkcs11:serial=0123;slot-id=7;object=k;type=public?module-path=/usr/lib/x.so&module-name=x")
            .unwrap();
        assert_eq!(u.serial(), Some("0123"));
        assert_eq!(u.slot_id(), Some(7));
        assert_eq!(u.object_type(), Some(Pkcs11ObjectType::Public));
        assert_eq!(u.module_path(), Some("/usr/lib/x.so"));
        assert_eq!(u.module_name(), Some("x"));
    }

    #[test]
    fn percent_decoding() {
        let u = Pkcs11Uri::parse("pkcs11:token=My%20Token;object=a%3Bb%25c;id=%00%ff%7E").unwrap();
        assert_eq!(u.token(), Some("My Token"));
        assert_eq!(u.object(), Some("a;b%c"));
        assert_eq!(u.id(), Some(&[0x00, 0xff, 0x7e][..]));
        // UTF-8 survives, both escaped and raw
        let u = Pkcs11Uri::parse("pkcs11:token=%C3%A9t%C3%A9;object=été").unwrap();
        assert_eq!(u.token(), Some("été"));
        assert_eq!(u.object(), Some("été"));
        for bad in ["%", "%4", "%zz", "%G0"] {
            let e = err(&format!("pkcs11:token=t;object=x{bad}"));
            assert!(
                e.contains("percent-encoding") && e.contains("`object`"),
                "{e}"
            );
        }
        let e = err("pkcs11:token=t;object=%FF%FE");
        assert!(e.contains("UTF-8"), "{e}");
        // raw bytes are fine in `id` only
        assert!(Pkcs11Uri::parse("pkcs11:token=t;id=%FF%FE").is_ok());
        let e = err("pkcs11:token=t;object=a b");
        assert!(e.contains("percent-encoded"), "{e}");
    }

    #[test]
    fn unknown_duplicate_and_malformed_attributes_are_refused() {
        let e = err("pkcs11:token=t;object=x;colour=blue");
        assert!(
            e.contains("unknown path attribute `colour`") && !e.contains("blue"),
            "{e}"
        );
        let e = err("pkcs11:token=t;object=x;x-vendor=1");
        assert!(e.contains("x-vendor"), "{e}");
        let e = err("pkcs11:token=t;object=x?foo=bar");
        assert!(
            e.contains("unknown query attribute `foo`") && !e.contains("bar"),
            "{e}"
        );
        // An attribute name with control characters (a URI can come from
        // a header): escaped in the message.
        let e = err("pkcs11:token=t;object=x;\u{1b}[31mred\u{7}=1");
        crate::untrusted::assert_tame(&e);
        assert!(e.contains("\\u{1b}[31mred\\u{7}"), "{e}");
        let e = err("pkcs11:token=t;token=u;object=x");
        assert!(e.contains("more than once"), "{e}");
        assert!(err("pkcs11:token=t;object").contains("name=value"));
        assert!(err("pkcs11:token=t;object=x;type=key").contains("`type`"));
        assert!(err("pkcs11:token=t;object=x;slot-id=-1").contains("slot-id"));
        assert!(err("pkcs11:token=t;object=x;library-version=1.x").contains("library-version"));
        assert!(err("pkcs11:token=t;object=x#frag").contains("fragment"));
        assert!(err("pkcs12:token=t;object=x").contains("pkcs11:"));
        assert!(err("").contains("pkcs11:"));
        let u = Pkcs11Uri::parse("pkcs11:token=t;object=x;library-version=2.6").unwrap();
        assert_eq!(u.library_version(), Some((2, Some(6))));
    }

    #[test]
    fn token_and_object_are_required() {
        assert!(err("pkcs11:object=cmk;type=secret-key").contains("no token"));
        assert!(err("pkcs11:").contains("no token"));
        assert!(err("pkcs11:token=kek-test;type=secret-key").contains("no object"));
        // serial or slot-id select a token too
        assert!(Pkcs11Uri::parse("pkcs11:serial=abc;object=cmk").is_ok());
        assert!(Pkcs11Uri::parse("pkcs11:slot-id=3;id=%01").is_ok());
    }

    #[test]
    fn pin_value_is_refused_and_never_echoed() {
        for uri in [
            "pkcs11:token=t;object=x?pin-value=SuperSecret1234",
            "pkcs11:token=t;object=x;pin-value=SuperSecret1234",
            "pkcs11:token=t;object=x?pin-source=file:/SuperSecret1234",
            "pkcs11:token=t;object=x?module-path=/m.so&pin-value=Super%53ecret1234",
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err();
            for text in [e.to_string(), format!("{e:?}")] {
                assert!(
                    !text.contains("SuperSecret")
                        && !text.contains("Secret1234")
                        && !text.contains("1234"),
                    "{text}"
                );
                assert!(text.contains("pin-"), "{text}");
                assert!(text.contains("CMK_PKCS11_PIN"), "{text}");
            }
        }
        // and no other error echoes a value either
        let e = err("pkcs11:token=t;object=x;type=SuperSecret");
        assert!(!e.contains("SuperSecret"), "{e}");
    }

    #[test]
    fn canonical_form() {
        let u =
            Pkcs11Uri::parse("pkcs11:object=cmk;type=secret-key;token=kek-test?module-path=/x.so")
                .unwrap();
        assert_eq!(
            u.canonical("kek-test", Pkcs11ObjectType::SecretKey),
            "pkcs11:token=kek-test;object=cmk;type=secret-key"
        );
        let u = Pkcs11Uri::parse("pkcs11:serial=42;id=%01%02;object=my%20key").unwrap();
        assert_eq!(
            u.canonical("found label", Pkcs11ObjectType::Private),
            "pkcs11:token=found%20label;object=my%20key;id=%01%02;type=private"
        );
        // the canonical form parses back to the same key selection
        let c = Pkcs11Uri::parse(&u.canonical("found label", Pkcs11ObjectType::Private)).unwrap();
        assert_eq!(c.token(), Some("found label"));
        assert_eq!(c.object(), Some("my key"));
        assert_eq!(c.id(), Some(&[1u8, 2][..]));
        // lower-case escapes normalise to upper case
        let u = Pkcs11Uri::parse("pkcs11:token=t;id=%ab").unwrap();
        assert_eq!(
            u.canonical("t", Pkcs11ObjectType::SecretKey),
            "pkcs11:token=t;id=%AB;type=secret-key"
        );
    }
}
