//! The `layerwise` binary: exit codes, summary, logs and help.

use std::process::Command;

use crate::common::*;

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
fn a_runtime_too_old_is_refused_with_its_version_and_the_fix() {
    // A stand-in library that answers like ONNX Runtime 1.10 (built with the system's C
    // compiler: there is no old release to download here).
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("old.c");
    std::fs::write(
        &source,
        "typedef struct { const void *(*GetApi)(unsigned); const char *(*GetVersionString)(void); } Base;\n\
         static const void *get_api(unsigned v) { (void)v; return 0; }\n\
         static const char *version(void) { return \"1.10.0\"; }\n\
         static const Base base = { get_api, version };\n\
         const Base *OrtGetApiBase(void) { return &base; }\n",
    )
    .unwrap();
    let library = dir.path().join("libonnxruntime.so.1.10.0");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let config = demo_like_config(dir.path(), "conv1");
    let out = layerwise()
        .arg("run")
        .arg(&config)
        .env("ORT_DYLIB_PATH", &library)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot load ONNX Runtime from {}",
            library.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("but got '1.10.0'"), "{stderr}");
    assert!(
        stderr.contains("layerwise needs ONNX Runtime 1.17 or later. Provision it with: ")
            && stderr.contains("scripts/fetch-onnxruntime.sh"),
        "{stderr}"
    );
}

#[test]
fn the_runtime_is_found_in_a_python_package() {
    let search = layerwise::model::runtime::SearchPath {
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

#[test]
fn layers_lists_the_13_conv_layers_of_vgg16_with_real_shapes() {
    let vgg = model("vgg16.onnx");
    let out = layerwise()
        .arg("layers")
        .arg(&vgg)
        .args(["--shapes", "--match", "block*_conv?"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = table.lines().filter(|l| l.contains(" Relu ")).collect();
    assert_eq!(rows.len(), 13, "{table}");
    assert!(
        rows[0].contains("block1_conv1") && rows[0].ends_with("[1, 64, 224, 224]"),
        "{table}"
    );
    assert!(
        rows[12].contains("block5_conv3") && rows[12].ends_with("[1, 512, 14, 14]"),
        "{table}"
    );
    assert!(
        table.contains("input  float32  [batch, 3, 224, 224] input"),
        "{table}"
    );
    assert!(table.ends_with("shapes from a probe run on a zero input of shape [1, 3, 224, 224]\n"));

    // JSON: every extractable tensor, numbered in graph order, without --shapes as declared.
    let out = layerwise()
        .arg("layers")
        .arg(&vgg)
        .arg("--json")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tensors = doc["tensors"].as_array().unwrap();
    // 13 x (Conv, Relu) + 5 pools + gap, flatten, logits, predictions.
    assert_eq!(tensors.len(), 13 * 2 + 5 + 4);
    assert_eq!(tensors[1]["name"], "block1_conv1");
    assert_eq!(tensors[1]["op"], "Relu");
    assert_eq!(tensors[1]["index"], 1);
    assert_eq!(tensors[1]["shape"], "?");
    let last = &tensors[tensors.len() - 1];
    assert_eq!(
        (&last["name"], &last["output"], &last["shape"]),
        (&"predictions".into(), &true.into(), &"[batch, 10]".into())
    );
    assert_eq!(doc["inputs"][0]["name"], "input");
    assert_eq!(doc["probe_input"], serde_json::Value::Null);
}

#[test]
fn first_and_last_relu_of_vgg16_by_selector() {
    let dir = tempfile::tempdir().unwrap();
    write_images(
        &dir.path().join("images"),
        &[("a/x.jpg", 300, 200), ("b/y.png", 224, 224)],
    );
    let text = format!(
        "name = \"classic\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n\
         [[layers]]\ntensor = \"op:Relu#0\"\nkeep = [0, 11, 12, 27, 30, 34]\n\
         [[layers]]\ntensor = \"op:Relu#-1\"\nkeep = \"all\"\n[output]\ndir = \"out\"\n",
        model("vgg16.onnx").display()
    );
    let config = write_config(dir.path(), &text);
    let out = layerwise().arg("run").arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("layer block1_conv1: selector `op:Relu#0` picked tensor block1_conv1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("layer block5_conv3: selector `op:Relu#-1` picked tensor block5_conv3"),
        "{stderr}"
    );
    let out_dir = dir.path().join("out");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    let layers = run["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        (
            &layers[0]["tensor"],
            &layers[0]["channels"],
            &layers[0]["height"]
        ),
        (&"block1_conv1".into(), &64.into(), &224.into())
    );
    assert_eq!(
        (
            &layers[1]["tensor"],
            &layers[1]["channels"],
            &layers[1]["height"]
        ),
        (&"block5_conv3".into(), &512.into(), &14.into())
    );
    assert_eq!(read_table(&out_dir, "stats").num_rows(), 2 * (64 + 512));
    assert_eq!(read_table(&out_dir, "maps").num_rows(), 2 * (6 + 512));
}

#[test]
fn layers_errors_say_what_to_do() {
    let out = layerwise()
        .arg("layers")
        .arg(model("identity_nchw.onnx"))
        .arg("--shapes")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("input `input` has shape [batch, 3, height, width], which is not fixed; to probe shapes, give a config"),
        "{stderr}"
    );
    let out = layerwise()
        .arg("layers")
        .arg(model("tiny_nchw.onnx"))
        .args(["--match", "conv[1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--match` `conv[1` is not a valid glob"));
}

#[test]
fn match_globs_names_or_operators_and_a_glob_that_matches_nothing_says_so() {
    let path = model("tiny_nchw.onnx");
    let listed = |pattern: &str| {
        let out = layerwise()
            .arg("layers")
            .arg(&path)
            .args(["--match", pattern, "--json"])
            .output()
            .unwrap();
        let listing: serde_json::Value = match out.status.success() {
            true => serde_json::from_slice(&out.stdout).unwrap(),
            false => return Err((out.status.code(), text(&out))),
        };
        let names = listing["tensors"].as_array().unwrap().iter();
        Ok(names
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>())
    };
    assert_eq!(listed("op:Conv*").unwrap(), ["conv1/conv", "conv2/conv"]);
    assert_eq!(listed("conv?").unwrap(), ["conv1", "conv2"]);
    for (pattern, what) in [("op:Gemm", "an operator"), ("block*", "a name")] {
        let (code, stderr) = listed(pattern).unwrap_err();
        assert_eq!(code, Some(2), "{stderr}");
        let want = format!(
            "error: `--match` `{pattern}`: no tensor of {} has {what} that matches; a glob \
             matches tensor names ('block*_conv*'), and after `op:` operator types \
             ('op:Conv*'); `layerwise layers {}` lists them all",
            path.display(),
            path.display()
        );
        assert_eq!(stderr.trim(), want);
    }
}

#[test]
fn check_estimates_the_output_of_the_run_within_a_quarter() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, u32, u32)> = (0..40)
        .map(|i| {
            (
                format!("{}/{i:02}.{}", ["a", "b"][i % 2], ["png", "jpg"][i % 3 % 2]),
                8 + i as u32,
                30 - i as u32 / 2,
            )
        })
        .collect();
    let files: Vec<(&str, u32, u32)> = files.iter().map(|(p, w, h)| (p.as_str(), *w, *h)).collect();
    write_images(&dir.path().join("images"), &files);
    write_html_as_jpg(&dir.path().join("images/a/zz.jpg"));
    let layers = "[[layers]]\ntensor = \"op:Relu#0\"\nkeep = \"all\"\ntop_k = 4\n[[layers]]\ntensor = \"conv2\"\nkeep = [1, 2]\n\
                  [[layers]]\ntensor = \"logits\"\n[run]\nbatch_size = 4\npart_size = 16";
    let config = tiny_config_with_layers(dir.path(), "estimate", layers);
    let out = layerwise()
        .arg("check")
        .arg(&config)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["images"], 41);
    assert_eq!(report["parts"], 3);
    assert_eq!(report["sample"], 8, "two batches of 4");
    assert_eq!(report["layers"][0]["name"], "conv1");
    assert_eq!(report["layers"][0]["kept"].as_array().unwrap().len(), 4);
    assert!(report["measured_peak_bytes"].as_u64().unwrap() > 0);
    assert!(
        !dir.path().join("out").exists(),
        "check writes nothing into the output folder"
    );

    let run = layerwise()
        .arg("run")
        .arg(&config)
        .arg("-q")
        .output()
        .unwrap();
    assert!(run.status.success());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/run.json")).unwrap())
            .unwrap();
    let written: u64 = record["counts"]["bytes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let estimated = report["estimated_bytes"].as_u64().unwrap();
    let ratio = estimated as f64 / written as f64;
    assert!(
        (0.75..=1.25).contains(&ratio),
        "estimated {estimated} bytes, the run wrote {written}"
    );

    let text = layerwise().arg("check").arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("estimate: the config, model ("), "{text}");
    assert!(
        text.contains("conv1            4 channels of 8 x 8, 4 kept"),
        "{text}"
    );
    assert!(
        text.contains(
            "41 images, 3 part(s), batches of 4; estimated output, measured on 8 sample image(s):"
        ),
        "{text}"
    );
    assert!(text.contains("peak memory: about "), "{text}");
}

#[test]
fn check_refuses_what_run_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_like_config(dir.path(), "conv1");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("keep = [0]", "keep = [4]");
    std::fs::write(&config, text).unwrap();
    let out = layerwise().arg("check").arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`layers[0].keep` lists channel 4, but `conv1` has 4 channels (0 to 3)"),
        "{stderr}"
    );
}

#[test]
fn a_gpu_provider_without_the_gpu_library_names_the_wheel() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_like_config(dir.path(), "conv1");
    for (provider, name) in [("cuda", "CUDA"), ("tensorrt", "TensorRT")] {
        let text = std::fs::read_to_string(&config).unwrap();
        let text = format!("{text}\n[run]\nprovider = \"{provider}\"\ndevice = 1\n");
        let path = dir.path().join(format!("{provider}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = layerwise().arg("run").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "`[run] provider = \"{provider}\"` needs ONNX Runtime's {name} execution provider, which the library in use"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains("provision the onnxruntime-gpu wheel's library (bash "),
            "{stderr}"
        );
        assert!(
            stderr.contains("scripts/fetch-onnxruntime.sh --gpu) or point ORT_DYLIB_PATH at it"),
            "{stderr}"
        );
    }
}

/// A Python environment laid out as pip installs the wheel: `env/bin/layerwise` (this build's
/// executable) and `env/lib/python3.13/site-packages/`, with the runtime library in
/// `onnxruntime/capi/` when `runtime` is set.
fn python_environment(dir: &std::path::Path, runtime: bool) -> std::path::PathBuf {
    let env = dir.join("env");
    std::fs::create_dir_all(env.join("bin")).unwrap();
    let exe = env.join("bin/layerwise");
    std::fs::copy(env!("CARGO_BIN_EXE_layerwise"), &exe).unwrap();
    let capi = env.join("lib/python3.13/site-packages/onnxruntime/capi");
    std::fs::create_dir_all(&capi).unwrap();
    if runtime {
        let library = &crate::common::runtime().located.path;
        std::os::unix::fs::symlink(library, capi.join(library.file_name().unwrap())).unwrap();
    }
    exe
}

/// Runs an installed executable as a user would on a new node: no `PATH` (so no `python3`),
/// no `ORT_DYLIB_PATH`, no virtual environment activated, from a folder with no `.cache/`.
/// A copy just written may still be open for writing in a child that another test forked before
/// its exec (ETXTBSY, "text file busy"): that passes within moments, so it is retried.
fn installed(exe: &std::path::Path, args: &[&str]) -> std::process::Output {
    for _ in 0..100 {
        let run = Command::new(exe)
            .args(args)
            .env_clear()
            .current_dir(exe.parent().unwrap())
            .output();
        match run {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed busy for 2 s", exe.display())
}

#[test]
fn an_installed_executable_takes_the_runtime_of_its_own_python_environment() {
    let dir = tempfile::tempdir().unwrap();
    let exe = python_environment(dir.path(), true);
    let out = installed(&exe, &["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = dir.path().join("env");
    assert_eq!(report["python_environment"], env.to_str().unwrap());
    let library = assert_runtime_of_environment(&report, &env);
    let capi = env.join("lib/python3.13/site-packages/onnxruntime/capi");
    assert!(library.starts_with(capi.to_str().unwrap()), "{library}");
    let runtime = &report["onnxruntime"];
    assert_eq!(runtime["version"], "1.32.0");
    assert_eq!(
        runtime["looked_at"],
        serde_json::json!(["ORT_DYLIB_PATH: not set", "[run] onnxruntime: not set"])
    );

    let out = installed(&exe, &["doctor"]);
    let screen = text(&out);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    for line in [
        "layerwise 0.1.0\n".to_owned(),
        format!(
            "  executable     {} (in the Python environment {})\n",
            exe.display(),
            env.display()
        ),
        "ONNX Runtime 1.32.0\n".to_owned(),
        format!("  found via      {}\n", layerwise::model::runtime::INSTALLED_SOURCE),
        "  cpu            ok: a session ran\n".to_owned(),
        "  cuda           no: not in this library (the onnxruntime-gpu wheel's has it)\n"
            .to_owned(),
        format!(
            "  for GPUs       install the GPU runtime with: pip uninstall -y onnxruntime && pip \
             install \"layerwise[gpu]\", in the Python environment layerwise is installed in ({})\n",
            env.display()
        ),
        "ready: a run on `cpu` can start\n".to_owned(),
    ] {
        assert!(screen.contains(&line), "no {line:?} in\n{screen}");
    }
    assert!(screen.contains("  providers      ") && screen.contains("CPUExecutionProvider"));
}

#[test]
fn an_installed_executable_without_a_runtime_names_the_pip_command() {
    let dir = tempfile::tempdir().unwrap();
    let exe = python_environment(dir.path(), false);
    let env = dir.path().join("env");
    let pip = format!(
        "Install it with: pip install \"layerwise[cpu]\" (or \"layerwise[gpu]\" for NVIDIA GPUs), \
         in the Python environment layerwise is installed in ({})",
        env.display()
    );
    let out = installed(&exe, &["doctor"]);
    let screen = text(&out);
    assert_eq!(out.status.code(), Some(2), "{screen}");
    assert!(screen.contains("ONNX Runtime (none usable)\n"), "{screen}");
    assert!(screen.contains(&pip), "{screen}");
    let capi = env.join("lib/python3.13/site-packages/onnxruntime/capi");
    assert!(
        screen.contains(&format!("{}: no libonnxruntime.so.*", capi.display())),
        "{screen}"
    );
    // An installed executable does not look in the cache of the checkout it was built from.
    assert!(!screen.contains(".cache/onnxruntime"), "{screen}");
    assert!(screen.ends_with("not ready: a run on `cpu` cannot start (see above)\n"));

    let config = demo_like_config(dir.path(), "conv1");
    let out = installed(&exe, &["run", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: ONNX Runtime's shared library was not found"),
        "{stderr}"
    );
    assert!(stderr.contains(&pip), "{stderr}");
}

#[test]
fn doctor_checks_the_provider_of_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_like_config(dir.path(), "conv1");
    let out = layerwise().arg("doctor").arg(&config).output().unwrap();
    let screen = text(&out);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.ends_with("ready: a run on `cpu` can start\n"),
        "{screen}"
    );
    let named = format!(
        "\n  config         {} (its [run] onnxruntime, provider and device are what is checked)\n",
        config.display()
    );
    assert!(screen.contains(&named), "{screen}");
    // ORT_DYLIB_PATH set but empty counts as unset.
    let out = layerwise()
        .arg("doctor")
        .arg(&config)
        .env("ORT_DYLIB_PATH", "")
        .output()
        .unwrap();
    let screen = text(&out);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("  found via      the project cache\n"),
        "{screen}"
    );
    assert!(screen.contains("ORT_DYLIB_PATH: not set"), "{screen}");

    let text_of = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text_of}\n[run]\nprovider = \"cuda\"\n")).unwrap();
    let out = layerwise().arg("doctor").arg(&config).output().unwrap();
    let screen = text(&out);
    assert_eq!(out.status.code(), Some(2), "{screen}");
    assert!(
        screen.contains(
            "  cuda           no: not in this library (the onnxruntime-gpu wheel's has it)\n"
        ),
        "{screen}"
    );
    assert!(
        screen.ends_with("not ready: a run on `cuda` cannot start (see above)\n"),
        "{screen}"
    );

    std::fs::write(&config, "name = 1\n").unwrap();
    let out = layerwise().arg("doctor").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("error: config "), "{}", text(&out));
}

#[test]
fn a_rerun_of_a_finished_run_says_there_is_nothing_to_do_and_keeps_its_record() {
    let dir = tempfile::tempdir().unwrap();
    write_images(
        &dir.path().join("images"),
        &[("a.png", 8, 8), ("b.png", 9, 7)],
    );
    let config = tiny_config_with_layers(dir.path(), "done", "[[layers]]\ntensor = \"conv1\"\n");
    succeeded(layerwise().args(["run", "-q"]).arg(&config));
    let record = dir.path().join("out/run.json");
    let before = std::fs::read_to_string(&record).unwrap();
    let out = layerwise()
        .args(["run", "-q"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().next().unwrap(),
        "done: nothing to do, every part is committed: 2 images (2 ok, 0 failed); \
         `--overwrite` runs it again"
    );
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        before,
        "the record of the run that did the work, timings included"
    );
}
