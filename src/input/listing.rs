//! Listing: the images of a folder (a walk of `input.root`) or of `input.list`, in a stable
//! order that gives each its `image_id`.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::config::LabelSource;
use crate::error::PlanError;
use crate::input::{Content, Sample};
use crate::plan::FilesSpec;

/// The images of a folder or list, sorted by path relative to `spec.root` (bytewise),
/// numbered from 0, and cut to `limit`: the files of `spec.list` when given, else those with a
/// wanted extension found by walking `spec.root`. A file the listing already knows to be
/// unusable (a broken link, an unreadable folder) is a sample whose content has failed.
pub fn list(spec: &FilesSpec, limit: Option<usize>) -> Result<Vec<Sample>, PlanError> {
    let mut found = match &spec.list {
        Some(list) => read_list(list, &spec.root)?,
        None => walk(spec),
    };
    found.sort_by(|a, b| a.relative.as_bytes().cmp(b.relative.as_bytes()));
    found.dedup_by(|a, b| a.relative == b.relative);
    found.truncate(limit.unwrap_or(usize::MAX));
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(i, f)| Sample {
            image_id: i as u64,
            label: f.label.or_else(|| label(spec.label, &f.relative)),
            content: match f.problem {
                Some(problem) => Content::Failed(problem),
                None => Content::File(f.path),
            },
            path: f.relative,
            source: None,
            key: None,
        })
        .collect())
}

/// Writes a listing as a Parquet file with `path` and `label` columns, which `input.list`
/// takes (with the same `root`): an array of tasks then reads one file instead of each walking
/// the tree. The file appears whole or not at all.
pub fn write_list(samples: &[Sample], file: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    let paths: ArrayRef = std::sync::Arc::new(StringArray::from_iter_values(
        samples.iter().map(|s| s.path.as_str()),
    ));
    let labels: ArrayRef = std::sync::Arc::new(StringArray::from_iter(
        samples.iter().map(|s| s.label.as_deref()),
    ));
    let batch = RecordBatch::try_from_iter([("path", paths), ("label", labels)])?;
    let name = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let temporary = file.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> anyhow::Result<()> {
        let out = std::fs::File::create(&temporary)?;
        let mut writer = parquet::arrow::ArrowWriter::try_new(out, batch.schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
        std::fs::rename(&temporary, file)?;
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
        .with_context(|| format!("cannot write the listing to {}", file.display()))
}

/// Lists the folder or list input of the config at `config` (no model needed) and writes
/// the listing to `file` with [`write_list`]; returns the number of paths written.
pub fn write_config_list(config_path: &Path, file: &Path) -> anyhow::Result<usize> {
    let config = crate::plan::read_config(config_path)?;
    let spec = crate::plan::input_spec(&config, &crate::plan::Overrides::default())
        .map_err(|e| e.in_file(config_path))?;
    let crate::plan::InputSource::Files(files) = &spec.source else {
        return Err(PlanError::invalid(
            "input",
            "names shards (webdataset or parquet), which need no listing: each task reads only \
             its own shards; `layerwise list` is for folder and list inputs",
        )
        .in_file(config_path)
        .into());
    };
    let samples = list(files, None)?;
    write_list(&samples, file)?;
    Ok(samples.len())
}

/// A file found, before numbering.
struct Found {
    relative: String,
    path: PathBuf,
    label: Option<String>,
    problem: Option<String>,
}

/// Walks `spec.root`; files that the walk finds but cannot look at (broken links, loops) are
/// listed with a `problem`, and so is each folder that cannot be read (one row for the folder,
/// since its files cannot be seen).
fn walk(spec: &FilesSpec) -> Vec<Found> {
    let mut found = Vec::new();
    for item in WalkDir::new(&spec.root).follow_links(true) {
        match item {
            Ok(entry) if entry.file_type().is_file() => {
                if has_extension(entry.path(), &spec.extensions) {
                    found.push(Found {
                        relative: relative_path(&spec.root, entry.path()),
                        path: entry.into_path(),
                        label: None,
                        problem: None,
                    });
                }
            }
            Ok(_) => {}
            Err(err) => match err.path().map(|p| (p, p.is_dir())) {
                Some((path, folder)) if folder || has_extension(path, &spec.extensions) => found
                    .push(Found {
                        relative: relative_path(&spec.root, path),
                        path: path.to_owned(),
                        label: None,
                        problem: Some(walk_problem(&err, folder)),
                    }),
                _ => tracing::warn!("listing {}: {err}", spec.root.display()),
            },
        }
    }
    found
}

/// Reads a list of images: `.csv` and `.parquet` files by their `path` (and `label`) columns,
/// anything else as text with one path per line (blank lines and `#` comments skipped).
fn read_list(list: &Path, root: &Path) -> Result<Vec<Found>, PlanError> {
    let problem = |message: String| {
        PlanError::invalid("input.list", format!("{}: {message}", list.display()))
    };
    let extension = list
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let rows: Vec<(String, Option<String>)> = match extension.as_deref() {
        Some("csv") => read_csv(list).map_err(problem)?,
        Some("parquet") => read_parquet_list(list).map_err(problem)?,
        _ => std::fs::read_to_string(list)
            .map_err(|e| problem(e.to_string()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| (l.to_owned(), None))
            .collect(),
    };
    Ok(rows
        .into_iter()
        .map(|(path, label)| {
            let full = root.join(&path);
            Found {
                relative: relative_path(root, &full),
                path: full,
                label: label.filter(|l| !l.is_empty()),
                problem: None,
            }
        })
        .collect())
}

fn read_csv(list: &Path) -> Result<Vec<(String, Option<String>)>, String> {
    let mut reader = csv::Reader::from_path(list).map_err(|e| e.to_string())?;
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let path =
        column("path").ok_or("it has no `path` column (its first line names the columns)")?;
    let label = column("label");
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let field = |i: usize| record.get(i).unwrap_or("").to_owned();
        rows.push((field(path), label.map(field)));
    }
    Ok(rows)
}

fn read_parquet_list(list: &Path) -> Result<Vec<(String, Option<String>)>, String> {
    let file = std::fs::File::open(list).map_err(|e| e.to_string())?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let paths = batch
            .column_by_name("path")
            .ok_or("it has no `path` column")?;
        let labels = batch.column_by_name("label");
        for i in 0..batch.num_rows() {
            let path = text_at(paths, i)?.ok_or("a `path` is null")?;
            let label = labels.map(|l| text_at(l, i)).transpose()?.flatten();
            rows.push((path, label));
        }
    }
    Ok(rows)
}

/// Row `i` of a text column (any of Arrow's string types); `None` when null.
fn text_at(column: &arrow_array::ArrayRef, i: usize) -> Result<Option<String>, String> {
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType;
    if column.is_null(i) {
        return Ok(None);
    }
    let text = match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().value(i),
        DataType::LargeUtf8 => column.as_string::<i64>().value(i),
        DataType::Utf8View => column.as_string_view().value(i),
        other => return Err(format!("a column holds {other}, not text")),
    };
    Ok(Some(text.to_owned()))
}

fn has_extension(path: &Path, extensions: &[String]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The path below `root` with `/` separators (a path outside `root`, from a list, is kept
/// whole). Names that are not UTF-8 are recorded losslessly: each byte that is not part of
/// valid UTF-8 is written `\xNN` (as Python's `backslashreplace` does), and a backslash in
/// such a name as `\\`, so distinct names stay distinct.
fn relative_path(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(relative) => relative
            .components()
            .map(|c| escape_name(c.as_os_str()))
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => escape_name(path.as_os_str()),
    }
}

/// `name` as text: itself when it is UTF-8, else escaped as [`relative_path`] says.
pub(crate) fn escape_name(name: &std::ffi::OsStr) -> String {
    match name.to_str() {
        Some(text) => text.to_owned(),
        None => escape_bytes(name.as_encoded_bytes()),
    }
}

/// A name's bytes as text: each byte that is not part of valid UTF-8 is written `\xNN`, and a
/// backslash as `\\` when there is any such byte, so distinct names stay distinct.
pub(crate) fn escape_bytes(name: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(name) {
        return text.to_owned();
    }
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

fn label(source: LabelSource, relative: &str) -> Option<String> {
    match source {
        LabelSource::None => None,
        LabelSource::Parent => {
            let (dir, _) = relative.rsplit_once('/')?;
            Some(dir.rsplit('/').next().unwrap_or(dir).to_owned())
        }
    }
}

fn walk_problem(err: &walkdir::Error, folder: bool) -> String {
    let what = if folder {
        "unreadable folder (its files could not be listed)"
    } else {
        "unreadable"
    };
    if err.loop_ancestor().is_some() {
        return format!("{what}: symbolic link loop");
    }
    match err.io_error() {
        Some(io) if io.kind() == std::io::ErrorKind::NotFound => {
            format!("{what}: broken symbolic link")
        }
        Some(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("{what}: permission denied")
        }
        Some(io) => format!("{what}: {io}"),
        None => format!("{what}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(root: &Path, label: LabelSource) -> FilesSpec {
        FilesSpec {
            list: None,
            root: root.to_owned(),
            extensions: vec!["jpg".into(), "png".into()],
            label,
        }
    }

    fn list_ok(spec: &FilesSpec) -> Vec<Sample> {
        list(spec, None).unwrap()
    }

    fn problem(sample: &Sample) -> Option<&str> {
        match &sample.content {
            Content::Failed(problem) => Some(problem),
            _ => None,
        }
    }

    fn touch(root: &Path, relative: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn sorted_bytewise_numbered_and_labelled() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "woman/b.JPG",
            "man/z.png",
            "man/a.jpg",
            "man/notes.txt",
            "top.png",
            "Man/c.jpg",
        ] {
            touch(dir.path(), f);
        }
        let entries = list_ok(&spec(dir.path(), LabelSource::Parent));
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.image_id, e.path.as_str(), e.label.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (0, "Man/c.jpg", Some("Man")),
                (1, "man/a.jpg", Some("man")),
                (2, "man/z.png", Some("man")),
                (3, "top.png", None),
                (4, "woman/b.JPG", Some("woman")),
            ]
        );
        assert!(entries.iter().all(|e| problem(e).is_none()));
    }

    #[test]
    fn limit_and_no_labels() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a/1.jpg", "a/2.jpg", "b/deep/3.jpg"] {
            touch(dir.path(), f);
        }
        let entries = list(&spec(dir.path(), LabelSource::None), Some(2)).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e.label.is_none()));
        let all = list_ok(&spec(dir.path(), LabelSource::Parent));
        assert_eq!(all[2].label.as_deref(), Some("deep"));
    }

    #[cfg(unix)]
    #[test]
    fn broken_links_are_listed_with_their_problem() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a/ok.jpg");
        std::os::unix::fs::symlink(dir.path().join("gone.jpg"), dir.path().join("a/link.jpg"))
            .unwrap();
        let entries = list_ok(&spec(dir.path(), LabelSource::Parent));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "a/link.jpg");
        assert_eq!(
            problem(&entries[0]),
            Some("unreadable: broken symbolic link")
        );
        assert_eq!(problem(&entries[1]), None);
    }

    fn list_spec(root: &Path, list: &Path) -> FilesSpec {
        FilesSpec {
            list: Some(list.to_owned()),
            ..spec(root, LabelSource::Parent)
        }
    }

    fn summary(entries: &[Sample]) -> Vec<(String, Option<String>)> {
        entries
            .iter()
            .map(|e| (e.path.clone(), e.label.clone()))
            .collect()
    }

    fn pair(path: &str, label: Option<&str>) -> (String, Option<String>) {
        (path.to_owned(), label.map(String::from))
    }

    #[test]
    fn text_lists_are_sorted_deduplicated_and_labelled_by_folder() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("files.txt");
        std::fs::write(
            &list,
            "# a manifest\nb/2.jpg\n\na/1.png\nb/2.jpg\n/elsewhere/x.jpg\n",
        )
        .unwrap();
        let entries = list_ok(&list_spec(dir.path(), &list));
        assert_eq!(
            summary(&entries),
            [
                pair("/elsewhere/x.jpg", Some("elsewhere")),
                pair("a/1.png", Some("a")),
                pair("b/2.jpg", Some("b"))
            ]
        );
        assert_eq!(
            entries[1].content,
            Content::File(dir.path().join("a/1.png"))
        );
        assert_eq!(entries[2].image_id, 2);
    }

    #[test]
    fn names_that_are_not_utf8_are_escaped_losslessly() {
        assert_eq!(escape_bytes(b"cat/a.jpg"), "cat/a.jpg");
        assert_eq!(
            escape_bytes(b"a\\b.jpg"),
            "a\\b.jpg",
            "UTF-8 names stay as they are"
        );
        assert_eq!(escape_bytes(b"caf\xe9\\x.jpg"), "caf\\xe9\\\\x.jpg");
    }

    #[test]
    fn csv_and_parquet_lists_carry_labels() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("files.csv");
        std::fs::write(&csv, "label,path\nwoman,\"x/with, comma.jpg\"\n,y/2.jpg\n").unwrap();
        assert_eq!(
            summary(&list_ok(&list_spec(dir.path(), &csv))),
            [
                pair("x/with, comma.jpg", Some("woman")),
                pair("y/2.jpg", Some("y"))
            ]
        );
        let parquet = dir.path().join("files.parquet");
        let batch = arrow_array::RecordBatch::try_from_iter([
            (
                "path",
                std::sync::Arc::new(arrow_array::StringArray::from(vec!["q/1.jpg", "p/2.jpg"]))
                    as arrow_array::ArrayRef,
            ),
            (
                "label",
                std::sync::Arc::new(arrow_array::LargeStringArray::from(vec![Some("man"), None]))
                    as arrow_array::ArrayRef,
            ),
        ])
        .unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&parquet).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        assert_eq!(
            summary(&list_ok(&list_spec(dir.path(), &parquet))),
            [pair("p/2.jpg", Some("p")), pair("q/1.jpg", Some("man"))]
        );
        std::fs::write(&csv, "file\nx.jpg\n").unwrap();
        let err = list(&list_spec(dir.path(), &csv), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("it has no `path` column (its first line names the columns)"),
            "{err}"
        );
    }
}
