//! A tiny bitmap font for stamping text into frames.
