//! The `plugwarden` command: [`plugwarden::cli::main`] (the `cli` feature).
fn main() -> std::process::ExitCode {
    plugwarden::cli::main()
}
