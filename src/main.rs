//! The `loftwatch` command line: run, validate, check, simulate and demo.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
