//! JSON Pointer (RFC 6901): parsing, with the `~0` / `~1` escapes, and
//! resolution against a `serde_json::Value`.
//!
//! Only the JSON-string form is handled (not the URI fragment form). The
//! empty pointer `""` is the whole document. Every other pointer starts
//! with `/`; each reference token is unescaped by replacing `~1` with `/`
//! and then `~0` with `~` (in that order, as section 4 requires, so `~01`
//! means the key `~1`). A `~` followed by anything else is an error.
//!
//! Array elements are addressed by a decimal index without leading zeros
//! (`0`, `7`, `12`, never `07`). The token `-` ("past the last element")
//! names no existing value, so it never resolves.

use std::fmt;

use serde_json::Value;

/// A parsed JSON Pointer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<String>,
}

impl fmt::Debug for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPointer({:?})", self.text)
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a pointer string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerError {
    /// A non-empty pointer must start with `/`.
    MissingLeadingSlash,
    /// `~` must be followed by `0` or `1`.
    BadEscape,
}

impl fmt::Display for PointerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PointerError::MissingLeadingSlash => "a JSON Pointer must be empty or start with `/`",
            PointerError::BadEscape => "in a JSON Pointer `~` must be followed by `0` or `1`",
        })
    }
}

impl std::error::Error for PointerError {}

impl JsonPointer {
    /// Parses `text` as an RFC 6901 pointer (JSON-string form).
    pub fn parse(text: &str) -> Result<JsonPointer, PointerError> {
        if text.is_empty() {
            return Ok(JsonPointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let rest = text
            .strip_prefix('/')
            .ok_or(PointerError::MissingLeadingSlash)?;
        let tokens = rest
            .split('/')
            .map(unescape)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JsonPointer {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The unescaped reference tokens, outermost first.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Whether this is the empty pointer (the whole document).
    pub fn is_root(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `self` is `other` or one of its ancestors (a pointer is a
    /// prefix of itself). Compares tokens, so `/a~1b` is not a prefix of
    /// `/a/b`.
    pub fn is_prefix_of(&self, other: &JsonPointer) -> bool {
        other.tokens.len() >= self.tokens.len()
            && self.tokens.iter().zip(&other.tokens).all(|(a, b)| a == b)
    }

    /// Whether one of the two is a prefix of the other (they overlap).
    pub fn overlaps(&self, other: &JsonPointer) -> bool {
        self.is_prefix_of(other) || other.is_prefix_of(self)
    }

    /// The value this pointer names in `doc`, if it exists.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.tokens.iter().try_fold(doc, |v, t| match v {
            Value::Object(m) => m.get(t),
            Value::Array(a) => a.get(array_index(t)?),
            _ => None,
        })
    }

    /// The value this pointer names in `doc`, mutably, if it exists.
    pub fn get_mut<'a>(&self, doc: &'a mut Value) -> Option<&'a mut Value> {
        self.tokens.iter().try_fold(doc, |v, t| match v {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => a.get_mut(array_index(t)?),
            _ => None,
        })
    }
}

/// A decimal array index without leading zeros; `-` and anything else is
/// `None`.
fn array_index(token: &str) -> Option<usize> {
    let b = token.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    token.parse().ok()
}

fn unescape(raw: &str) -> Result<String, PointerError> {
    if !raw.contains('~') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(PointerError::BadEscape),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc6901_section5_examples() {
        let doc = json!({
            "foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3,
            "g|h": 4, "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8
        });
        let cases: &[(&str, Value)] = &[
            ("", doc.clone()),
            ("/foo", json!(["bar", "baz"])),
            ("/foo/0", json!("bar")),
            ("/", json!(0)),
            ("/a~1b", json!(1)),
            ("/c%d", json!(2)),
            ("/e^f", json!(3)),
            ("/g|h", json!(4)),
            ("/i\\j", json!(5)),
            ("/k\"l", json!(6)),
            ("/ ", json!(7)),
            ("/m~0n", json!(8)),
        ];
        for (p, want) in cases {
            let ptr = JsonPointer::parse(p).unwrap();
            assert_eq!(ptr.get(&doc), Some(want), "{p}");
            assert_eq!(doc.pointer(p), Some(want), "serde_json agrees on {p}");
        }
    }

    #[test]
    fn escapes_apply_in_order() {
        let p = JsonPointer::parse("/~01").unwrap();
        assert_eq!(p.tokens(), ["~1"]);
        assert_eq!(JsonPointer::parse("/a~"), Err(PointerError::BadEscape));
        assert_eq!(JsonPointer::parse("/a~2"), Err(PointerError::BadEscape));
        assert_eq!(
            JsonPointer::parse("a"),
            Err(PointerError::MissingLeadingSlash)
        );
    }

    #[test]
    fn array_indices() {
        let doc = json!({"a": [10, 20], "o": {"01": "x"}});
        let get = |p: &str| JsonPointer::parse(p).unwrap().get(&doc).cloned();
        assert_eq!(get("/a/1"), Some(json!(20)));
        assert_eq!(get("/a/2"), None);
        assert_eq!(get("/a/01"), None);
        assert_eq!(get("/a/-"), None);
        assert_eq!(get("/a/+1"), None);
        assert_eq!(get("/o/01"), Some(json!("x")));
    }

    #[test]
    fn prefixes() {
        let p = |s: &str| JsonPointer::parse(s).unwrap();
        assert!(p("/a").is_prefix_of(&p("/a/b")));
        assert!(p("/a").is_prefix_of(&p("/a")));
        assert!(!p("/a/b").is_prefix_of(&p("/a")));
        assert!(!p("/a~1b").is_prefix_of(&p("/a/b")));
        assert!(p("").is_prefix_of(&p("/x")));
        assert!(p("/x").overlaps(&p("")));
    }
}
