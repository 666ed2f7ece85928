//! What the engine's integration tests share: the corpus of broken manifests.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

/// Each file of `tests/manifests/invalid` with the error its first line promises
/// (`# expect: …`), sorted by name.
pub fn broken_manifests() -> Result<Vec<(PathBuf, String)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/invalid");
    let mut files: Vec<PathBuf> =
        fs::read_dir(&dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = fs::read_to_string(&file)?;
            let expected = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .with_context(|| format!("{} has no # expect line", file.display()))?
                .to_owned();
            Ok((file, expected))
        })
        .collect()
}
