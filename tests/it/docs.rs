//! Every block of command output in README.md and docs/ is what the real command prints.
//!
//! A block is marked by a comment on the line before its fence:
//!
//! - `<!-- sample -->` before a ```text block whose first lines are `$ COMMAND` (a line ending
//!   in `\` goes on): the commands run in order, with `sh -c`, in one shared workspace (the
//!   demo's `demo/` and `pipelines/demo.toml`, the `layerwise` under test and the project's
//!   Python first on `PATH`), and the block's other lines must be what they print: standard
//!   output, then standard error when one fails. `<!-- sample exit N -->` expects the last
//!   command to exit N. The files' samples run in order (README.md, then docs/ by name), so a
//!   later one sees what an earlier one wrote (`out/demo`).
//! - `<!-- sample sql -->` before a ```sql block: the query runs in DuckDB in the workspace and
//!   the ```text block that follows must be DuckDB's printout of its answer.
//! - `<!-- sample: NAME -->`: a block that another test produces (`NAMED`), with
//!   [`check_named`].
//!
//! Comparison is after [`normalise_paths`] and [`normalise`]: the workspace's path is removed (so `out/demo` reads as
//! it does run from the repository root), every number followed by a unit of time, rate or size
//! (`1.6 s`, `31.0 images/s`, `28.0 MiB`) and every count of CPUs or threads becomes `#`, and
//! runs of spaces become one (columns are aligned to those numbers). Everything else, row
//! counts included, must be equal. `LAYERWISE_BLESS_DOCS=1` writes what the commands print into
//! the files instead of failing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{demo, python, root};

/// Named samples and the test that produces each.
const NAMED: &[(&str, &str)] = &[(
    "doctor-wheel",
    "wheel::the_wheel_installed_with_cpu_runs_like_the_cargo_build",
)];

/// How a marked block is produced.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// Shell commands and the exit status of the last.
    Shell { commands: Vec<String>, exit: i32 },
    /// A DuckDB query.
    Sql(String),
    /// Produced by the named test.
    Named(String),
}

/// A marked block of a doc.
#[derive(Debug, Clone)]
struct Sample {
    /// The doc, relative to the repository root.
    file: String,
    /// How it is produced.
    source: Source,
    /// The lines of the doc (0-based, end exclusive) holding the output shown.
    output: std::ops::Range<usize>,
}

/// README.md, then every doc of docs/ by name.
fn doc_files() -> Vec<String> {
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    [vec!["README.md".to_owned()], docs].concat()
}

/// The index of the closing fence of the block opened at `open`.
fn fence_end(lines: &[&str], open: usize, file: &str) -> usize {
    (open + 1..lines.len())
        .find(|&i| lines[i].trim_end() == "```")
        .unwrap_or_else(|| panic!("{file}:{}: an unclosed block", open + 1))
}

/// The samples marked in `file`; panics on a ```text block that is not marked.
fn samples_of(file: &str) -> Vec<Sample> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut samples = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if let Some(marker) = line
            .strip_prefix("<!-- sample")
            .and_then(|m| m.strip_suffix("-->"))
        {
            let open = i + 1;
            let (source, output, end) = parse_marked(&lines, open, marker.trim(), file);
            samples.push(Sample {
                file: file.to_owned(),
                source,
                output,
            });
            i = end + 1;
            continue;
        }
        assert!(
            line != "```text",
            "{file}:{}: a ```text block without a `<!-- sample ... -->` line before it: every \
             command output shown must come from the command (tests/it/docs.rs)",
            i + 1
        );
        if line.starts_with("```") {
            i = fence_end(&lines, i, file);
        }
        i += 1;
    }
    samples
}

/// Reads the block(s) of a marker whose fence opens at line `open`: the source, the output's
/// lines and the last line used.
fn parse_marked(
    lines: &[&str],
    open: usize,
    marker: &str,
    file: &str,
) -> (Source, std::ops::Range<usize>, usize) {
    let at = |what: &str| format!("{file}:{}: {what}", open + 1);
    if marker == "sql" {
        assert_eq!(
            lines.get(open).copied(),
            Some("```sql"),
            "{}",
            at("not ```sql")
        );
        let end = fence_end(lines, open, file);
        let query = lines[open + 1..end].join("\n");
        let text = end + 2;
        assert_eq!(
            lines.get(text).copied(),
            Some("```text"),
            "{}",
            at("a sql sample needs its ```text answer after one blank line")
        );
        let close = fence_end(lines, text, file);
        return (Source::Sql(query), text + 1..close, close);
    }
    assert_eq!(
        lines.get(open).copied(),
        Some("```text"),
        "{}",
        at("not ```text")
    );
    let close = fence_end(lines, open, file);
    let (commands, output) = commands(lines, open + 1, close);
    assert!(!commands.is_empty(), "{}", at("no `$ command` line"));
    if let Some(name) = marker.strip_prefix(':') {
        return (Source::Named(name.trim().to_owned()), output..close, close);
    }
    let exit = match marker.strip_prefix("exit") {
        Some(code) => code.trim().parse().expect("`exit N`"),
        None if marker.is_empty() => 0,
        None => panic!("{}", at(&format!("unknown marker `{marker}`"))),
    };
    (Source::Shell { commands, exit }, output..close, close)
}

/// The `$ command` lines at the top of a block's lines `from..to` (a line ending in `\` goes
/// on), and the line its output starts at.
fn commands(lines: &[&str], from: usize, to: usize) -> (Vec<String>, usize) {
    let mut commands = Vec::new();
    let mut i = from;
    while i < to {
        let Some(first) = lines[i].strip_prefix("$ ") else {
            break;
        };
        let mut command = first.to_owned();
        while command.ends_with('\\') && i + 1 < to {
            i += 1;
            command = format!("{}\n{}", command, lines[i]);
        }
        commands.push(command);
        i += 1;
    }
    (commands, i)
}

/// Text as compared (its paths already as the doc shows them, [`normalise_paths`]): numbers
/// with a unit of time, rate or size and counts of CPUs and threads as `#`, runs of spaces as
/// one, trailing spaces dropped.
pub fn normalise(text: &str) -> String {
    let measured = regex::Regex::new(
        r"[0-9][0-9,]*(\.[0-9]+)?( ?)(ms|s|min|images/s|B|KiB|MiB|GiB|TiB|kB|MB|GB)(?-u:\b)",
    )
    .unwrap();
    let text = measured.replace_all(text, "#$2$3");
    let counted =
        regex::Regex::new(r"[0-9]+ (available|online|threads?(?-u:\b)|CPUs?(?-u:\b))").unwrap();
    let text = counted.replace_all(&text, "# $1");
    let spaces = regex::Regex::new(r" +").unwrap();
    text.lines()
        .map(|line| spaces.replace_all(line, " ").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

/// Whether to write what the commands print into the docs instead of failing.
fn blessing() -> bool {
    std::env::var_os("LAYERWISE_BLESS_DOCS").is_some()
}

/// A sample whose output differs: what to report, or write back when blessing.
struct Drift {
    sample: Sample,
    actual: String,
}

/// Writes each drifted sample's output into its doc (last first, so line numbers hold).
fn bless(mut drifts: Vec<Drift>) {
    drifts.sort_by_key(|d| {
        (
            d.sample.file.clone(),
            std::cmp::Reverse(d.sample.output.start),
        )
    });
    for drift in drifts {
        let path = root().join(&drift.sample.file);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let new: Vec<String> = drift.actual.lines().map(str::to_owned).collect();
        lines.splice(drift.sample.output.clone(), new);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
}

/// Fails listing every drifted sample, or blesses them.
fn settle(drifts: Vec<Drift>) {
    if drifts.is_empty() {
        return;
    }
    if blessing() {
        return bless(drifts);
    }
    let report: Vec<String> = drifts
        .iter()
        .map(|d| {
            let text = std::fs::read_to_string(root().join(&d.sample.file)).unwrap();
            let shown: Vec<&str> = text.lines().collect();
            format!(
                "{}:{}: the doc shows\n{}\n--- the command prints\n{}\n--- (normalised: doc / command)\n{}\n---\n{}",
                d.sample.file,
                d.sample.output.start + 1,
                shown[d.sample.output.clone()].join("\n"),
                d.actual,
                normalise(&shown[d.sample.output.clone()].join("\n")),
                normalise(&d.actual),
            )
        })
        .collect();
    panic!(
        "{} doc sample(s) differ from what the commands print (LAYERWISE_BLESS_DOCS=1 cargo \
         test --test it docs:: writes them in):\n\n{}",
        report.len(),
        report.join("\n\n")
    );
}

/// Compares `actual` with the block marked `<!-- sample: NAME -->`, after replacing each
/// `(from, to)` of `replace` in it (paths of the test's machine by those the doc shows).
pub fn check_named(name: &str, actual: &str, replace: &[(&str, &str)]) {
    let samples: Vec<Sample> = doc_files().iter().flat_map(|f| samples_of(f)).collect();
    let sample = samples
        .into_iter()
        .find(|s| s.source == Source::Named(name.to_owned()))
        .unwrap_or_else(|| panic!("no doc block is marked `<!-- sample: {name} -->`"));
    let actual = normalise_paths(actual, replace);
    settle(compared(sample, actual));
}

/// `text` with each `(from, to)` replaced.
fn normalise_paths(text: &str, replace: &[(&str, &str)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    text.trim_end().to_owned()
}

/// The drift of `sample` when `actual` differs from what its doc shows.
fn compared(sample: Sample, actual: String) -> Vec<Drift> {
    let text = std::fs::read_to_string(root().join(&sample.file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let shown = lines[sample.output.clone()].join("\n");
    if normalise(&shown) == normalise(&actual) {
        return Vec::new();
    }
    vec![Drift { sample, actual }]
}

/// The shared workspace: the demo's model and images, its config, `out/` empty.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(demo(), dir.path().join("demo")).unwrap();
    std::fs::create_dir(dir.path().join("pipelines")).unwrap();
    std::fs::copy(
        root().join("pipelines/demo.toml"),
        dir.path().join("pipelines/demo.toml"),
    )
    .unwrap();
    dir
}

/// `PATH` with the `layerwise` under test and the project's Python first.
fn search_path() -> String {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_layerwise"));
    let python = python();
    format!(
        "{}:{}:{}",
        binary.parent().unwrap().display(),
        python.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs a shell sample's commands in `dir`: what they print, checking the last one's status.
fn run_shell(commands: &[String], exit: i32, dir: &Path, at: &str) -> String {
    let mut printed = String::new();
    for (i, command) in commands.iter().enumerate() {
        let out = Command::new("sh")
            .args(["-c", command])
            .current_dir(dir)
            .env("PATH", search_path())
            .env("COLUMNS", "100")
            .env_remove("ORT_DYLIB_PATH")
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let want = if i + 1 == commands.len() { exit } else { 0 };
        assert_eq!(
            code,
            want,
            "{at}: `{command}` exited {code}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        if code != 0 {
            printed.push_str(&String::from_utf8_lossy(&out.stderr));
        }
    }
    printed
}

/// DuckDB's printout of `query`'s answer, run in `dir`.
fn run_sql(query: &str, dir: &Path) -> String {
    let script = "import duckdb, sys\nprint(duckdb.sql(sys.stdin.read()))";
    let mut child = Command::new(python())
        .args(["-c", script])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(query.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{query}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_command_output_in_the_docs_is_what_the_command_prints() {
    let samples: Vec<Sample> = doc_files().iter().flat_map(|f| samples_of(f)).collect();
    assert!(samples.len() >= 8, "{} samples", samples.len());
    let dir = workspace();
    let workspace_path = format!("{}/", dir.path().display());
    let replace = [(workspace_path.as_str(), "")];
    let mut drifts = Vec::new();
    for sample in samples {
        let at = format!("{}:{}", sample.file, sample.output.start);
        let actual = match &sample.source {
            Source::Shell { commands, exit } => run_shell(commands, *exit, dir.path(), &at),
            Source::Sql(query) => run_sql(query, dir.path()),
            Source::Named(name) => {
                assert!(
                    NAMED.iter().any(|(n, _)| n == name),
                    "{at}: `{name}` is not a known named sample"
                );
                continue;
            }
        };
        let actual = normalise_paths(&actual, &replace);
        drifts.extend(compared(sample, actual));
    }
    settle(drifts);
}

#[test]
fn the_normalising_rule_keeps_counts_and_drops_measurements() {
    let a = "demo: 51 images (50 ok, 1 failed) in 1.6 s, 31.0 images/s\n  maps   25900 rows   28.0 MiB  \n";
    let b =
        "demo: 51 images (50 ok, 1 failed) in 12.25 s, 4.1 images/s\n  maps 25900 rows 1,028.0 MiB";
    assert_eq!(normalise(a), normalise(b));
    assert_ne!(normalise(a), normalise(&a.replace("25900", "25901")));
    assert_eq!(
        normalise("CPUs: 16 available to layerwise (16 online); 16 threads"),
        "CPUs: # available to layerwise (# online); # threads"
    );
    assert_eq!(
        normalise(&normalise_paths("at /tmp/x/out", &[("/tmp/x/", "")])),
        "at out"
    );
}
