//! Host side of `plugwarden sanitize` (owned by the sanitize work).
