//! Executable dependency discovery (owned by the elf work).
