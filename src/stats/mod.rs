//! stats (placeholder).
