//! notify (placeholder).
