//! The `loftwatch` command line.

fn main() {}
