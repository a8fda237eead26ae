//! Reports of runs in a bucket (`s3://...`): the run's records and table parts are copied to a
//! local folder first (the report reads them many times, by column and row group), and a
//! report written into the bucket is uploaded file by file, its `index.html` last, so that the
//! entry page appears only when every page it links to is there.

use std::path::Path;

use anyhow::{Context, Result};

use crate::location::Location;
use crate::output::store::Store;
use crate::output::tables::Table;

/// The folders of a run that a report reads, besides its `run.json` and `_manifest.json`:
/// the part markers and the tables.
fn folders() -> impl Iterator<Item = &'static str> {
    std::iter::once("_parts").chain(Table::ALL.iter().map(|t| t.name()))
}

/// A local copy of a run in a bucket, in a new temporary folder (private to this process's
/// user, under `TMPDIR`) removed when dropped.
pub struct LocalCopy {
    dir: tempfile::TempDir,
}

impl LocalCopy {
    /// Copies what a report reads of the run at `location`: its records, part markers and the
    /// committed part files of its tables (no temporary files), each streamed to its file.
    pub fn fetch(location: &Path) -> Result<LocalCopy> {
        let store = Store::open(&Location::of(location))?;
        let dir = tempfile::Builder::new()
            .prefix("layerwise-report-")
            .tempdir()
            .context("cannot create a temporary folder for the run's copy (see TMPDIR)")?;
        for folder in folders() {
            std::fs::create_dir_all(dir.path().join(folder))
                .with_context(|| format!("cannot create {}", dir.path().display()))?;
        }
        let mut names = vec!["run.json".to_owned(), "_manifest.json".to_owned()];
        for folder in folders() {
            for file in store.list(folder)? {
                if file.ends_with(".parquet") || file.ends_with(".json") {
                    names.push(format!("{folder}/{file}"));
                }
            }
        }
        for name in names {
            store.download(&name, &dir.path().join(&name))?;
        }
        Ok(LocalCopy { dir })
    }

    /// The local folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Uploads the report in `site` to `dest` (`s3://...`), its `index.html` last.
pub fn upload(site: &Path, dest: &Path) -> Result<()> {
    let store = Store::open(&Location::of(dest))?;
    let mut files = Vec::new();
    walk(site, site, &mut files)?;
    files.sort_by_key(|name| name == "index.html");
    for name in files {
        let bytes = std::fs::read(site.join(&name))
            .with_context(|| format!("cannot read {}", site.join(&name).display()))?;
        store
            .write(&name, bytes)
            .with_context(|| format!("cannot upload {name} to {}", store.display()))?;
    }
    Ok(())
}

/// The files under `dir`, as paths relative to `top` with `/` between folders.
fn walk(top: &Path, dir: &Path, files: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(top, &path, files)?;
        } else if let Ok(relative) = path.strip_prefix(top) {
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}
