//! The synthetic test-pattern source.
