//! The check every query on an encrypted container passes before it is
//! sent: a conservative scan of the Cosmos DB SQL text, not a parser.
//!
//! The scan tokenizes the query, finds the container alias of its
//! top-level `FROM` (and the aliases `JOIN x IN …` / `FROM x IN …`
//! introduce), and classifies every property reference (`c.a.b`,
//! `c["a"][0]`) against the container's encryption policy:
//!
//! | reference | where it may appear |
//! |---|---|
//! | a clear path (neither encrypted nor holding encrypted values) | anywhere |
//! | a deterministic path | only as `REF = @p`, `@p = REF` or `REF IN (@p, …)` in a `WHERE` clause, every `@p` a parameter bound to exactly that path; or as a bare projection in the top-level `SELECT` list |
//! | a randomized path, an object or array holding encrypted values (the container alias `c` itself included), or a path inside a value encrypted whole | only as a bare projection in the top-level `SELECT` list |
//!
//! Anything the scan does not recognise is refused: comments, unknown
//! names, a computed property name (`c[@p]`) that could reach an encrypted
//! path, `FROM` over a path, a subquery `FROM` that is not `x IN path`,
//! an iteration (`JOIN x IN path`) over a path that is encrypted or holds
//! encrypted values, and a parameter bound to a path used anywhere but in
//! an accepted equality. So the scan may refuse a harmless query; it never
//! accepts one that filters, orders, groups or computes on a ciphertext,
//! or that compares an encrypted path with a literal (which would send
//! the plaintext to the service).
//!
//! A comparison is accepted only when nothing can bind tighter than its
//! `=` on either side: the token before it is `WHERE`, `(`, `AND` or `OR`,
//! and the token after it is `)`, `AND`, `OR`, `ORDER`, `GROUP`,
//! `OFFSET`, `LIMIT` or the end. Refusals name the policy path and the
//! rule, never the query text (which may hold plaintext literals).
//!
//! Pure functions: no I/O, no keys.

mod token;

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use token::{tokenize, Tok, Token};

use crate::error::Error;

/// What a property reference points at, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathClass {
    /// Not encrypted, and holds nothing encrypted.
    Clear,
    /// Encrypted deterministically: equal values, equal ciphertexts.
    Deterministic,
    /// Encrypted with a random IV or nonce.
    Randomized,
    /// An object or array holding encrypted values, or a path inside a
    /// value encrypted whole.
    Opaque,
}

/// One accepted equality on a deterministic path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Equality {
    /// The bytes of the whole comparison in the query text.
    pub(crate) span: Range<usize>,
    /// The bytes of the property reference.
    pub(crate) reference: Range<usize>,
    /// The parameters compared with it, in order.
    pub(crate) params: Vec<String>,
}

/// A query the scan accepted.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// Every equality on a deterministic path, in text order.
    pub(crate) equalities: Vec<Equality>,
}

fn refuse(reason: impl Into<String>) -> Error {
    Error::QueryRefused(reason.into())
}

// ----- the scan -----------------------------------------------------------

#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "select", "from", "join", "where", "order", "group", "by", "offset", "limit", "top",
    "value", "distinct", "as", "in", "and", "or", "not", "between", "like", "escape", "asc",
    "desc", "exists", "array", "true", "false", "null", "undefined", "udf",
];

/// The keywords that may follow `FROM c` (with no alias).
const AFTER_FROM: &[&str] = &["where", "join", "order", "group", "offset"];

fn is_kw(t: &Tok<'_>, kw: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
}

fn is_keyword(s: &str) -> bool {
    KEYWORDS.iter().any(|k| s.eq_ignore_ascii_case(k))
}

fn is_punct(t: &Tok<'_>, p: &str) -> bool {
    matches!(t, Tok::Punct(q) if *q == p)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clause {
    None,
    Select,
    From,
    Where,
    OrderOrGroup,
    Paging,
}

/// A property reference starting at a known alias.
struct Reference {
    class: PathClass,
    /// The property names of the path, when it is static and under the
    /// container alias.
    names: Option<Vec<String>>,
    /// The token after it.
    end: usize,
}

struct Scan<'q, 'c> {
    toks: Vec<Token<'q>>,
    classify: &'c dyn Fn(&[String]) -> PathClass,
    /// The parameters bound to paths: name → JSON Pointer.
    bound: &'c HashMap<String, String>,
    root: Option<&'q str>,
    /// Aliases over clear paths (`JOIN t IN c.tags`).
    clear_aliases: HashSet<&'q str>,
    /// Whether the query has a `BETWEEN`.
    between: bool,
}

/// Scans `sql` (see the module docs). `classify` maps a path under the
/// container alias (its property names, array indices as decimal strings)
/// to its class; `bound` maps each parameter bound to a path to that
/// path's JSON Pointer.
pub(crate) fn scan(
    sql: &str,
    classify: &dyn Fn(&[String]) -> PathClass,
    bound: &HashMap<String, String>,
) -> crate::Result<Scanned> {
    let toks = tokenize(sql)?;
    let between = toks.iter().any(|t| is_kw(&t.tok, "between"));
    let mut s = Scan {
        toks,
        classify,
        bound,
        root: None,
        clear_aliases: HashSet::new(),
        between,
    };
    s.aliases()?;
    s.check()
}

impl<'q> Scan<'q, '_> {
    fn tok(&self, i: usize) -> Option<&Tok<'q>> {
        self.toks.get(i).map(|t| &t.tok)
    }

    /// The depth of every token (parentheses, brackets and braces).
    fn depths(&self) -> crate::Result<Vec<usize>> {
        let mut depth = 0usize;
        let mut out = Vec::with_capacity(self.toks.len());
        for t in &self.toks {
            if let Tok::Punct(p) = t.tok {
                if matches!(p, ")" | "]" | "}") {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| refuse("unbalanced parentheses or brackets"))?;
                }
                out.push(depth);
                if matches!(p, "(" | "[" | "{") {
                    depth += 1;
                }
            } else {
                out.push(depth);
            }
        }
        if depth != 0 {
            return Err(refuse("unbalanced parentheses or brackets"));
        }
        Ok(out)
    }

    /// Pass 1: the container alias (of the top-level `FROM`), then the
    /// aliases each `JOIN x IN path` and `FROM x IN path` introduces, in
    /// text order.
    fn aliases(&mut self) -> crate::Result<()> {
        let depths = self.depths()?;
        let from = |t: &Tok<'_>| is_kw(t, "from") || is_kw(t, "join");
        // The container alias, of the one top-level `FROM`.
        let top_from =
            (0..self.toks.len()).find(|&i| depths[i] == 0 && is_kw(&self.toks[i].tok, "from"));
        if let Some(i) = top_from {
            let iterates = self.tok(i + 2).is_some_and(|t| is_kw(t, "in"));
            let mut j = i + if iterates { 3 } else { 1 };
            let mut root = match self.tok(j) {
                Some(Tok::Ident(a)) if !is_keyword(a) => *a,
                _ => return Err(refuse("`FROM` must be followed by the container's name")),
            };
            if !iterates {
                // `FROM c`, `FROM c AS x`, `FROM c x`, `FROM root r`.
                let not_a_path = |j: usize| {
                    if self
                        .tok(j)
                        .is_some_and(|t| is_punct(t, ".") || is_punct(t, "[") || is_punct(t, "("))
                    {
                        return Err(refuse(
                            "`FROM` must name the container (`FROM c`), not a path in it",
                        ));
                    }
                    Ok(())
                };
                j += 1;
                not_a_path(j)?;
                let has_as = self.tok(j).is_some_and(|t| is_kw(t, "as"));
                if has_as {
                    j += 1;
                }
                // A keyword there may be the alias to the service: only
                // the clauses that can follow are read as keywords.
                match self.tok(j) {
                    Some(Tok::Ident(a)) if !is_keyword(a) => {
                        root = a;
                        not_a_path(j + 1)?;
                    }
                    Some(t) if !has_as && AFTER_FROM.iter().any(|k| is_kw(t, k)) => {}
                    None if !has_as => {}
                    _ => {
                        return Err(refuse(
                            "the container's alias must be a name that is not a keyword (`FROM c AS x`)",
                        ))
                    }
                }
            }
            // With `FROM x IN c.path`, `c` names the container.
            self.root = Some(root);
        }
        for (i, &depth) in depths.iter().enumerate() {
            let t = &self.toks[i].tok;
            if !from(t) {
                continue;
            }
            let alias = match self.tok(i + 1) {
                Some(Tok::Ident(a)) if !is_keyword(a) => *a,
                _ => {
                    return Err(refuse(
                        "`FROM` and `JOIN` must be followed by a name (subqueries there are not accepted)",
                    ))
                }
            };
            if !self.tok(i + 2).is_some_and(|t| is_kw(t, "in")) {
                if is_kw(t, "join") || depth != 0 {
                    return Err(refuse(
                        "`JOIN` must iterate (`JOIN x IN c.path`), and a subquery's `FROM` too (`FROM x IN c.path`)",
                    ));
                }
                if Some(i) != top_from {
                    return Err(refuse("a query has one top-level `FROM`"));
                }
                continue;
            }
            // `x IN path`: the path must be clear.
            let r = self
                .reference(i + 3)?
                .ok_or_else(|| refuse("`IN` must be followed by a path of the container"))?;
            if r.class != PathClass::Clear {
                return Err(refuse(format!(
                    "{}: a path that is encrypted or holds encrypted values cannot be iterated (`JOIN` or `IN`)",
                    self.describe_ref(&r)
                )));
            }
            self.clear_aliases.insert(alias);
        }
        Ok(())
    }

    /// The property reference starting at token `i`, if it starts with a
    /// known alias: `c`, `c.a`, `c["a"][0]`. A computed property name
    /// (`c.tags[@i]`) ends the reference before its `[`, and is accepted
    /// only below a clear path; the bracket's contents are then checked as
    /// any expression.
    fn reference(&self, i: usize) -> crate::Result<Option<Reference>> {
        let base = match self.tok(i) {
            Some(Tok::Ident(a)) => *a,
            _ => return Ok(None),
        };
        let under_root = Some(base) == self.root;
        if !under_root && !self.clear_aliases.contains(base) {
            return Ok(None);
        }
        let mut names: Vec<String> = Vec::new();
        let mut j = i + 1;
        let computed = loop {
            match self.tok(j) {
                Some(Tok::Punct(".")) => match self.tok(j + 1) {
                    Some(Tok::Ident(name)) => {
                        names.push((*name).to_owned());
                        j += 2;
                    }
                    _ => return Err(refuse("`.` must be followed by a property name")),
                },
                Some(Tok::Punct("[")) => {
                    let close = self.matching(j)?;
                    match (self.tok(j + 1), close == j + 2) {
                        (Some(Tok::Str(s)), true) => names.push(s.clone()),
                        (Some(Tok::Num(n)), true) if n.bytes().all(|b| b.is_ascii_digit()) => {
                            let n = n.trim_start_matches('0');
                            names.push(if n.is_empty() { "0" } else { n }.to_owned());
                        }
                        _ => break true,
                    }
                    j = close + 1;
                }
                _ => break false,
            }
        };
        if !under_root {
            return Ok(Some(Reference {
                class: PathClass::Clear,
                names: None,
                end: j,
            }));
        }
        let class = (self.classify)(&names);
        if computed && class != PathClass::Clear {
            return Err(refuse(format!(
                "a computed property name (`[...]`) below {} could reach an encrypted path",
                self.describe(&names)
            )));
        }
        Ok(Some(Reference {
            class,
            names: (!computed).then_some(names),
            end: j,
        }))
    }

    /// The index of the token closing the bracket at `open`.
    fn matching(&self, open: usize) -> crate::Result<usize> {
        let mut depth = 0usize;
        for (k, t) in self.toks.iter().enumerate().skip(open) {
            match t.tok {
                Tok::Punct("(" | "[" | "{") => depth += 1,
                Tok::Punct(")" | "]" | "}") => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(k);
                    }
                }
                _ => {}
            }
        }
        Err(refuse("unbalanced parentheses or brackets"))
    }

    /// Pass 2: every reference and bound parameter in its place.
    fn check(&self) -> crate::Result<Scanned> {
        let mut out = Scanned::default();
        // The clause of each open bracket level; index 0 is the query.
        let mut clauses = vec![Clause::None];
        let mut i = 0;
        while i < self.toks.len() {
            let t = &self.toks[i].tok;
            let clause = *clauses.last().expect("the query level");
            match t {
                Tok::Punct("(" | "[" | "{") => {
                    clauses.push(clause);
                    i += 1;
                }
                Tok::Punct(")" | "]" | "}") => {
                    clauses.pop();
                    i += 1;
                }
                // `.name` after `)` or `]`: a property of an expression
                // whose parts are checked where they stand.
                Tok::Ident(_) if i > 0 && self.tok(i - 1).is_some_and(|t| is_punct(t, ".")) => {
                    i += 1;
                }
                Tok::Ident(w) if is_keyword(w) => {
                    let new = if w.eq_ignore_ascii_case("select") {
                        // At the start of the query or of a subquery only.
                        let starts = match clauses.len() {
                            1 => i == 0,
                            _ => i > 0 && self.tok(i - 1).is_some_and(|t| is_punct(t, "(")),
                        };
                        if !starts {
                            return Err(refuse(
                                "`SELECT` starts the query or a parenthesized subquery only",
                            ));
                        }
                        Some(Clause::Select)
                    } else if w.eq_ignore_ascii_case("from") || w.eq_ignore_ascii_case("join") {
                        *clauses.last_mut().expect("a level") = Clause::From;
                        i = self.skip_from(i)?;
                        continue;
                    } else if w.eq_ignore_ascii_case("where") {
                        Some(Clause::Where)
                    } else if w.eq_ignore_ascii_case("order") || w.eq_ignore_ascii_case("group") {
                        Some(Clause::OrderOrGroup)
                    } else if w.eq_ignore_ascii_case("offset") || w.eq_ignore_ascii_case("limit") {
                        Some(Clause::Paging)
                    } else if w.eq_ignore_ascii_case("as") {
                        // `AS name` in a SELECT list: a declaration, not a
                        // reference (`FROM c AS x` is read by `skip_from`).
                        let declares = clause == Clause::Select
                            && matches!(self.tok(i + 1), Some(Tok::Ident(_)))
                            && !self.tok(i + 2).is_some_and(|t| {
                                is_punct(t, ".") || is_punct(t, "[") || is_punct(t, "(")
                            });
                        if !declares {
                            return Err(refuse(
                                "`AS` must be followed by a name, in a SELECT list",
                            ));
                        }
                        i += 2;
                        continue;
                    } else if w.eq_ignore_ascii_case("udf") {
                        // `udf.name(`
                        if self.tok(i + 1).is_some_and(|t| is_punct(t, "."))
                            && matches!(self.tok(i + 2), Some(Tok::Ident(_)))
                            && self.tok(i + 3).is_some_and(|t| is_punct(t, "("))
                        {
                            i += 3;
                            continue;
                        }
                        return Err(refuse("`udf` must be followed by `.name(`"));
                    } else {
                        None
                    };
                    if let Some(c) = new {
                        *clauses.last_mut().expect("a level") = c;
                    }
                    i += 1;
                }
                Tok::Ident(name) => {
                    if self.tok(i + 1).is_some_and(|t| is_punct(t, "(")) {
                        i += 1; // a function call
                        continue;
                    }
                    let Some(r) = self.reference(i)? else {
                        return Err(refuse(format!(
                            "the name `{name}` is not the container alias or an alias the query introduces"
                        )));
                    };
                    i = self.place(i, &r, clause, clauses.len() == 1, &mut out)?;
                }
                Tok::Param(p) => {
                    // A name that differs from a bound one only in case
                    // counts as that one (it is not bound to any path).
                    if let Some(path) = self.bound_path_of(p) {
                        // `@p = REF`
                        if clause == Clause::Where
                            && self.before_ok(i)
                            && self.tok(i + 1).is_some_and(|t| is_punct(t, "="))
                        {
                            if let Some(r) = self.reference(i + 2)? {
                                if r.class == PathClass::Deterministic
                                    && self.bound_to(p, &r)
                                    && self.after_ok(r.end)
                                {
                                    out.equalities.push(Equality {
                                        span: self.toks[i].span.start
                                            ..self.toks[r.end - 1].span.end,
                                        reference: self.toks[i + 2].span.start
                                            ..self.toks[r.end - 1].span.end,
                                        params: vec![(*p).to_owned()],
                                    });
                                    i = r.end;
                                    continue;
                                }
                            }
                        }
                        return Err(refuse(format!(
                            "parameter `{p}` is bound to `{}`: use it only as `c.path = {p}` or `c.path IN ({p}, ...)` in a `WHERE` clause",
                            crate::untrusted::escape(path)
                        )));
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
        Ok(out)
    }

    /// Past the `FROM`/`JOIN` specification at `i` (checked in pass 1).
    fn skip_from(&self, i: usize) -> crate::Result<usize> {
        if self.tok(i + 2).is_some_and(|t| is_kw(t, "in")) {
            return Ok(self
                .reference(i + 3)?
                .map(|r| r.end)
                .expect("checked in pass 1"));
        }
        let mut j = i + 2;
        if self.tok(j).is_some_and(|t| is_kw(t, "as")) {
            j += 1;
        }
        if matches!(self.tok(j), Some(Tok::Ident(a)) if !is_keyword(a)) {
            j += 1;
        }
        Ok(j)
    }

    /// The path of the bound parameter whose name is `param` up to ASCII
    /// case.
    fn bound_path_of(&self, param: &str) -> Option<&str> {
        self.bound
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(param))
            .map(|(_, path)| path.as_str())
    }

    fn bound_to(&self, param: &str, r: &Reference) -> bool {
        r.names
            .as_deref()
            .is_some_and(|n| self.bound.get(param) == Some(&pointer(n)))
    }

    /// How a refusal names the path `names`: by the policy's own paths
    /// only (the names come from the query text, which may hold
    /// plaintext): a path below an encrypted one is "a path inside" it.
    /// Escaped: an SDK-format policy comes from the service.
    fn describe(&self, names: &[String]) -> String {
        if names.is_empty() {
            return "the container alias (the whole item)".to_owned();
        }
        for k in 1..names.len() {
            if matches!(
                (self.classify)(&names[..k]),
                PathClass::Deterministic | PathClass::Randomized
            ) {
                return format!(
                    "a path inside `{}`",
                    crate::untrusted::escape(&pointer(&names[..k]))
                );
            }
        }
        format!("`{}`", crate::untrusted::escape(&pointer(names)))
    }

    fn describe_ref(&self, r: &Reference) -> String {
        r.names
            .as_deref()
            .map_or_else(|| "a path".to_owned(), |n| self.describe(n))
    }

    /// Whether the token before `i` cannot bind tighter than `=`. An `AND`
    /// counts only in a query without `BETWEEN` (whose `x BETWEEN a AND b`
    /// takes the next operand): there, parenthesize the comparison.
    fn before_ok(&self, i: usize) -> bool {
        i.checked_sub(1).and_then(|k| self.tok(k)).is_some_and(|t| {
            is_punct(t, "(")
                || is_kw(t, "where")
                || is_kw(t, "or")
                || (is_kw(t, "and") && !self.between)
        })
    }

    /// Whether the token at `i` cannot bind tighter than `=`.
    fn after_ok(&self, i: usize) -> bool {
        match self.tok(i) {
            None => true,
            Some(t) => {
                is_punct(t, ")")
                    || ["and", "or", "order", "group", "offset", "limit"]
                        .iter()
                        .any(|k| is_kw(t, k))
            }
        }
    }

    /// Checks the reference `r` at token `i`; returns the token after what
    /// it accepted.
    fn place(
        &self,
        i: usize,
        r: &Reference,
        clause: Clause,
        top: bool,
        out: &mut Scanned,
    ) -> crate::Result<usize> {
        if r.class == PathClass::Clear {
            return Ok(r.end);
        }
        // A bare projection in the top-level SELECT list.
        if top && clause == Clause::Select {
            let before = i.checked_sub(1).and_then(|k| self.tok(k));
            let after = self.tok(r.end);
            let top_arg = i
                .checked_sub(2)
                .and_then(|k| self.tok(k))
                .is_some_and(|t| is_kw(t, "top"))
                && matches!(before, Some(Tok::Num(_) | Tok::Param(_)));
            let before_ok = top_arg
                || before.is_some_and(|t| {
                    is_kw(t, "select")
                        || is_kw(t, "distinct")
                        || is_kw(t, "value")
                        || is_punct(t, ",")
                });
            let after_ok =
                after.is_some_and(|t| is_punct(t, ",") || is_kw(t, "as") || is_kw(t, "from"));
            if before_ok && after_ok {
                return Ok(r.end);
            }
        }
        if r.class == PathClass::Deterministic && clause == Clause::Where && self.before_ok(i) {
            if let Some((params, end)) = self.compared_params(r)? {
                if self.after_ok(end) && params.iter().all(|p| self.bound_to(p, r)) {
                    out.equalities.push(Equality {
                        span: self.toks[i].span.start..self.toks[end - 1].span.end,
                        reference: self.toks[i].span.start..self.toks[r.end - 1].span.end,
                        params: params.iter().map(|p| (*p).to_owned()).collect(),
                    });
                    return Ok(end);
                }
            }
        }
        Err(refuse(match r.class {
            PathClass::Deterministic => format!(
                "{} is encrypted deterministically: it can only be compared for equality with a parameter bound to it (`c.path = @p` or `c.path IN (@p, ...)` in a `WHERE` clause), or selected",
                self.describe_ref(r)
            ),
            PathClass::Randomized => format!(
                "{} is encrypted with randomized encryption: no query can filter, order, group or compute on it (it can only be selected)",
                self.describe_ref(r)
            ),
            _ => format!(
                "{} is, holds or lies inside encrypted values: it can only be selected",
                self.describe_ref(r)
            ),
        }))
    }

    /// After a reference: `= @p` or `IN (@p, @q, ...)`: the parameters'
    /// names and the token after them.
    fn compared_params(&self, r: &Reference) -> crate::Result<Option<(Vec<&'q str>, usize)>> {
        let j = r.end;
        match self.tok(j) {
            Some(t) if is_punct(t, "=") => match self.tok(j + 1) {
                Some(Tok::Param(p)) => Ok(Some((vec![*p], j + 2))),
                _ => Ok(None),
            },
            Some(t) if is_kw(t, "in") && self.tok(j + 1).is_some_and(|t| is_punct(t, "(")) => {
                let close = self.matching(j + 1)?;
                let mut params = Vec::new();
                let mut k = j + 2;
                while k < close {
                    match self.tok(k) {
                        Some(Tok::Param(p)) => params.push(*p),
                        _ => return Ok(None),
                    }
                    k += 1;
                    if k < close && !self.tok(k).is_some_and(|t| is_punct(t, ",")) {
                        return Ok(None);
                    }
                    k += 1;
                }
                Ok((!params.is_empty()).then_some((params, close + 1)))
            }
            _ => Ok(None),
        }
    }
}

/// The RFC 6901 JSON Pointer of a path.
pub(crate) fn pointer(names: &[String]) -> String {
    let mut p = String::new();
    for n in names {
        p.push('/');
        for c in n.chars() {
            match c {
                '~' => p.push_str("~0"),
                '/' => p.push_str("~1"),
                c => p.push(c),
            }
        }
    }
    p
}

#[cfg(test)]
mod tests;
