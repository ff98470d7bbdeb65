//! The smallest worker plugin: answers every job with its input. The input
//! is sent back as one part straight from where it arrived (a bulk input
//! sits in the shared arena), so echoing costs one copy and no allocation.
fn main() {
    plugwarden::plugin::serve_parts(|input: &[u8], parts| parts.send(input));
}
