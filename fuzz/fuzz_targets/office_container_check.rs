//! Fuzz check for Office format detection: arbitrary bytes, taken as a
//! whole file, never make `sanitize::detect_file` panic, and what it
//! answers is consistent: an Office format only for a file that starts as
//! a ZIP, an OLE2 compound file or RTF, and every refusal has a message.
//!
//! The head given to detection is the file's first 64 KiB, as the host's
//! router gives it.

use plugwarden::sanitize::{detect_file, FileType, OfficeFormat};

/// Panics if detection misbehaves on `data` (see the module comment).
pub fn check(data: &[u8]) {
    let head = &data[..data.len().min(64 << 10)];
    match detect_file(head, data) {
        Ok(FileType::Office(format)) => {
            let container =
                data.starts_with(b"PK") || data.starts_with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1");
            let rtf = format == OfficeFormat::Rtf && data.starts_with(b"{\\rtf");
            assert!(
                container || rtf,
                "{format:?} from a file that is neither a container nor RTF"
            );
        }
        Ok(kind) => {
            assert!(
                !matches!(kind, FileType::Zip | FileType::Ole2),
                "a container left unexamined: {kind:?}"
            );
        }
        Err(e) => assert!(!e.to_string().is_empty(), "a refusal without a message"),
    }
}
