//! Queries on an [`EncryptedContainer`]: [`EncryptedQuery`] (the SQL, its
//! parameters, some bound to encrypted paths) and [`ItemPages`] (the
//! results, decrypted page by page).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;

use azure_data_cosmos::feed::{ContinuationToken, QueryPageIterator};
use azure_data_cosmos::options::{MaxItemCountHint, QueryOptions};
use azure_data_cosmos::{FeedScope, Query};
use futures_util::StreamExt;
use serde_json::Value;

use super::container::EncryptedContainer;
use super::error::storage;
use super::format::Format;
use super::sdk::partition_key;
use super::sql::{scan, PathClass, Scanned};
use crate::document::JsonPointer;
use crate::error::Error;

/// A query on an [`EncryptedContainer`]: Cosmos DB SQL with parameters,
/// some of them **bound to an encrypted path** and encrypted for it before
/// the query is sent.
///
/// ```text
/// EncryptedQuery::new("SELECT * FROM c WHERE c.email = @email AND c.age > @min")
///     .with_encrypted_parameter("@email", "/email", json!("a@example.com"))
///     .with_parameter("@min", json!(30))
/// ```
///
/// Before anything is sent, [`EncryptedContainer::query`] checks the SQL
/// against the container's policy (a conservative scan, not a parser:
/// it may refuse a harmless query, never accepts a harmful one) and
/// refuses with [`Error::QueryRefused`] a query that would filter, order,
/// group or compute on an encrypted path, or send a plaintext meant for
/// one:
///
/// * a **deterministic** path may be compared only for equality, in a
///   `WHERE` clause, with parameters bound to exactly that path:
///   `c.email = @p`, `@p = c.email`, `c.email IN (@p, @q)`;
/// * a **randomized** path, an object or array holding encrypted values,
///   and the item itself can only be selected;
/// * only bound parameters may meet encrypted paths: a literal
///   (`c.email = 'a@example.com'`) or a plain parameter is refused;
/// * a bound parameter may appear only in such an equality;
/// * no comments, no `JOIN` or `IN` over a path that holds encrypted
///   values, `FROM` names the container (`FROM c`, `FROM c AS x`).
///
/// In the document format, deterministic fields keep the scope key
/// version they were written under, so each bound parameter is sent once
/// per version of the scope's record and an equality becomes `c.email IN
/// (@email__v1, @email__v2, …)`: it matches every item whatever version
/// wrote it. The SDK format sends one value per parameter.
///
/// Results must be whole items (`SELECT * FROM c`, or projections that
/// keep every encrypted path, `id` and, in the document format, `_cmk`):
/// every row is decrypted like a read item.
///
/// `Debug` shows the parameters' names and paths, never their values nor
/// the SQL text (which may hold plaintext literals).
#[derive(Clone)]
pub struct EncryptedQuery {
    sql: String,
    plain: Vec<(String, Value)>,
    encrypted: Vec<(String, String, Value)>,
    partition: Option<Value>,
    page_size: Option<NonZeroU32>,
    resume: Option<String>,
}

impl fmt::Debug for EncryptedQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedQuery")
            .field("sql_len", &self.sql.len())
            .field(
                "parameters",
                &self
                    .plain
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "encrypted_parameters",
                &self
                    .encrypted
                    .iter()
                    .map(|(n, p, _)| (n.as_str(), p.as_str()))
                    .collect::<Vec<_>>(),
            )
            .field("in_partition", &self.partition.is_some())
            .field("page_size", &self.page_size)
            .field("resumed", &self.resume.is_some())
            .finish()
    }
}

impl EncryptedQuery {
    /// A query over the whole container, with no parameters. No I/O.
    pub fn new(sql: impl Into<String>) -> EncryptedQuery {
        EncryptedQuery {
            sql: sql.into(),
            plain: Vec::new(),
            encrypted: Vec::new(),
            partition: None,
            page_size: None,
            resume: None,
        }
    }

    /// Adds the parameter `name` (`@min`), sent as `value`: for clear paths.
    pub fn with_parameter(mut self, name: impl Into<String>, value: Value) -> EncryptedQuery {
        self.plain.push((name.into(), value));
        self
    }

    /// Adds the parameter `name` bound to the deterministic encrypted
    /// `path` (a JSON Pointer such as `/email`; in the SDK format also a
    /// path below an encrypted property, `/address/city`): `value` is
    /// encrypted as the container encrypts that path.
    pub fn with_encrypted_parameter(
        mut self,
        name: impl Into<String>,
        path: impl Into<String>,
        value: Value,
    ) -> EncryptedQuery {
        self.encrypted.push((name.into(), path.into(), value));
        self
    }

    /// Runs the query in one logical partition (the plaintext partition
    /// key value; the container encrypts it when the format does).
    pub fn in_partition(mut self, partition_key: Value) -> EncryptedQuery {
        self.partition = Some(partition_key);
        self
    }

    /// Asks for pages of at most `n` items.
    pub fn page_size(mut self, n: NonZeroU32) -> EncryptedQuery {
        self.page_size = Some(n);
        self
    }

    /// Resumes the same query after the page a
    /// [`continuation`](ItemPages::continuation) token was taken at.
    pub fn resume_from(mut self, continuation: impl Into<String>) -> EncryptedQuery {
        self.resume = Some(continuation.into());
        self
    }
}

impl EncryptedQuery {
    /// Every parameter's name, checked: `@name`, each once.
    fn parameter_names(&self) -> crate::Result<Vec<&str>> {
        let mut names: Vec<&str> = Vec::new();
        let all = self.plain.iter().map(|(n, _)| n);
        for name in all.chain(self.encrypted.iter().map(|(n, _, _)| n)) {
            if !is_param_name(name) {
                return Err(Error::ApiMisuse(
                    "a query parameter's name must be `@` and a name of letters, digits and `_`",
                ));
            }
            if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                return Err(Error::ApiMisuse(
                    "a query parameter is named twice (names are compared ignoring case)",
                ));
            }
            names.push(name);
        }
        Ok(names)
    }
}

/// The JSON Pointer of the path a parameter is bound to, which must be a
/// deterministic encrypted path.
fn bound_path(format: &Format, name: &str, path: &str) -> crate::Result<String> {
    let pointer = JsonPointer::parse(path).map_err(|_| {
        Error::QueryRefused(format!(
            "parameter `{name}`: the path is not a JSON Pointer"
        ))
    })?;
    let why = match format.classify(pointer.tokens()) {
        PathClass::Deterministic => return Ok(pointer.as_str().to_owned()),
        PathClass::Randomized => {
            "is encrypted with randomized encryption: no value can be encrypted to compare with it"
        }
        PathClass::Opaque => {
            "is not an encrypted value (it holds encrypted values, or lies inside one)"
        }
        PathClass::Clear => "is not encrypted: pass the parameter with `with_parameter`",
    };
    Err(Error::QueryRefused(format!(
        "parameter `{name}` is bound to `{}`, which {why}",
        crate::untrusted::escape(pointer.as_str())
    )))
}

/// The name of the `i`-th value (from 0) of a parameter sent as several.
fn expanded(param: &str, i: usize) -> String {
    format!("{param}__v{}", i + 1)
}

/// The SDK query: the SQL with every equality on a parameter sent as
/// several values turned into `REF IN (@p__v1, …)`, and every parameter's
/// values. `names` are the query's own parameter names, which the
/// expansion must not take.
fn sdk_query(
    query: &EncryptedQuery,
    scanned: &Scanned,
    values: &HashMap<&str, Vec<Value>>,
    names: &[&str],
) -> crate::Result<Query> {
    let mut sql = query.sql.clone();
    for eq in scanned.equalities.iter().rev() {
        if eq.params.iter().all(|p| values[p.as_str()].len() == 1) {
            continue;
        }
        let list: Vec<String> = eq
            .params
            .iter()
            .flat_map(|p| match values[p.as_str()].len() {
                1 => vec![p.clone()],
                n => (0..n).map(|i| expanded(p, i)).collect(),
            })
            .collect();
        let reference = &query.sql[eq.reference.clone()];
        sql.replace_range(
            eq.span.clone(),
            &format!("{reference} IN ({})", list.join(", ")),
        );
    }
    let add = |q: Query, name: String, value: &Value| {
        q.with_parameter(name, value)
            .map_err(|_| Error::ApiMisuse("a query parameter does not serialize"))
    };
    let mut q = Query::from(sql);
    for (name, value) in &query.plain {
        q = add(q, name.clone(), value)?;
    }
    for (name, _, _) in &query.encrypted {
        let vs = &values[name.as_str()];
        if let [one] = vs.as_slice() {
            q = add(q, name.clone(), one)?;
            continue;
        }
        for (i, v) in vs.iter().enumerate() {
            let n = expanded(name, i);
            if names.contains(&n.as_str()) {
                return Err(Error::QueryRefused(format!(
                    "parameter `{n}` is a name this query needs for `{name}` (one per scope key version): rename it"
                )));
            }
            q = add(q, n, v)?;
        }
    }
    Ok(q)
}

fn is_param_name(name: &str) -> bool {
    name.strip_prefix('@').is_some_and(|n| {
        n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

impl EncryptedContainer {
    /// Checks `query` against the container's policy, encrypts its bound
    /// parameters, and starts it (see [`EncryptedQuery`] for the rules).
    /// Nothing is sent when the check refuses.
    ///
    /// Errors: [`Error::QueryRefused`]; [`Error::ApiMisuse`] for a
    /// parameter name that is not `@name` or is used twice; key errors
    /// while encrypting parameters; storage errors.
    ///
    /// Cost: no request until the first [`ItemPages::next_page`]; one
    /// encryption per bound parameter (and per scope key version in the
    /// document format).
    pub async fn query(&self, query: EncryptedQuery) -> crate::Result<ItemPages> {
        let format = self.format();
        let names = query.parameter_names()?;
        let mut bound = HashMap::new();
        for (name, path, _) in &query.encrypted {
            bound.insert(name.clone(), bound_path(format, name, path)?);
        }
        let scanned = scan(&query.sql, &|n| format.classify(n), &bound)?;
        let mut values: HashMap<&str, Vec<Value>> = HashMap::new();
        for (name, path, value) in &query.encrypted {
            values.insert(name, format.parameter_values(path, value).await?);
        }
        let q = sdk_query(&query, &scanned, &values, &names)?;
        let scope = match &query.partition {
            None => FeedScope::full_container(),
            Some(pk) => {
                let stored = format.stored(self.partition_key_path(), pk).await?;
                FeedScope::partition(partition_key(self.partition_key_path(), &stored)?)
            }
        };
        let mut options = QueryOptions::default();
        if let Some(n) = query.page_size {
            options = options.with_max_item_count(MaxItemCountHint::Limit(n));
        }
        if let Some(token) = query.resume {
            options = options.with_continuation_token(ContinuationToken::from_string(token));
        }
        let pages = self
            .client()
            .query_items::<Value>(q, scope, Some(options))
            .await
            .map_err(|e| storage("query items", &e))?
            .into_pages();
        Ok(ItemPages {
            pages,
            container: self.clone(),
        })
    }
}

/// The results of an [`EncryptedContainer::query`], page by page, each
/// page decrypted whole before it is returned.
pub struct ItemPages {
    pages: QueryPageIterator<Value>,
    container: EncryptedContainer,
}

impl fmt::Debug for ItemPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemPages")
            .field("container", &self.container.name())
            .finish_non_exhaustive()
    }
}

impl ItemPages {
    /// The next page of items, decrypted, or `None` after the last one.
    ///
    /// All or nothing: when one row fails to decrypt (modified, moved, not
    /// of this container's format), the page is an error and none of its
    /// rows is returned.
    ///
    /// Cost: one request; the format's decryption of each row.
    pub async fn next_page(&mut self) -> Option<crate::Result<Vec<Value>>> {
        let page = match self.pages.next().await? {
            Ok(p) => p,
            Err(e) => return Some(Err(storage("query items", &e))),
        };
        let mut rows = page.into_items();
        for row in rows.iter_mut() {
            if let Err(e) = self.container.format().decrypt(row).await {
                return Some(Err(e));
            }
        }
        Some(Ok(rows))
    }

    /// A token to resume the query after the last page returned
    /// ([`EncryptedQuery::resume_from`], with the same SQL and
    /// parameters), in this process or another one. It holds the
    /// service's positions, and for a query with `ORDER BY` the values the
    /// last item was ordered by: values of clear paths only (the scan
    /// refuses ordering on an encrypted one), so nothing an item encrypts.
    /// A token from elsewhere only moves where the same, checked query
    /// resumes: the SDK refuses one of another container. No I/O.
    pub fn continuation(&self) -> crate::Result<String> {
        self.pages
            .to_continuation_token()
            .map(|t| t.as_str().to_owned())
            .map_err(|e| storage("query continuation token", &e))
    }

    /// Every remaining item, decrypted. Cost: one request per page.
    pub async fn all(mut self) -> crate::Result<Vec<Value>> {
        let mut out = Vec::new();
        while let Some(page) = self.next_page().await {
            out.extend(page?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equalities_expand_to_one_value_per_version() {
        let classify = |n: &[String]| match n {
            [a] if a == "email" || a == "city" => PathClass::Deterministic,
            _ => PathClass::Clear,
        };
        let sql = "SELECT * FROM c WHERE c.email = @e AND (c.city IN (@c, @d) OR @e = c.email) AND c.n > @n";
        let q = EncryptedQuery::new(sql)
            .with_parameter("@n", serde_json::json!(5))
            .with_encrypted_parameter("@e", "/email", serde_json::json!("x"))
            .with_encrypted_parameter("@c", "/city", serde_json::json!("y"))
            .with_encrypted_parameter("@d", "/city", serde_json::json!("z"));
        let bound = [("@e", "/email"), ("@c", "/city"), ("@d", "/city")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        let scanned = scan(sql, &classify, &bound).unwrap();
        let two = |t: &str| {
            vec![
                serde_json::json!(format!("{t}1")),
                serde_json::json!(format!("{t}2")),
            ]
        };
        let values: HashMap<&str, Vec<Value>> = [
            ("@e", two("e")),
            ("@c", two("c")),
            ("@d", vec![serde_json::json!("d")]),
        ]
        .into();
        let names = q.parameter_names().unwrap();
        let out = serde_json::to_value(sdk_query(&q, &scanned, &values, &names).unwrap()).unwrap();
        assert_eq!(
            out["query"],
            "SELECT * FROM c WHERE c.email IN (@e__v1, @e__v2) AND (c.city IN (@c__v1, @c__v2, @d) OR c.email IN (@e__v1, @e__v2)) AND c.n > @n"
        );
        let params: Vec<(String, Value)> = out["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["value"].clone()))
            .collect();
        assert_eq!(params.len(), 6);
        assert!(params.contains(&("@e__v2".into(), serde_json::json!("e2"))));
        assert!(params.contains(&("@d".into(), serde_json::json!("d"))));
        // A name the expansion needs is taken.
        let q = q.with_parameter("@e__v1", serde_json::json!(0));
        let names = q.parameter_names().unwrap();
        assert!(matches!(
            sdk_query(&q, &scanned, &values, &names),
            Err(Error::QueryRefused(_))
        ));
    }

    #[test]
    fn parameter_names() {
        for ok in ["@a", "@_x1", "@email_2"] {
            assert!(is_param_name(ok), "{ok}");
        }
        for bad in ["a", "@", "@1a", "@a-b", "@a b", "@é"] {
            assert!(!is_param_name(bad), "{bad}");
        }
        // Names equal but for case: one parameter, given twice.
        let q = EncryptedQuery::new("SELECT * FROM c WHERE c.email = @e")
            .with_encrypted_parameter("@e", "/email", serde_json::json!("a@example.com"))
            .with_parameter("@E", serde_json::json!("a@example.com"));
        assert!(matches!(q.parameter_names(), Err(Error::ApiMisuse(_))));
        let q = EncryptedQuery::new("SELECT * FROM c WHERE c.ssn = '078-05-1120'")
            .with_encrypted_parameter("@e", "/email", serde_json::json!("secret@example.com"))
            .in_partition(serde_json::json!("tenant-secret"));
        let d = format!("{q:?}");
        assert!(!d.contains("secret") && !d.contains("078"), "{d}");
        assert!(d.contains("\"/email\""), "{d}");
    }
}
