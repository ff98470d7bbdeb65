//! Test plugin: answers every job with its input, and leaks 8 MiB of
//! memory it has written to (so it counts in the resident set) on every
//! job. A host that never recycles it watches its RSS grow without bound;
//! `worker.recycle_rss` must retire it.

/// Bytes leaked per job.
const LEAK: usize = 8 << 20;

fn main() {
    plugwarden_sdk::serve(|input: &[u8]| {
        let leaked: &'static mut [u8] = Box::leak(vec![0u8; LEAK].into_boxed_slice());
        // Touch every page: zeroed pages from calloc are not resident yet.
        for page in leaked.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&leaked);
        Ok(input.to_vec())
    });
}
