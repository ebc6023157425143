//! salesloft (placeholder).
