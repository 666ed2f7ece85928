//! `weir validate`: checks manifests offline with the rules the apiserver enforces, printing one
//! error per bad document with its file, position and field.

use std::io::Write;

use anyhow::{Result, bail};

use crate::{cli::ValidateArgs, manifests};

/// Runs `weir validate`.
pub fn run(args: &ValidateArgs, out: &mut impl Write) -> Result<()> {
    let read = manifests::read(&args.sources)?;
    let total = read.len();
    match manifests::check(read) {
        Ok(_) => {
            writeln!(out, "{total} {} valid", documents(total))?;
            Ok(())
        }
        Err(invalid) => {
            let mut stderr = std::io::stderr().lock();
            for problem in &invalid {
                writeln!(stderr, "error: {problem}")?;
            }
            bail!("{} of {total} {} invalid", invalid.len(), documents(total))
        }
    }
}

fn documents(n: usize) -> &'static str {
    if n == 1 { "document is" } else { "documents are" }
}
