//! Named syscall groups (owned by the groups work).
