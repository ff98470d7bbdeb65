//! Embedding in a tokio application.
//!
//! Two rules: `plugwarden::bootstrap()` runs before the runtime starts its
//! threads (so `main` builds the runtime itself instead of
//! `#[tokio::main]`), and sandbox calls block, so they go to
//! `spawn_blocking`. A `Sandbox` is `Send + Sync`: share it in an `Arc`.
//! (With the installed `plugwarden` as the fork server,
//! `ForkServer::with_helper`, no bootstrap is needed and `#[tokio::main]`
//! works as usual.)
//!
//! ```text
//! cargo run --example tokio -- [PLUGIN]
//! ```

use std::sync::Arc;

use plugwarden::{Sandbox, Verdict};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    plugwarden::bootstrap(); // before any thread
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(app())
}

async fn app() -> Result<(), Box<dyn std::error::Error>> {
    let plugin = std::env::args()
        .nth(1)
        .map_or_else(|| sibling("pw-echo"), Into::into);
    // Building compiles the profile in the fork server: blocking too.
    let sandbox = tokio::task::spawn_blocking(move || {
        Sandbox::builder(plugin)
            .policy("strict")
            .allow_weaker()
            .build()
    })
    .await??;
    let sandbox = Arc::new(sandbox);

    let mut handles = Vec::new();
    for i in 0..4 {
        let sandbox = sandbox.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            sandbox.run(format!("request {i}").as_bytes())
        }));
    }
    for handle in handles {
        let outcome = handle.await?;
        match outcome.verdict {
            Verdict::Ok => println!("ok: {}", String::from_utf8_lossy(&outcome.output)),
            other => return Err(format!("unexpected verdict: {other}").into()),
        }
    }
    Ok(())
}

fn sibling(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join(name))
        .expect("a target directory")
}
