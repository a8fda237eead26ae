//! The `layerwise` binary: exit codes, summary, logs and help.

mod common;

use std::process::Command;

use common::*;

fn layerwise() -> Command {
    Command::new(env!("CARGO_BIN_EXE_layerwise"))
}

fn demo_like_config(dir: &std::path::Path, tensor: &str) -> std::path::PathBuf {
    write_images(
        &dir.join("images"),
        &[("a/x.png", 9, 9), ("b/y.jpg", 8, 12)],
    );
    write_html_as_jpg(&dir.join("images/b/z.jpg"));
    let layers = format!("[[layers]]\nname = \"c\"\ntensor = \"{tensor}\"\nkeep = [0]");
    tiny_config_with_layers(dir, "cli", &layers)
}

#[test]
fn a_run_prints_a_summary_and_logs_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_like_config(dir.path(), "conv1");
    let out = layerwise().arg("run").arg(&config).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("cli: 3 images (2 ok, 1 failed) in "),
        "{stdout}"
    );
    assert!(stdout.contains("stats"), "{stdout}");
    assert!(
        stdout.contains(&format!("written to {}", dir.path().join("out").display())),
        "{stdout}"
    );
    // stderr is not a terminal here: plain log lines, no colour codes, a closing progress line.
    assert!(
        stderr.contains("INFO layer c (tensor conv1): 4 channels of 8 x 8, 1 maps kept"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3/3 images (100.0%), 1 errors, "),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(dir.path().join("out/run.json").is_file());
}

#[test]
fn config_and_model_mistakes_exit_2_and_others_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_like_config(dir.path(), "conv9");
    let out = layerwise().arg("run").arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: model ") && stderr.contains("has no tensor `conv9`"),
        "{stderr}"
    );

    let missing = layerwise()
        .args(["run", "/nonexistent/pipeline.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("error: cannot read config /nonexistent/pipeline.toml"));

    // An output folder that cannot be created is an I/O failure: exit 1.
    let config = demo_like_config(dir.path(), "conv1");
    std::fs::write(dir.path().join("blocker"), b"").unwrap();
    let out = layerwise()
        .arg("run")
        .arg(&config)
        .args([
            "--out",
            &dir.path().join("blocker/out").display().to_string(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create the output folder"),
        "{stderr}"
    );
}

#[test]
fn help_teaches_the_command() {
    let out = layerwise().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "--out <DIR>",
        "--limit <N>",
        "--overwrite",
        "part-NNNNN.parquet",
        "Example:",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
    let top = layerwise().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&top.stdout).contains("Exit codes: 0 done"));
}

#[test]
fn a_wrong_runtime_path_names_itself_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_like_config(dir.path(), "conv1");
    let out = layerwise()
        .arg("run")
        .arg(&config)
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: ORT_DYLIB_PATH is /nonexistent/libonnxruntime.so, which is not a file"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("scripts/fetch-onnxruntime.sh"), "{stderr}");
}

#[test]
fn the_runtime_is_found_in_a_python_package() {
    let search = layerwise::runtime::SearchPath {
        python: Some(python().display().to_string()),
        ..Default::default()
    };
    let found = search.locate().unwrap();
    assert_eq!(found.source, "the python3 onnxruntime package");
    assert!(
        found
            .path
            .ends_with("onnxruntime/capi/libonnxruntime.so.1.32.0"),
        "{found:?}"
    );
}
