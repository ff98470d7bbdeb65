//! Hash-chained JSON-lines audit log (owned by the audit work).
