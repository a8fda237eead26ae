//! The release wheel as a user installs it: `pip install "layerwise[cpu]"` into a fresh
//! virtual environment outside the repository, run from a folder with no `.cache/`, no
//! `ORT_DYLIB_PATH`, no `python3` on `PATH` and no environment activated.
//! `scripts/wheel-test.sh` builds the wheel and runs this with
//! `LAYERWISE_WHEEL=dist/<wheel> cargo test --test it wheel:: -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// The wheel under test.
fn wheel() -> PathBuf {
    let wheel = std::env::var_os("LAYERWISE_WHEEL")
        .map(PathBuf::from)
        .expect("LAYERWISE_WHEEL: the wheel to test (scripts/wheel-test.sh builds it)");
    assert!(wheel.is_file(), "{} is not a file", wheel.display());
    std::path::absolute(wheel).unwrap()
}

/// The `onnxruntime` version the project pins (scripts/requirements.txt), for `[cpu]`.
fn pinned_onnxruntime() -> String {
    let requirements = std::fs::read_to_string(root().join("scripts/requirements.txt")).unwrap();
    requirements
        .lines()
        .find(|l| l.starts_with("onnxruntime=="))
        .expect("scripts/requirements.txt pins onnxruntime")
        .to_owned()
}

/// `pip install ARGS` into the environment at `env`.
fn pip_install(env: &Path, args: &[&str]) {
    let out = Command::new(env.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "pip install {args:?}: {}", text(&out));
}

/// Runs the installed `layerwise` in `cwd` with nothing in its environment but `HOME`.
fn installed(env: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env.join("bin/layerwise"))
        .args(args)
        .env_clear()
        .env("HOME", cwd)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs LAYERWISE_WHEEL: run by scripts/wheel-test.sh"]
fn the_wheel_installed_with_cpu_runs_like_the_cargo_build() {
    let wheel = wheel();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env");
    let cwd = dir.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&env)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));

    // The base package alone has no runtime: doctor says so, and what to install.
    pip_install(&env, &[wheel.to_str().unwrap()]);
    let out = installed(&env, &cwd, &["doctor"]);
    let screen = text(&out);
    assert_eq!(out.status.code(), Some(2), "{screen}");
    assert!(
        screen.contains("Install it with: pip install \"layerwise[cpu]\""),
        "{screen}"
    );

    // With [cpu] (at the pinned version), it finds the wheel's library in its own environment.
    let with_cpu = format!("{}[cpu]", wheel.display());
    pip_install(&env, &[&with_cpu, &pinned_onnxruntime()]);
    // What it prints is what docs/install.md shows, with this environment as /home/me/envs/lw.
    let out = installed(&env, &cwd, &["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let env_path = env.display().to_string();
    crate::docs::check_named(
        "doctor-wheel",
        &String::from_utf8_lossy(&out.stdout),
        &[(env_path.as_str(), "/home/me/envs/lw")],
    );
    let out = installed(&env, &cwd, &["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let library = assert_runtime_of_environment(&report, &env);
    let version = pinned_onnxruntime().replace("onnxruntime==", "");
    assert_eq!(report["onnxruntime"]["version"], version.as_str());

    // The demo study (every table, one corrupt file) gives the same tables as the cargo build.
    let config = demo_config(dir.path());
    let (wheel_out, cargo_out) = (dir.path().join("wheel-out"), dir.path().join("cargo-out"));
    let config_arg = config.to_str().unwrap();
    let out = installed(
        &env,
        &cwd,
        &[
            "run",
            config_arg,
            "--quiet",
            "--out",
            wheel_out.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("51 images (50 ok, 1 failed)"),
        "{}",
        text(&out)
    );
    let out = layerwise()
        .args(["run", config_arg, "--quiet", "--out"])
        .arg(&cargo_out)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_same_tables(&wheel_out, &cargo_out);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wheel_out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        record["onnxruntime"]["library"],
        library.as_str(),
        "{record}"
    );

    // `import layerwise` in the same environment (numpy and onnxruntime only: no pyarrow):
    // help() teaches the API, and extract runs on the environment's runtime library.
    let python = |code: &str| {
        Command::new(env.join("bin/python"))
            .args(["-c", code])
            .env_clear()
            .env("HOME", &cwd)
            .current_dir(&cwd)
            .output()
            .unwrap()
    };
    let out = python("import layerwise; help(layerwise.extract)");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("extract(model"), "{help}");
    assert!(
        help.contains("The full activations of ``layers`` for ``images``"),
        "{help}"
    );
    let model = demo().join("models/demo_vgg.onnx");
    let photo = demo().join("images/cat/cat_000.jpg");
    let code = format!(
        "import layerwise as lw, importlib.util as u\n\
         assert u.find_spec('pyarrow') is None\n\
         a = lw.extract({model:?}, [{photo:?}], layers=['block1_conv1'], \
         preprocess={{'size': [224, 224]}})\n\
         print(lw.__version__, a['block1_conv1'].shape)"
    );
    let out = python(&code);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    let want = format!("{} (1, 64, 224, 224)", env!("CARGO_PKG_VERSION"));
    assert_eq!(said.trim(), want, "{}", text(&out));
}
