//! `weir crds`: the CustomResourceDefinitions, printed or written to `crds/`.

use std::{fs, io::Write};

use anyhow::{Context as _, Result};
use weir_model::{Kind, crd};

use crate::cli::CrdsArgs;

/// Runs `weir crds`.
pub fn run(args: CrdsArgs, out: &mut impl Write) -> Result<()> {
    match args.out {
        None => {
            for (index, kind) in Kind::ALL.into_iter().enumerate() {
                if index > 0 {
                    writeln!(out, "---")?;
                }
                write!(out, "{}", crd::to_yaml(kind))?;
            }
        }
        Some(dir) => {
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for kind in Kind::ALL {
                let path = dir.join(crd::file_name(kind));
                fs::write(&path, crd::to_yaml(kind))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                writeln!(out, "wrote {}", path.display())?;
            }
        }
    }
    Ok(())
}
