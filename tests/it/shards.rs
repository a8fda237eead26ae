//! Cluster runs: shards as concurrent processes writing one folder, and a run killed with
//! SIGKILL in the middle of a part, then resumed; both must equal a single uninterrupted run.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

/// `count` images in two classes.
fn images(dir: &Path, count: usize) {
    let files: Vec<(String, u32, u32)> = (0..count)
        .map(|i| {
            (
                format!("{}/{i:03}.png", ["a", "b"][i % 2]),
                8 + (i % 5) as u32,
                9 + (i % 3) as u32,
            )
        })
        .collect();
    let files: Vec<(&str, u32, u32)> = files.iter().map(|(p, w, h)| (p.as_str(), *w, *h)).collect();
    write_images(&dir.join("images"), &files);
}

/// Every `.parquet` file of the run can be read to the end.
fn assert_no_partial_files(out: &Path) {
    for table in ["images", "stats", "maps", "vectors", "top"] {
        for file in part_files(out, table) {
            if file.extension().is_some_and(|e| e == "parquet") {
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                        std::fs::File::open(&file).unwrap(),
                    )
                    .unwrap_or_else(|e| {
                        panic!("{} is not a whole Parquet file: {e}", file.display())
                    })
                    .build()
                    .unwrap();
                for batch in reader {
                    batch.unwrap();
                }
            }
        }
    }
}

#[test]
fn four_concurrent_shards_equal_one_process() {
    let dir = tempfile::tempdir().unwrap();
    images(dir.path(), 13);
    let layers = "[[layers]]\ntensor = \"conv1\"\nkeep = \"all\"\ntop_k = 2\n[[layers]]\ntensor = \"logits\"\n\
                  [run]\npart_size = 2\nbatch_size = 3\nthreads = 1";
    let config = tiny_config_with_layers(dir.path(), "shards", layers);
    let shards: Vec<_> = (0..4)
        .map(|i| {
            layerwise()
                .arg("run")
                .arg(&config)
                .args(["-q", "--shard", &format!("{i}/4")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for shard in shards {
        let out = shard.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = dir.path().join("out");
    let status = layerwise().arg("status").arg(&out).output().unwrap();
    let report = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{report}");
    assert!(
        report.contains("7 of 7 parts committed (2 images each), 0 missing"),
        "{report}"
    );
    assert!(
        report.contains("images: 13 of 13 done, 13 ok, 0 error"),
        "{report}"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["complete"], true);
    assert_eq!(run["counts"]["images"], 13);

    let single = dir.path().join("single");
    single_run(&config, &single);
    assert_same_tables(&out, &single);
    // Markers say which shard did which part.
    let marker: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_parts/part-00005.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            &marker["shard"],
            &marker["first_image"],
            &marker["end_image"]
        ),
        (&"1/4".into(), &10.into(), &12.into())
    );
}

#[test]
fn a_killed_run_leaves_no_partial_file_and_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    images(dir.path(), 24);
    let text = format!(
        "name = \"killed\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n\
         [[layers]]\ntensor = \"op:Relu#0\"\nkeep = [0, 5]\n[[layers]]\ntensor = \"op:Relu#-1\"\n\
         [run]\npart_size = 4\nbatch_size = 1\n[output]\ndir = \"out\"\n",
        model("vgg16.onnx").display()
    );
    let config = write_config(dir.path(), &text);
    let out = dir.path().join("out");
    let mut child = layerwise()
        .arg("run")
        .arg(&config)
        .arg("-q")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill the run inside the part after its first.
    kill_after_first_part(&mut child, &out, Duration::from_millis(150));
    assert_no_partial_files(&out);
    let status = layerwise().arg("status").arg(&out).output().unwrap();
    let report = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{report}");
    assert!(
        report.contains("finish them with: layerwise run "),
        "{report}"
    );
    // `compare` takes the killed run's committed parts, and says so.
    let committed = std::fs::read_dir(out.join("_parts")).unwrap().count();
    let compared = succeeded(
        layerwise()
            .arg("compare")
            .arg(&out)
            .arg("--out")
            .arg(dir.path().join("cmp")),
    );
    let said = format!(
        "linear CKA over {} images (a partial run: {committed} of 6 parts committed)",
        4 * committed
    );
    assert!(compared.starts_with(&said), "{compared}");

    let resumed = layerwise()
        .arg("run")
        .arg(&config)
        .arg("-q")
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let whole = dir.path().join("whole");
    single_run(&config, &whole);
    assert_same_tables(&out, &whole);
    let leftovers: Vec<_> = walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_resume_may_change_every_execution_setting_but_not_a_layer_or_the_preprocess() {
    let dir = tempfile::tempdir().unwrap();
    images(dir.path(), 13);
    let run = |settings: &str| {
        let layers = format!(
            "[[layers]]\ntensor = \"conv1\"\nkeep = \"all\"\ntop_k = 2\n[[layers]]\n\
             tensor = \"logits\"\n[preprocess]\nmean = [0.5, 0.4, 0.3]\n[run]\npart_size = 2\n\
             {settings}"
        );
        tiny_config_with_layers(dir.path(), "resumed", &layers)
    };
    let first = "batch_size = 3\nthreads = 1\ndecode_threads = 1\ninference_threads = 1\n\
                 queue_depth = 2\nmax_error_fraction = 1.0";
    let config = run(first);
    let out = dir.path().join("out");
    succeeded(
        layerwise()
            .arg("run")
            .arg(&config)
            .args(["-q", "--shard", "0/2"]),
    );
    let whole = dir.path().join("whole");
    single_run(&config, &whole);
    // What a user does after a node ran out of memory: fewer threads, smaller queue and batch.
    let other = "batch_size = 1\nthreads = 2\ndecode_threads = 2\ninference_threads = 2\n\
                 queue_depth = 1\nmax_error_fraction = 0.5";
    run(other);
    succeeded(
        layerwise()
            .arg("run")
            .arg(&config)
            .args(["-q", "--out"])
            .arg(&out),
    );
    let status = succeeded(layerwise().arg("status").arg(&out));
    assert!(
        status.contains("7 of 7 parts committed (2 images each), 0 missing"),
        "{status}"
    );
    assert_same_tables(&out, &whole);

    // A changed layer, or a changed preprocess, is another run: refused, the keys named.
    for (from, to, named) in [
        (
            "keep = \"all\"",
            "keep = [0]",
            "`layers[0].keep` was \"all\", is now [0]",
        ),
        (
            "mean = [0.5, 0.4, 0.3]",
            "mean = [0.5, 0.4, 0.2]",
            "`preprocess.mean` was [0.5,0.4,0.3], is now [0.5,0.4,0.2]",
        ),
    ] {
        let changed = std::fs::read_to_string(&config).unwrap().replace(from, to);
        std::fs::write(&config, &changed).unwrap();
        let refused = layerwise()
            .arg("run")
            .arg(&config)
            .arg("-q")
            .output()
            .unwrap();
        assert_eq!(
            refused.status.code(),
            Some(2),
            "a mistake: {}",
            text(&refused)
        );
        assert!(
            text(&refused).contains(&format!("holds another run: its config differs: {named}")),
            "{}",
            text(&refused)
        );
        std::fs::write(&config, changed.replace(to, from)).unwrap();
    }
}
