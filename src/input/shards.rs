//! Shard patterns: brace ranges (`{00000..00127}`, zero padding kept as written, and
//! `{a,b}`) are taken as written; globs (`*`, `?`, `[...]`) are matched against the file
//! system or the object store's listing. The expanded list is sorted and checked before any
//! image is read.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::PlanError;
use crate::input::remote;
use crate::location::{is_remote, Location};
use crate::plan::ShardsSpec;

/// The most names one pattern may expand to.
const MAX_NAMES: usize = 10_000_000;

/// One shard of a shard input: one part of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The shard as configured, after expansion (recorded as `images.source`).
    pub name: String,
    /// Where its bytes are.
    pub location: Location,
}

/// The shards that `spec.patterns` name, sorted by name. A glob that matches nothing, a
/// malformed brace, or a shard named twice is an error of the format's key ([`PlanError`]); a
/// shard named by a brace range need not exist (reading it then gives its error row); a bucket
/// that cannot be listed is an error a retry may fix.
pub fn expand(spec: &ShardsSpec) -> anyhow::Result<Vec<Shard>> {
    let key = &format!("input.{}", spec.format);
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for pattern in &spec.patterns {
        let texts = braces(pattern).map_err(|e| {
            PlanError::invalid(key, format!("`{pattern}` has a malformed brace: {e}"))
        })?;
        for text in texts {
            let names = if has_glob(&text) {
                let found = matches(&text, &spec.folder).map_err(|e| match e {
                    Unmatched::Invalid(e) => {
                        PlanError::invalid(key, format!("`{pattern}`: {e}")).into()
                    }
                    Unmatched::Unlisted(e) => e,
                })?;
                if found.is_empty() {
                    return Err(anyhow::Error::from(PlanError::invalid(
                        key,
                        format!(
                            "`{pattern}` matches no file{}; check the path (a relative path is \
                             taken from the config file's folder)",
                            if text != *pattern {
                                format!(" (as `{text}`)")
                            } else {
                                String::new()
                            }
                        ),
                    )));
                }
                found
            } else {
                vec![text]
            };
            for name in names {
                if let Some(first) = named.insert(name.clone(), pattern.clone()) {
                    return Err(anyhow::Error::from(PlanError::invalid(
                        key,
                        format!(
                            "names the shard `{name}` twice (by `{first}` and `{pattern}`); \
                             each shard is one part and must be listed once"
                        ),
                    )));
                }
            }
        }
    }
    let mut shards: Vec<Shard> = named
        .into_keys()
        .map(|name| Shard {
            location: Location::resolve(&name, &spec.folder),
            name,
        })
        .collect();
    shards.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(shards)
}

/// Opens a local shard file; the error is the reason for its `images` row.
pub fn open_local(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "shard not found (no such file)".to_owned(),
        std::io::ErrorKind::PermissionDenied => "unreadable: permission denied".to_owned(),
        _ => format!("unreadable: {e}"),
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err("not a shard: it is a folder".into());
    }
    Ok(file)
}

fn has_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Why a glob matched nothing.
enum Unmatched {
    /// It is not a valid glob, or names what cannot be matched.
    Invalid(String),
    /// The bucket could not be listed.
    Unlisted(anyhow::Error),
}

/// The names a glob matches, in the form it was written: relative to `folder` when it is
/// relative, or `s3://...` URLs.
fn matches(text: &str, folder: &Path) -> Result<Vec<String>, Unmatched> {
    let invalid = |e: String| Unmatched::Invalid(e);
    let pattern =
        glob::Pattern::new(text).map_err(|e| invalid(format!("not a valid glob: {e}")))?;
    if is_remote(Path::new(text)) {
        let cut = text.find(['*', '?', '[']).unwrap_or(text.len());
        let prefix = &text[..text[..cut].rfind('/').map_or(cut, |i| i + 1)];
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        return Ok(remote::list(prefix)
            .map_err(|e| Unmatched::Unlisted(e.context(format!("cannot list {prefix}"))))?
            .into_iter()
            .filter(|url| pattern.matches_with(url, options))
            .collect());
    }
    // The folder is taken as it is, not as a pattern.
    let full = match Path::new(text).is_absolute() {
        true => text.to_owned(),
        false => {
            let folder = folder
                .to_str()
                .ok_or_else(|| invalid("the path is not UTF-8".into()))?;
            format!("{}/{text}", glob::Pattern::escape(folder))
        }
    };
    let mut names = Vec::new();
    for found in glob::glob(&full).map_err(|e| invalid(format!("not a valid glob: {e}")))? {
        let path = found.map_err(|e| invalid(e.to_string()))?;
        if !path.is_file() {
            continue;
        }
        let shown = match Path::new(text).is_absolute() {
            true => path.clone(),
            false => path.strip_prefix(folder).unwrap_or(&path).to_owned(),
        };
        names.push(crate::input::listing::escape_name(shown.as_os_str()));
    }
    Ok(names)
}

/// Bash-style brace expansion: `{A..B}` (integers; zero-padded to the wider bound when
/// either is written with a leading zero) and `{a,b,c}`, any number of groups, left to right.
pub fn braces(text: &str) -> Result<Vec<String>, String> {
    let Some(open) = text.find('{') else {
        if text.contains('}') {
            return Err("a `}` without its `{`".into());
        }
        return Ok(vec![text.to_owned()]);
    };
    let close = text[open..]
        .find('}')
        .map(|i| open + i)
        .ok_or("a `{` without its `}`")?;
    let (head, body, tail) = (&text[..open], &text[open + 1..close], &text[close + 1..]);
    if body.contains('{') {
        return Err("nested braces are not supported".into());
    }
    if head.contains('}') {
        return Err("a `}` without its `{`".into());
    }
    let choices = match body.split_once("..") {
        Some((from, to)) => range(from, to)?,
        None if body.contains(',') => body.split(',').map(String::from).collect(),
        None => {
            return Err(format!(
                "`{{{body}}}` is neither a range A..B nor a list a,b"
            ))
        }
    };
    let rest = braces(tail)?;
    if choices.len().saturating_mul(rest.len()) > MAX_NAMES {
        return Err(format!("it names more than {MAX_NAMES} shards"));
    }
    Ok(choices
        .iter()
        .flat_map(|c| rest.iter().map(move |r| format!("{head}{c}{r}")))
        .collect())
}

/// The integers from `from` to `to` (either way round), as text.
fn range(from: &str, to: &str) -> Result<Vec<String>, String> {
    let bound = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("`{s}` in a range is not a non-negative integer"))
    };
    let (a, b) = (bound(from)?, bound(to)?);
    if a.abs_diff(b) >= MAX_NAMES as u64 {
        return Err(format!("it names more than {MAX_NAMES} shards"));
    }
    let padded = |s: &str| s.len() > 1 && s.starts_with('0');
    let width = match padded(from) || padded(to) {
        true => from.len().max(to.len()),
        false => 0,
    };
    let numbers: Vec<u64> = match a <= b {
        true => (a..=b).collect(),
        false => (b..=a).rev().collect(),
    };
    Ok(numbers
        .into_iter()
        .map(|n| format!("{n:0width$}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brace_ranges_keep_their_padding() {
        assert_eq!(
            braces("s/{00008..00011}.tar").unwrap(),
            ["s/00008.tar", "s/00009.tar", "s/00010.tar", "s/00011.tar"]
        );
        assert_eq!(braces("{8..10}").unwrap(), ["8", "9", "10"]);
        assert_eq!(braces("{2..0}").unwrap(), ["2", "1", "0"]);
        assert_eq!(
            braces("{a,b}-{0..1}.tar").unwrap(),
            ["a-0.tar", "a-1.tar", "b-0.tar", "b-1.tar"]
        );
        assert_eq!(braces("plain.tar").unwrap(), ["plain.tar"]);
        for (bad, why) in [
            ("{0..3", "a `{` without its `}`"),
            ("0..3}", "a `}` without its `{`"),
            ("{x..3}", "`x` in a range is not a non-negative integer"),
            ("{abc}", "`{abc}` is neither a range A..B nor a list a,b"),
            ("{{0..1}}", "nested braces are not supported"),
            ("{0..99999999}", "it names more than 10000000 shards"),
        ] {
            assert_eq!(braces(bad).unwrap_err(), why, "{bad}");
        }
    }

    fn spec(format: &'static str, folder: &Path, patterns: &[&str]) -> ShardsSpec {
        ShardsSpec {
            format,
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            folder: folder.to_owned(),
            image_field: Vec::new(),
            label_field: None,
            key_field: None,
        }
    }

    #[test]
    fn globs_match_files_and_brace_names_need_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("s")).unwrap();
        for name in ["b.tar", "a.tar", "c.txt"] {
            std::fs::write(dir.path().join("s").join(name), b"").unwrap();
        }
        let shards = expand(&spec(
            "webdataset",
            dir.path(),
            &["s/{x,a}.tar", "s/b*.tar"],
        ))
        .unwrap();
        let names: Vec<&str> = shards.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s/a.tar", "s/b.tar", "s/x.tar"]);
        assert_eq!(
            shards[2].location,
            Location::Local(dir.path().join("s/x.tar"))
        );
        let err = expand(&spec("webdataset", dir.path(), &["s/*.tar", "s/a.tar"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "config: `input.webdataset` names the shard `s/a.tar` twice (by `s/*.tar` and \
             `s/a.tar`); each shard is one part and must be listed once"
        );
        let err = expand(&spec("parquet", dir.path(), &["s/*.parquet"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config: `input.parquet` `s/*.parquet` matches no file;"),
            "{err}"
        );
    }
}
