//! Listing: the image files under `input.root`, in a stable order that gives each its `image_id`.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::config::LabelSource;
use crate::plan::InputSpec;

/// One file of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Ordinal in the sorted listing.
    pub image_id: u64,
    /// Full path to read.
    pub path: PathBuf,
    /// Path relative to the root, with `/` separators.
    pub relative: String,
    /// The label, from the parent folder's name.
    pub label: Option<String>,
    /// Why the file cannot be read, when the listing already knows (e.g. a broken link).
    pub problem: Option<String>,
}

/// Walks `spec.root` recursively and returns the files with a wanted extension, sorted by
/// relative path (bytewise), numbered from 0, and cut to `spec.limit`.
///
/// Files that the walk finds but cannot look at (broken links, loops) are listed with a
/// `problem`; folders that cannot be read are logged and skipped.
pub fn list(spec: &InputSpec) -> Vec<Entry> {
    let mut found: Vec<(String, PathBuf, Option<String>)> = Vec::new();
    for item in WalkDir::new(&spec.root).follow_links(true) {
        match item {
            Ok(entry) if entry.file_type().is_file() => {
                if has_extension(entry.path(), &spec.extensions) {
                    let relative = relative_path(&spec.root, entry.path());
                    found.push((relative, entry.into_path(), None));
                }
            }
            Ok(_) => {}
            Err(err) => match err.path() {
                Some(path) if has_extension(path, &spec.extensions) => {
                    let relative = relative_path(&spec.root, path);
                    let problem = walk_problem(&err);
                    found.push((relative, path.to_owned(), Some(problem)));
                }
                _ => tracing::warn!("listing {}: {err}", spec.root.display()),
            },
        }
    }
    found.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    found.truncate(spec.limit.unwrap_or(usize::MAX));
    found
        .into_iter()
        .enumerate()
        .map(|(i, (relative, path, problem))| Entry {
            image_id: i as u64,
            label: label(spec.label, &relative),
            path,
            relative,
            problem,
        })
        .collect()
}

fn has_extension(path: &Path, extensions: &[String]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The path below `root` with `/` separators (names that are not UTF-8 are written lossily).
fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
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

fn walk_problem(err: &walkdir::Error) -> String {
    if err.loop_ancestor().is_some() {
        return "unreadable: symbolic link loop".into();
    }
    match err.io_error() {
        Some(io) if io.kind() == std::io::ErrorKind::NotFound => {
            "unreadable: broken symbolic link".into()
        }
        Some(io) => format!("unreadable: {io}"),
        None => format!("unreadable: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(root: &Path, label: LabelSource, limit: Option<usize>) -> InputSpec {
        InputSpec {
            root: root.to_owned(),
            extensions: vec!["jpg".into(), "png".into()],
            label,
            limit,
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
        let entries = list(&spec(dir.path(), LabelSource::Parent, None));
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.image_id, e.relative.as_str(), e.label.as_deref()))
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
        assert!(entries.iter().all(|e| e.problem.is_none()));
    }

    #[test]
    fn limit_and_no_labels() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a/1.jpg", "a/2.jpg", "b/deep/3.jpg"] {
            touch(dir.path(), f);
        }
        let entries = list(&spec(dir.path(), LabelSource::None, Some(2)));
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e.label.is_none()));
        let all = list(&spec(dir.path(), LabelSource::Parent, None));
        assert_eq!(all[2].label.as_deref(), Some("deep"));
    }

    #[cfg(unix)]
    #[test]
    fn broken_links_are_listed_with_their_problem() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a/ok.jpg");
        std::os::unix::fs::symlink(dir.path().join("gone.jpg"), dir.path().join("a/link.jpg"))
            .unwrap();
        let entries = list(&spec(dir.path(), LabelSource::Parent, None));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].relative, "a/link.jpg");
        assert_eq!(
            entries[0].problem.as_deref(),
            Some("unreadable: broken symbolic link")
        );
        assert_eq!(entries[1].problem, None);
    }
}
