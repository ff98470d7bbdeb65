//! `#!` lines, parsed as the kernel's binfmt_script does.

use super::SHEBANG_BUF;

/// A parsed `#!` line: the interpreter and the one optional argument the
/// kernel passes (the rest of the line, spaces included).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Shebang {
    pub(super) interpreter: Vec<u8>,
    pub(super) argument: Option<Vec<u8>>,
}

/// Parses `#!` like the kernel's binfmt_script: spaces and tabs separate, the
/// line ends at a newline or NUL, and an interpreter name cut off by the
/// 256-byte buffer is refused.
pub(super) fn parse_shebang(head: &[u8]) -> Result<Shebang, &'static str> {
    let body = head.strip_prefix(b"#!").ok_or("no #! at the start")?;
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let line = match body.iter().position(|&b| b == b'\n' || b == 0) {
        Some(end) => &body[..end],
        None if head.len() < SHEBANG_BUF => body,
        None => {
            let name_start = body.iter().position(|b| !is_blank(b)).unwrap_or(body.len());
            if !body[name_start..].iter().any(is_blank) {
                return Err("the interpreter path is longer than the 256 bytes the kernel reads");
            }
            body
        }
    };
    let start = line
        .iter()
        .position(|b| !is_blank(b))
        .ok_or("no interpreter after #!")?;
    let end = line
        .iter()
        .rposition(|b| !is_blank(b))
        .map_or(start, |last| last + 1);
    let line = &line[start..end];
    let (interpreter, rest) = match line.iter().position(is_blank) {
        Some(split) => line.split_at(split),
        None => (line, &[][..]),
    };
    let argument = rest
        .iter()
        .position(|b| !is_blank(b))
        .map(|arg_start| rest[arg_start..].to_vec());
    Ok(Shebang {
        interpreter: interpreter.to_vec(),
        argument,
    })
}
