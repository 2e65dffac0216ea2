//! The tokens of Cosmos DB SQL the scan reads.

use std::ops::Range;

use super::refuse;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'a> {
    Ident(&'a str),
    Param(&'a str),
    Str(String),
    Num(&'a str),
    Punct(&'static str),
}

#[derive(Debug, Clone)]
pub(super) struct Token<'a> {
    pub(super) tok: Tok<'a>,
    pub(super) span: Range<usize>,
}

/// Operators and punctuation, longest first.
const PUNCT: &[&str] = &[
    ">>>", "!=", "<>", "<=", ">=", "||", "??", "<<", ">>", "(", ")", "[", "]", "{", "}", ",", ".",
    ":", "?", "!", "=", "<", ">", "+", "-", "*", "/", "%", "&", "|", "^", "~",
];

pub(super) fn tokenize(sql: &str) -> crate::Result<Vec<Token<'_>>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if sql[i..].starts_with("--") || sql[i..].starts_with("/*") {
            return Err(refuse(
                "comments are not accepted in queries on an encrypted container",
            ));
        }
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            i = ident_end(b, i);
            Tok::Ident(&sql[start..i])
        } else if c == b'@' {
            i = ident_end(b, i + 1);
            if i == start + 1 {
                return Err(refuse(format!("a lone `@` at byte {start}")));
            }
            Tok::Param(&sql[start..i])
        } else if c.is_ascii_digit() {
            i = number_end(b, i);
            // The service ends a number where its grammar does and reads
            // what follows as the next token: `1c.ssn` is `1` and `c.ssn`.
            // Refused rather than guessed.
            if b.get(i).is_some_and(|&n| {
                n.is_ascii_alphanumeric() || matches!(n, b'_' | b'.' | b'@' | b'$')
            }) {
                return Err(refuse(format!(
                    "a number at byte {start} runs into what follows it: put a space or an operator after it"
                )));
            }
            Tok::Num(&sql[start..i])
        } else if c == b'\'' || c == b'"' {
            let (text, end) = string_literal(sql, i)?;
            i = end;
            Tok::Str(text)
        } else if let Some(p) = PUNCT.iter().find(|p| sql[i..].starts_with(**p)) {
            i += p.len();
            Tok::Punct(p)
        } else {
            return Err(refuse(format!(
                "a character the scan does not accept at byte {start}"
            )));
        };
        out.push(Token {
            tok,
            span: start..i,
        });
    }
    Ok(out)
}

/// The end of the number starting at `i` (a digit): `digits`, then
/// optionally `.` and digits, then optionally `e` or `E`, a sign and
/// digits (an exponent without digits is not taken).
fn number_end(b: &[u8], mut i: usize) -> usize {
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    i = digits(i);
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let end = digits(i + 1 + sign);
        if end > i + 1 + sign {
            i = end;
        }
    }
    i
}

fn ident_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    i
}

/// The value of the string literal starting at `start` (its quote), with
/// its escapes decoded, and the byte after it.
fn string_literal(sql: &str, start: usize) -> crate::Result<(String, usize)> {
    let quote = sql.as_bytes()[start] as char;
    let bad = || refuse(format!("a string literal at byte {start} does not parse"));
    let mut out = String::new();
    let mut chars = sql[start + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, start + 1 + k + 1)),
            '\\' => {
                let (_, e) = chars.next().ok_or_else(bad)?;
                match e {
                    '\'' | '"' | '\\' | '/' => out.push(e),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let hi = hex4(&mut chars).ok_or_else(bad)?;
                        let code = if (0xD800..0xDC00).contains(&hi) {
                            let lo = match (chars.next(), chars.next()) {
                                (Some((_, '\\')), Some((_, 'u'))) => hex4(&mut chars),
                                _ => None,
                            };
                            match lo {
                                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                _ => return Err(bad()),
                            }
                        } else {
                            hi
                        };
                        out.push(char::from_u32(code).ok_or_else(bad)?);
                    }
                    _ => return Err(bad()),
                }
            }
            c => out.push(c),
        }
    }
    Err(bad())
}

/// Four hexadecimal digits.
fn hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.1.to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_literals_decode_escapes_and_surrogates() {
        assert_eq!(
            string_literal(r#"'a\'b\u00e9\ud83d\ude00'"#, 0).unwrap().0,
            "a'bé😀"
        );
        assert!(string_literal(r"'\ud83d'", 0).is_err());
        assert!(string_literal(r"'\q'", 0).is_err());
        assert!(string_literal("'open", 0).is_err());
    }

    #[test]
    fn tokens() {
        let t = tokenize("SELECT c[\"a\"], 1e+5 FROM c WHERE c.x >= @p_1").unwrap();
        let kinds: Vec<&Tok<'_>> = t.iter().map(|t| &t.tok).collect();
        assert_eq!(kinds[2], &Tok::Punct("["));
        assert_eq!(kinds[3], &Tok::Str("a".into()));
        assert_eq!(kinds[6], &Tok::Num("1e+5"));
        assert_eq!(kinds[kinds.len() - 2], &Tok::Punct(">="));
        assert_eq!(kinds[kinds.len() - 1], &Tok::Param("@p_1"));
        assert!(tokenize("a -- b").is_err());
        assert!(tokenize("a /* b */").is_err());
        assert!(tokenize("a ` b").is_err());
        assert!(tokenize("@ x").is_err());
    }
}
