//! The scan's unit and property tests: what it accepts, what it refuses
//! and why, against a small policy.

use super::*;

/// `/email` and `/addr` deterministic, `/ssn` and `/items/0/price`
/// randomized (document-format style: nested paths are whole values).
fn classify(names: &[String]) -> PathClass {
    let rules: &[(&[&str], PathClass)] = &[
        (&["email"], PathClass::Deterministic),
        (&["ssn"], PathClass::Randomized),
        (&["items", "0", "price"], PathClass::Randomized),
        (&["addr"], PathClass::Deterministic),
    ];
    for (path, class) in rules {
        if names.len() == path.len() && names.iter().zip(path.iter()).all(|(a, b)| a == b) {
            return *class;
        }
        let n = names.len().min(path.len());
        if names[..n].iter().zip(path[..n].iter()).all(|(a, b)| a == b) {
            return PathClass::Opaque;
        }
    }
    PathClass::Clear
}

fn bound() -> HashMap<String, String> {
    [("@e", "/email"), ("@f", "/email"), ("@a", "/addr")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

fn ok(sql: &str) -> Scanned {
    scan(sql, &classify, &bound()).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn refused(sql: &str) -> String {
    match scan(sql, &classify, &bound()) {
        Err(Error::QueryRefused(r)) => r,
        other => panic!("{sql}: accepted or other error: {other:?}"),
    }
}

#[test]
fn accepts_clear_filters_and_projections() {
    for sql in [
        "SELECT * FROM c",
        "SELECT * FROM c WHERE c.age > 5 ORDER BY c.name DESC",
        "select c.id, c.ssn, c.items FROM c where c.status IN ('a', 'b')",
        "SELECT VALUE c FROM c",
        "SELECT TOP 10 c.ssn FROM c",
        "SELECT DISTINCT c.email AS e FROM c",
        "SELECT * FROM root r WHERE r.age >= @min",
        "SELECT * FROM c AS x WHERE x.n = 1 OFFSET 0 LIMIT 5",
        "SELECT * FROM c JOIN t IN c.tags WHERE t.name = 'x'",
        "SELECT * FROM c WHERE EXISTS(SELECT VALUE t FROM t IN c.tags WHERE t = 'x')",
        "SELECT * FROM c WHERE ARRAY_CONTAINS(c.tags, 'x') AND udf.f(c.n) = 1",
        "SELECT * FROM c WHERE c.tags[@i] = 'x' AND c.items[1].price > 2",
        "SELECT * FROM c WHERE c['email2'] = 'literal'",
        "SELECT c.id FROM c WHERE c.value = 1 AND c.order = 2",
    ] {
        assert!(ok(sql).equalities.is_empty(), "{sql}");
    }
}

#[test]
fn accepts_equality_with_bound_parameters() {
    let sql =
        "SELECT * FROM c WHERE c.email = @e AND (@f = c.email OR c.addr IN (@a)) ORDER BY c.n";
    let s = ok(sql);
    let spans: Vec<&str> = s.equalities.iter().map(|e| &sql[e.span.clone()]).collect();
    assert_eq!(spans, ["c.email = @e", "@f = c.email", "c.addr IN (@a)"]);
    let refs: Vec<&str> = s
        .equalities
        .iter()
        .map(|e| &sql[e.reference.clone()])
        .collect();
    assert_eq!(refs, ["c.email", "c.email", "c.addr"]);
    assert_eq!(s.equalities[0].params, ["@e"]);
    let s = ok("SELECT * FROM c WHERE c[\"em\\u0061il\"] IN (@e, @f)");
    assert_eq!(s.equalities[0].params, ["@e", "@f"]);
    ok("SELECT * FROM c WHERE c.email = @e");
    ok("SELECT * FROM c WHERE NOT (c.email = @e) OFFSET 1 LIMIT 2");
    ok("SELECT * FROM c WHERE c.n BETWEEN 1 AND 2 AND (c.email = @e)");
}

#[test]
fn refuses_randomized_and_opaque_paths_outside_bare_projections() {
    for (sql, word) in [
        ("SELECT * FROM c WHERE c.ssn = @x", "randomized"),
        ("SELECT * FROM c WHERE c.ssn = 'x'", "randomized"),
        ("SELECT * FROM c ORDER BY c.ssn", "randomized"),
        ("SELECT * FROM c WHERE IS_DEFINED(c.ssn)", "randomized"),
        ("SELECT * FROM c WHERE c.items[0].price > 1", "randomized"),
        ("SELECT * FROM c WHERE c[\"s\\u0073n\"] = 'x'", "randomized"),
        ("SELECT * FROM c WHERE c.items = []", "holds"),
        ("SELECT * FROM c WHERE c = {}", "whole item"),
        (
            "SELECT * FROM c JOIN i IN c.items WHERE i.price > 1",
            "iterated",
        ),
        (
            "SELECT * FROM c WHERE EXISTS(SELECT VALUE i FROM i IN c.items)",
            "iterated",
        ),
        ("SELECT * FROM c WHERE c[@p] = 1", "computed"),
        ("SELECT * FROM c WHERE c.addr.city = @a", "holds"),
        ("SELECT c.ssn > 1 FROM c", "randomized"),
        ("SELECT {\"x\": c.ssn} FROM c", "randomized"),
        ("SELECT (SELECT VALUE c.ssn) FROM c", "randomized"),
        ("SELECT * FROM c GROUP BY c.ssn", "randomized"),
    ] {
        let r = refused(sql);
        assert!(r.contains(word), "{sql}: {r}");
        assert!(
            !r.contains("'x'"),
            "{sql}: the refusal quotes the query: {r}"
        );
    }
}

#[test]
fn refuses_deterministic_paths_except_bound_equality() {
    for sql in [
        "SELECT * FROM c WHERE c.email = 'plain@example.com'",
        "SELECT * FROM c WHERE c.email = @unbound",
        "SELECT * FROM c WHERE c.email = @a",
        "SELECT * FROM c WHERE c.email != @e",
        "SELECT * FROM c WHERE c.email > @e",
        "SELECT * FROM c ORDER BY c.email",
        "SELECT * FROM c ORDER BY (c.email = @e)",
        "SELECT * FROM c WHERE c.email = @e + 'x'",
        "SELECT * FROM c WHERE 'x' + c.email = @e",
        "SELECT * FROM c WHERE c.n ?? c.email = @e",
        "SELECT * FROM c WHERE NOT c.email = @e",
        "SELECT * FROM c WHERE c.email IN (@e, 'x')",
        "SELECT * FROM c WHERE STARTSWITH(c.email, @e)",
        "SELECT * FROM c WHERE c.n BETWEEN 1 AND c.email = @e",
        "SELECT * FROM c WHERE c.n BETWEEN 1 AND 2 AND c.email = @e",
        "SELECT c.email = @e FROM c",
    ] {
        let r = refused(sql);
        assert!(
            r.contains("`/email`") && !r.contains("plain@"),
            "{sql}: {r}"
        );
    }
}

#[test]
fn refuses_bound_parameters_used_elsewhere_and_what_it_cannot_read() {
    for (sql, word) in [
        ("SELECT * FROM c WHERE c.n = @e", "bound to `/email`"),
        ("SELECT @e FROM c", "bound to `/email`"),
        ("SELECT * FROM c WHERE c.n = @E", "bound to `/email`"),
        ("SELECT * FROM c WHERE c.email = @E", "`/email`"),
        (
            "SELECT * FROM c WHERE c.email = @e OR c.x = @e",
            "bound to `/email`",
        ),
        ("SELECT * FROM c -- comment", "comments"),
        ("SELECT * FROM c /* x */", "comments"),
        ("SELECT * FROM c WHERE d.email = 1", "`d`"),
        ("SELECT * FROM c.items", "not a path"),
        ("SELECT * FROM c WHERE c.a = `x`", "character"),
        ("SELECT * FROM c WHERE (c.a = 1", "unbalanced"),
        ("SELECT * FROM c WHERE c.a = 'open", "string literal"),
        (
            "SELECT * FROM c JOIN (SELECT VALUE 1) x",
            "followed by a name",
        ),
        (
            "SELECT * FROM c WHERE EXISTS(SELECT VALUE 1 FROM d)",
            "must iterate",
        ),
        ("SELECT * FROM c WHERE c.a = 'é' AND ü = 1", "character"),
    ] {
        let r = refused(sql);
        assert!(r.contains(word), "{sql}: {r}");
    }
}

proptest::proptest! {
    /// Any text: no panic. Token soups from the grammar's words: a
    /// randomized path never passes once a `WHERE`, `ORDER`, `GROUP`
    /// or `JOIN` was seen, nor a deterministic one after `ORDER` or
    /// `GROUP`, and a literal never meets `c.email`.
    #[test]
    fn never_panics_nor_accepts_a_filter_on_ciphertext(
        text in "\\PC{0,80}",
        words in proptest::collection::vec(proptest::sample::select(vec![
            "SELECT", "*", "FROM", "c", "WHERE", "c.email", "c.ssn", "c.n", "=", "@e", "@f",
            "(", ")", "AND", "OR", "NOT", "IN", "BETWEEN", ",", "'x'", "1", "JOIN", "t",
            "ORDER BY", "GROUP BY", "VALUE", "EXISTS", "c[\"ssn\"]", "c.items[0].price",
            "t IN c.tags", "?", ":", "+", "c", "DESC", "TOP 5", "udf.f(", "[", "]", "{",
            "}", "\"ssn\"", "ARRAY_CONTAINS(", "AS", "SELECT", "c.addr", "c.addr.city",
            "1c.ssn", "TOP 1c.email",
        ]), 0..24),
    ) {
        let _ = scan(&text, &classify, &bound());
        let sql = format!("SELECT * FROM c {}", words.join(" "));
        if scan(&sql, &classify, &bound()).is_ok() {
            let after = |kws: &[&str]| {
                words
                    .iter()
                    .position(|w| kws.contains(w))
                    .map_or(&[][..], |k| &words[k..])
            };
            let filtering = after(&["WHERE", "ORDER BY", "GROUP BY", "JOIN"]);
            proptest::prop_assert!(
                !filtering.iter().any(|w| ["c.ssn", "c[\"ssn\"]", "c.items[0].price", "1c.ssn", "TOP 1c.email"].contains(w)),
                "{sql}"
            );
            // After WHERE, `c.email` only in a comparison with `@e`
            // or `@f` (both bound to it).
            let w = after(&["WHERE"]);
            for (k, word) in w.iter().enumerate() {
                if *word != "c.email" {
                    continue;
                }
                let next = (w.get(k + 1).copied(), w.get(k + 2).copied());
                let prev = (k.checked_sub(2).map(|p| w[p]), k.checked_sub(1).map(|p| w[p]));
                let param = |p: Option<&str>| matches!(p, Some("@e" | "@f"));
                let ok = (next.0 == Some("=") && param(next.1))
                    || (param(prev.0) && prev.1 == Some("="))
                    || (next.0 == Some("IN") && next.1 == Some("("));
                proptest::prop_assert!(ok, "{sql}");
            }
            let ordering = after(&["ORDER BY", "GROUP BY"]);
            proptest::prop_assert!(!ordering.contains(&"c.email"), "{sql}");
            proptest::prop_assert!(
                !sql.contains("c.email = 'x'") && !sql.contains("'x' = c.email"),
                "{sql}"
            );
        }
    }
}

/// Refusals name policy paths, which in the SDK format come from the
/// service: escaped.
#[test]
fn refusals_escape_policy_paths() {
    let hostile = "x\u{1b}]0;t\u{7}\u{202e}";
    let classify = |n: &[String]| match n.first() {
        Some(f) if f.starts_with('x') && n.len() == 1 => PathClass::Randomized,
        Some(f) if f.starts_with('x') => PathClass::Opaque,
        _ => PathClass::Clear,
    };
    let bound = [("@p".to_owned(), format!("/{hostile}"))].into();
    for sql in [
        "SELECT * FROM c WHERE c[\"x\\u001b]0;t\\u0007\\u202e\"] = 1".to_owned(),
        "SELECT * FROM c WHERE c[\"x\\u001b]0;t\\u0007\\u202e\"].y = 1".to_owned(),
        "SELECT * FROM c WHERE c.n = @p".to_owned(),
    ] {
        let e = scan(&sql, &classify, &bound).unwrap_err().to_string();
        assert!(e.contains("x\\u{1b}"), "{sql}: {e}");
        assert!(
            !e.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{sql}: {e:?}"
        );
    }
}

/// A keyword where the container's alias goes: the service may take
/// it as the alias, so the scan must not read it as a keyword.
#[test]
fn refuses_keywords_as_the_container_alias() {
    for sql in [
        "SELECT * FROM c AS escape WHERE escape.ssn = 'x'",
        "SELECT * FROM c escape WHERE escape.ssn = 'x'",
        "SELECT * FROM c AS desc WHERE desc[\"ssn\"] = 'x'",
        "SELECT * FROM c undefined WHERE undefined.email = 'plain'",
        "SELECT * FROM c AS value ORDER BY value.ssn",
        "SELECT * FROM c AS WHERE c.n = 1",
    ] {
        let r = refused(sql);
        assert!(r.contains("alias"), "{sql}: {r}");
    }
    for sql in [
        "SELECT * FROM c WHERE c.n = 1",
        "SELECT * FROM c JOIN t IN c.tags",
        "SELECT * FROM c ORDER BY c.n",
        "SELECT * FROM c GROUP BY c.n",
        "SELECT * FROM c OFFSET 1 LIMIT 1",
        "SELECT * FROM c AS x where x.n = 1",
        "SELECT * FROM c x",
        "SELECT * FROM c WHERE EXISTS(SELECT VALUE t FROM t IN c.tags)",
    ] {
        ok(sql);
    }
}

/// A number runs into the name after it (`1c.ssn`): the service reads
/// `1` and `c.ssn`, so the scan must not read one token there.
#[test]
fn refuses_numbers_run_into_names() {
    for sql in [
        "SELECT * FROM c WHERE ARRAY(SELECT TOP 1c.email)[0].email = 'plain@example.com'",
        "SELECT * FROM c WHERE EXISTS(SELECT TOP 1c.ssn FROM t IN c.tags)",
        "SELECT * FROM c WHERE c.n = 1 OR 2c.ssn = 'x'",
        "SELECT * FROM c WHERE c.n = 1e-c.ssn",
        "SELECT * FROM c WHERE c.n = 1.c.ssn",
        "SELECT * FROM c WHERE c.n = 0xc",
        "SELECT * FROM c WHERE c.n = 1.5.x",
        "SELECT * FROM c WHERE c.n = 1@e",
    ] {
        let r = refused(sql);
        assert!(r.contains("number"), "{sql}: {r}");
    }
    for sql in [
        "SELECT * FROM c WHERE c.n = 1.5e+3 AND c.m IN (0, 1., 2.e5, 3E-2)",
        "SELECT TOP 5 c.ssn FROM c WHERE c.items[10].n>1",
        "SELECT * FROM c WHERE c.n=-1",
    ] {
        ok(sql);
    }
}

/// `sql` (tokens separated by single spaces, no space inside a string)
/// with each space replaced by `seps[k]` and each keyword's letters
/// in the case `upper[k]` picks.
fn respell(sql: &str, seps: &[&str], upper: &[u8]) -> String {
    let mut out = String::new();
    for (k, word) in sql.split(' ').enumerate() {
        if k > 0 {
            out.push_str(seps[k % seps.len()]);
        }
        if is_keyword(word) {
            let mask = upper[k % upper.len()];
            for (j, ch) in word.chars().enumerate() {
                if mask >> (j % 8) & 1 == 1 {
                    out.push(ch.to_ascii_uppercase());
                } else {
                    out.push(ch.to_ascii_lowercase());
                }
            }
        } else {
            out.push_str(word);
        }
    }
    out
}

proptest::proptest! {
    /// Whitespace and the case of keywords change nothing: what is
    /// refused stays refused, what is accepted stays accepted with the
    /// same equalities.
    #[test]
    fn whitespace_and_keyword_case_change_nothing(
        seps in proptest::collection::vec(
            proptest::sample::select(vec![" ", "  ", "\n", "\t", "\r\n", " \n\t"]),
            1..8,
        ),
        upper in proptest::collection::vec(proptest::num::u8::ANY, 1..8),
    ) {
        for sql in [
            "SELECT * FROM c WHERE c.ssn = 'x'",
            "SELECT * FROM c AS x WHERE x.n > 1 ORDER BY x.ssn DESC",
            "SELECT * FROM c WHERE c.n BETWEEN 1 AND c.email = @e",
            "SELECT * FROM c WHERE NOT c.email = @e",
            "SELECT * FROM c WHERE c.email IN ( @e , 'x' )",
            "SELECT * FROM c JOIN i IN c.items WHERE i.price > 1",
            "SELECT * FROM c WHERE EXISTS ( SELECT VALUE c.ssn )",
            "SELECT * FROM c AS value WHERE value.ssn = 1",
            "SELECT DISTINCT VALUE c.ssn ?? 1 FROM c",
            "SELECT * FROM c GROUP BY c.email",
            "SELECT TOP 1 * FROM c ORDER BY c.email",
            "SELECT * FROM c WHERE c.n = 1 OR c.email = @a",
        ] {
            let spelled = respell(sql, &seps, &upper);
            proptest::prop_assert!(
                scan(&spelled, &classify, &bound()).is_err(),
                "{spelled:?}"
            );
        }
        for sql in [
            "SELECT * FROM c WHERE c.email = @e AND ( @f = c.email OR c.addr IN ( @a ) ) ORDER BY c.n",
            "SELECT TOP 5 c.ssn , c.email AS e FROM c JOIN t IN c.tags WHERE t = 'x' AND c.email IN ( @e , @f )",
            "SELECT VALUE c FROM c WHERE NOT ( c.email = @e ) OFFSET 1 LIMIT 2",
        ] {
            let plain = scan(sql, &classify, &bound()).unwrap().equalities.len();
            let spelled = respell(sql, &seps, &upper);
            let s = scan(&spelled, &classify, &bound());
            proptest::prop_assert!(
                s.as_ref().is_ok_and(|s| s.equalities.len() == plain),
                "{spelled:?}: {s:?}"
            );
        }
    }
}

#[test]
fn pointers_escape() {
    assert_eq!(pointer(&["a/b".into(), "~".into()]), "/a~1b/~0");
}
