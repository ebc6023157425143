//! simulator (placeholder).
