//! The office converter: one Office or OpenDocument file per process in
//! on stdin, its PDF out on stdout, by LibreOffice headless inside the
//! `office` sandbox (a filter; how, in plugins/office-convert).
//!
//! Usage: `pw-office-convert` (the job's header names the format).

use std::path::Path;

use pw_office_convert::{convert, die_by, Failure, SOFFICE, WORKDIR};

fn main() {
    let result = convert(
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        Path::new(SOFFICE),
        Path::new(WORKDIR),
    );
    match result {
        Ok(()) => {}
        Err(Failure::Killed(sig)) => die_by(sig),
        Err(e) => {
            eprintln!("pw-office-convert: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
