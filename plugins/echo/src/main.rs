//! The smallest worker plugin: answers every job with its input.
fn main() {
    plugwarden::plugin::serve(|input: &[u8]| Ok(input.to_vec()));
}
