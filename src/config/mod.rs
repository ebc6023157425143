//! Configuration: the TOML schema, its defaults and its validation.
//!
//! Loading happens in two stages: serde reads raw structs that reject unknown keys, then
//! validation turns them into [`Config`]. Every error names the file, line and column, the key
//! and the bad value.

mod types;

pub use types::*;
