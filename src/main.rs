//! The `plugwarden` command: a thin layer over the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The same binary is its own fork server (see plugwarden::spawn).
    plugwarden::spawn::serve_if_requested();
    cli::main()
}
