//! The smallest worker plugin: answers every job with its input. Each
//! input frame is sent back as one part straight from where it arrived (a
//! bulk input sits in the shared arena), so echoing costs one copy and no
//! allocation, and an input of any size streams through in bounded memory.
fn main() {
    plugwarden_sdk::serve_stream(|chunk: &[u8], _last, parts| Ok(parts.send(chunk)?));
}
