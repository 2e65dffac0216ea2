//! A JSON tree for metadata the crate parses strictly and writes back:
//! object members keep their order, duplicate names are refused, and the
//! accessors below name the field in every error (never its value).
//!
//! Used for the Azure Storage client-side encryption metadata and for the
//! Cosmos DB Always Encrypted key and policy resources, so that a rewrite
//! (a key rotation) changes only the fields it means to change.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A JSON value that keeps the order of object members and refuses
/// duplicate names (serde_json's own map would keep only the last one).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(n)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("a number that is not finite"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Json, E> {
                Ok(Json::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Json::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v: Vec<(String, Json)> = Vec::new();
                while let Some(entry) = a.next_entry::<String, Json>()? {
                    v.push(entry);
                }
                if let Some(name) = first_duplicate(v.iter().map(|(k, _)| k.as_str())) {
                    return Err(de::Error::custom(format!(
                        "duplicate field `{}`",
                        crate::untrusted::escape(name)
                    )));
                }
                Ok(Json::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(x) => s.serialize_str(x),
            Json::Array(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Json::Object(v) => {
                let mut m = s.serialize_map(Some(v.len()))?;
                for (k, x) in v {
                    m.serialize_entry(k, x)?;
                }
                m.end()
            }
        }
    }
}

/// The first name that `names` repeats, in one pass over a hash set:
/// linear, whereas comparing each name with all before it costs n²/2
/// comparisons (1.25 billion for the 50,000 members a 1 MB value holds).
pub(crate) fn first_duplicate<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

/// The member `key` of an object, if present.
pub(crate) fn get<'a>(o: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    o.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Replaces the value of the member `key`, if present, in place.
pub(crate) fn set(o: &mut [(String, Json)], key: &str, value: Json) {
    if let Some((_, v)) = o.iter_mut().find(|(k, _)| k == key) {
        *v = value;
    }
}

/// Typed accessors whose errors are built by one constructor (the caller's
/// metadata error variant); messages name the field and the expected type.
#[derive(Clone, Copy)]
pub(crate) struct Fields {
    bad: fn(String) -> Error,
}

impl Fields {
    /// Accessors reporting through `bad`.
    pub(crate) const fn new(bad: fn(String) -> Error) -> Fields {
        Fields { bad }
    }

    /// The error `bad(msg)`.
    pub(crate) fn err(&self, msg: impl Into<String>) -> Error {
        (self.bad)(msg.into())
    }

    /// `v` as an object; `name` names it in the error.
    pub(crate) fn obj<'a>(&self, v: &'a Json, name: &str) -> crate::Result<&'a [(String, Json)]> {
        match v {
            Json::Object(o) => Ok(o),
            other => Err(self.err(format!(
                "`{name}` must be an object, not {}",
                other.type_name()
            ))),
        }
    }

    /// The required member `key` of `o`, named `parent.key` in the error.
    pub(crate) fn req<'a>(
        &self,
        o: &'a [(String, Json)],
        parent: &str,
        key: &str,
    ) -> crate::Result<&'a Json> {
        get(o, key).ok_or_else(|| self.err(format!("`{parent}.{key}` is missing")))
    }

    /// `v` as a string.
    pub(crate) fn string<'a>(&self, v: &'a Json, name: &str) -> crate::Result<&'a str> {
        match v {
            Json::String(s) => Ok(s),
            other => Err(self.err(format!(
                "`{name}` must be a string, not {}",
                other.type_name()
            ))),
        }
    }

    /// `v` as a non-negative integer.
    pub(crate) fn uint(&self, v: &Json, name: &str) -> crate::Result<u64> {
        match v {
            Json::Number(n) => n
                .as_u64()
                .ok_or_else(|| self.err(format!("`{name}` must be a non-negative integer"))),
            other => Err(self.err(format!(
                "`{name}` must be an integer, not {}",
                other.type_name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_kept_and_duplicates_refused() {
        let j: Json =
            serde_json::from_str(r#"{"b":1,"a":[true,null,"x"],"c":{"z":1.5,"y":-2}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"b":1,"a":[true,null,"x"],"c":{"z":1.5,"y":-2}}"#
        );
        let e = serde_json::from_str::<Json>(r#"{"a":1,"b":{"c":1,"c":2}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `c`"), "{e}");
    }

    /// An object of 100,000 distinct members (1.5 MB) parses in linear
    /// time. (The duplicate check compared each name with every name
    /// before it: 5 × 10⁹ comparisons, many seconds of work.)
    /// Numbers keep their bits through a parse and a write (unknown members
    /// of metadata are written back as they were read): the value below is
    /// one the parser without `float_roundtrip` rounds to its neighbour.
    #[test]
    fn numbers_keep_their_bits() {
        let text = "1.3111111111111109e103";
        let want = text.parse::<f64>().unwrap();
        let j: Json = serde_json::from_str(&format!("{{\"n\":{text}}}")).unwrap();
        let Json::Object(o) = &j else { panic!("{j:?}") };
        let Some(Json::Number(n)) = get(o, "n") else {
            panic!("{j:?}")
        };
        assert_eq!(n.as_f64().unwrap().to_bits(), want.to_bits());
        let again: Json = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(again, j);
    }

    #[test]
    fn duplicate_check_is_linear() {
        let n = 100_000;
        let mut json = String::with_capacity(n * 16);
        json.push('{');
        for i in 0..n {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("\"k{i}\":{i}"));
        }
        json.push('}');
        let t = std::time::Instant::now();
        let j: Json = serde_json::from_str(&json).unwrap();
        let took = t.elapsed();
        assert!(matches!(&j, Json::Object(o) if o.len() == n));
        assert!(
            took < std::time::Duration::from_secs(2),
            "{n} members took {took:?}"
        );
        // A repeat at the very end is still found, and named.
        let dup = format!("{},\"k7\":0}}", &json[..json.len() - 1]);
        let e = serde_json::from_str::<Json>(&dup).unwrap_err();
        assert!(e.to_string().contains("duplicate field `k7`"), "{e}");
    }

    #[test]
    fn accessors_name_the_field() {
        let f = Fields::new(Error::CseMetadata);
        let j: Json = serde_json::from_str(r#"{"s":"v","n":-1,"o":{}}"#).unwrap();
        let o = f.obj(&j, "root").unwrap();
        assert_eq!(
            f.string(f.req(o, "root", "s").unwrap(), "root.s").unwrap(),
            "v"
        );
        for e in [
            f.req(o, "root", "missing").unwrap_err(),
            f.uint(get(o, "n").unwrap(), "root.n").unwrap_err(),
            f.string(get(o, "o").unwrap(), "root.o").unwrap_err(),
            f.obj(get(o, "s").unwrap(), "root.s").unwrap_err(),
        ] {
            let m = e.to_string();
            assert!(m.contains("`root."), "{m}");
            assert!(!m.contains("\"v\""), "no values in errors: {m}");
        }
    }
}
