//! Grab scheduling, one-encode-per-frame sharing and reopen with backoff.
