//! The Slurm job-array example on a real one-node cluster (`scripts/slurm-cluster.sh` starts
//! one; CI runs this with `cargo test --test it slurm:: -- --ignored`).

use std::process::Command;

use crate::common::*;

#[test]
#[ignore = "needs a running Slurm cluster: scripts/slurm-cluster.sh, then cargo test --test it slurm:: -- --ignored"]
fn a_job_array_of_three_tasks_completes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, u32, u32)> = (0..11)
        .map(|i| (format!("{}/{i:02}.png", ["x", "y"][i % 2]), 9, 8))
        .collect();
    let files: Vec<(&str, u32, u32)> = files.iter().map(|(p, w, h)| (p.as_str(), *w, *h)).collect();
    write_images(&dir.path().join("images"), &files);
    let layers =
        "[[layers]]\ntensor = \"conv2\"\nkeep = [1]\ntop_k = 2\n[run]\npart_size = 2\nthreads = 1";
    let config = tiny_config_with_layers(dir.path(), "slurm", layers);
    let bin = env!("CARGO_BIN_EXE_layerwise");
    let submitted = Command::new("sbatch")
        .args(["--wait", "--array=0-2", "--cpus-per-task=1", "--mem=0"])
        .arg(format!("--output={}/task-%a.log", dir.path().display()))
        .arg(format!("--export=ALL,LAYERWISE={bin}"))
        .arg(root().join("examples/slurm/extract.sbatch"))
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .expect("sbatch: start a cluster with scripts/slurm-cluster.sh");
    let logs: String = (0..3)
        .map(|i| {
            std::fs::read_to_string(dir.path().join(format!("task-{i}.log"))).unwrap_or_default()
        })
        .collect();
    assert!(
        submitted.status.success(),
        "{}\n{logs}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    for i in 0..3 {
        assert!(
            logs.contains(&format!("shard {i}/3 (from Slurm job array)")),
            "{logs}"
        );
    }
    let out = dir.path().join("out");
    let status = Command::new(bin).arg("status").arg(&out).output().unwrap();
    let report = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{report}");
    assert!(report.contains("6 of 6 parts committed"), "{report}");

    let single = dir.path().join("single");
    single_run(&config, &single);
    assert_same_tables(&out, &single);
}
