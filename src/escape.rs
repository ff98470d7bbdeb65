//! Untrusted text on its way to a terminal or a line-oriented log.
//!
//! Input file names, a plugin's stderr and its error messages are hostile
//! bytes: printed raw they can move the cursor, retitle or clear the
//! terminal (`\e]0;…\a`, `\e[2J`), break a verdict line in two and forge
//! the next one (`\nok      /etc/shadow`), or hide in invalid UTF-8 that a
//! lossy conversion turns into the same `�` for two different names. Every
//! such text goes through [`escape`] (or [`quote`], or the relay form
//! [`escape_lines`]) before it is shown: printable characters stay as they
//! are, `\` is doubled, control characters become `\n`, `\t`, `\r`, `\0` or
//! `\x1b`, other non-printable characters (bidi overrides, zero-width
//! marks) become `\u{202e}` as Rust's `escape_debug` writes them, and
//! bytes that are not UTF-8 become `\xff`. The result is one line that
//! reads the same on every terminal, and distinct inputs stay distinct.

use std::ffi::OsStr;
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;

/// `bytes` as one printable line (see the module docs).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(&mut out, bytes, Keep::Nothing);
    out
}

/// `bytes` escaped and between double quotes (`"` inside is `\"`): what a
/// verdict detail shows of text that came from the plugin.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    escape_into(&mut out, bytes, Keep::Nothing);
    out.push('"');
    out
}

/// A path or file name as one printable line.
pub fn name(name: impl AsRef<OsStr>) -> String {
    escape(name.as_ref().as_bytes())
}

/// The relay form: like [`escape`], but newlines and tabs pass through and
/// `\` stays single, so a plugin's multi-line stderr still reads as text
/// while no escape sequence reaches the terminal.
pub fn escape_lines(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(&mut out, bytes, Keep::Lines);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    /// `\n` and `\t` as they are, `\` undoubled.
    Lines,
}

fn escape_into(out: &mut String, bytes: &[u8], keep: Keep) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(out, c, keep);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

fn push_char(out: &mut String, c: char, keep: Keep) {
    match c {
        '\n' | '\t' if keep == Keep::Lines => out.push(c),
        '\\' if keep == Keep::Lines => out.push(c),
        '\\' => out.push_str("\\\\"),
        '"' if keep == Keep::Nothing => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\0' => out.push_str("\\0"),
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        // Printable as far as Rust's Debug knows (it escapes the rest:
        // C1 controls, bidi overrides, zero-width and unassigned marks).
        c if c == '\'' || c.escape_debug().len() == 1 => out.push(c),
        c => out.extend(c.escape_debug()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_escape_name_with_escape_sequence_and_newline_is_one_line() {
        let s = escape(b"evil\x1b[31mRED\x1b[0m\nnewline.txt");
        assert_eq!(s, "evil\\x1b[31mRED\\x1b[0m\\nnewline.txt");
    }

    #[test]
    fn test_escape_invalid_utf8_keeps_names_distinct() {
        assert_eq!(escape(b"bad\xff\xfename.txt"), "bad\\xff\\xfename.txt");
        assert_ne!(escape(b"bad\xff\xfe"), escape(b"bad\xff\xfd"));
    }

    #[test]
    fn test_escape_printable_unicode_and_quotes_stay() {
        assert_eq!(escape("résumé don't.pdf".as_bytes()), "résumé don't.pdf");
    }

    #[test]
    fn test_escape_backslash_is_doubled_so_the_form_is_unambiguous() {
        assert_eq!(escape(b"a\\x1b"), "a\\\\x1b");
        assert_ne!(escape(b"a\\x1b"), escape(b"a\x1b"));
    }

    #[test]
    fn test_escape_bidi_override_and_c1_control_are_escaped() {
        assert_eq!(escape("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        assert_eq!(escape("\u{9b}2J".as_bytes()), "\\u{9b}2J");
    }

    #[test]
    fn test_quote_title_sequence_and_forged_line_stay_inside_quotes() {
        let q = quote(b"\x1b]0;pwned\x07\x1b[2J\nok      /etc/shadow \"x\"");
        assert_eq!(
            q,
            "\"\\x1b]0;pwned\\x07\\x1b[2J\\nok      /etc/shadow \\\"x\\\"\""
        );
        assert!(!q.contains('\n'));
    }

    #[test]
    fn test_escape_lines_keeps_newline_and_tab_only() {
        assert_eq!(
            escape_lines(b"warn:\tx\n\x1b[2Jdone\\\r\n"),
            "warn:\tx\n\\x1b[2Jdone\\\\r\n"
        );
        assert_eq!(escape_lines(b"a\x07b\n"), "a\\x07b\n");
    }
}
