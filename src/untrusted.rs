//! Strings from untrusted input (a header's key ids, Azure client-side
//! encryption metadata, document paths) made safe to hold in an error.
//!
//! Whoever can write an envelope header can put any UTF-8 in a key id, up
//! to 2,048 bytes, sixteen times over. Printed raw in an error, that could
//! move a terminal's cursor or rewrite its title (escape sequences), reverse
//! the text around it (bidirectional overrides), or fill a log line with
//! 32 KiB. [`escape`] is the one place such strings pass through.

/// The longest untrusted string an error holds, in characters, before
/// escaping. Longer than any Azure Key Vault or Managed HSM key id (a URL of
/// at most ~220 characters) so that genuine ids are never cut.
pub(crate) const MAX_CHARS: usize = 256;

/// `s`, fit for an error message: its first [`MAX_CHARS`] characters, with
/// control characters, Unicode format characters (bidirectional overrides,
/// zero-width characters), quotes and backslashes escaped as Rust's
/// `escape_debug` does (`\u{1b}`, `\n`, `\"`, `\\`), and `…` appended when
/// it was cut. Printable text, including non-ASCII letters, is unchanged.
///
/// Cost: one allocation of at most about 10 × `MAX_CHARS` bytes.
pub(crate) fn escape(s: &str) -> String {
    let (head, cut) = match s.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => (&s[..at], true),
        None => (s, false),
    };
    let mut out: String = head.escape_debug().collect();
    if cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ids_are_unchanged() {
        for id in [
            "cmk-1",
            "https://vault-1.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef",
            "pkcs11:token=hsm;object=clé",
        ] {
            assert_eq!(escape(id), id);
        }
    }

    #[test]
    fn control_and_format_characters_are_escaped() {
        // a terminal title change, a colour, a newline, a right-to-left
        // override, a C1 control sequence introducer, a zero-width space
        let hostile = "a\u{1b}]0;owned\u{7}\u{1b}[31mred\nline\u{202e}txt\u{9b}2J\u{200b}";
        let e = escape(hostile);
        assert!(
            !e.chars()
                .any(|c| c.is_control() || ('\u{2000}'..='\u{206f}').contains(&c)),
            "{e}"
        );
        assert_eq!(
            e,
            "a\\u{1b}]0;owned\\u{7}\\u{1b}[31mred\\nline\\u{202e}txt\\u{9b}2J\\u{200b}"
        );
        assert_eq!(escape("q\"\\"), "q\\\"\\\\");
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let long = "é".repeat(2_048);
        let e = escape(&long);
        assert_eq!(e.chars().count(), MAX_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(escape(&"x".repeat(MAX_CHARS)), "x".repeat(MAX_CHARS));
        // the worst case stays bounded: every character escaped
        let e = escape(&"\u{1b}".repeat(40_000));
        assert!(e.len() <= 10 * MAX_CHARS + 3, "{}", e.len());
    }
}
