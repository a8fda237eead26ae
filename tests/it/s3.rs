//! Output to an S3-compatible object store, end to end against a local moto server on
//! loopback: a sharded run, its status, a rerun that resumes, and the same tables as a local run.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A moto S3 server on 127.0.0.1, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts a server on a port the system picks (so concurrent tests and processes never
    /// share one) and reads the port from the line it logs.
    fn start() -> Moto {
        let mut child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto: run scripts/python-env.sh");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("the moto server ended before it said its address")
                .unwrap();
            if let Some(at) = line.find("http://127.0.0.1:") {
                break line[at..].trim().to_owned();
            }
        };
        // Keep reading its log, so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the moto server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint }
    }

    /// Runs Python with boto3 pointed at this server; `script` sees `s3` (a client) and `argv`.
    fn boto(&self, script: &str, args: &[&str]) {
        let prelude = format!(
            "import sys, boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\nargv = sys.argv[1:]\n",
            self.endpoint
        );
        let out = Command::new(python())
            .arg("-c")
            .arg(prelude + script)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `layerwise` with these arguments and the environment that points it at this server.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_layerwise"));
        command
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true");
        command
    }

    fn layerwise(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DOWNLOAD: &str = r#"
import os
bucket, prefix, dest = argv
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get('Contents', []):
        path = os.path.join(dest, o['Key'][len(prefix):].lstrip('/'))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, o['Key'], path)
"#;

#[test]
fn a_run_into_s3_resumes_and_equals_a_local_run() {
    let moto = Moto::start();
    moto.boto("s3.create_bucket(Bucket='runs')", &[]);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, u32, u32)> = (0..9)
        .map(|i| (format!("{}/{i}.png", ["p", "q"][i % 2]), 10, 7))
        .collect();
    let files: Vec<(&str, u32, u32)> = files.iter().map(|(p, w, h)| (p.as_str(), *w, *h)).collect();
    write_images(&dir.path().join("images"), &files);
    let layers = "[[layers]]\ntensor = \"conv1\"\nkeep = [2]\ntop_k = 2\n[[layers]]\ntensor = \"logits\"\n[run]\npart_size = 2";
    let config = tiny_config_with_layers(dir.path(), "s3", layers);
    let config = config.to_str().unwrap();
    let url = "s3://runs/experiments/tiny";

    let half = moto.layerwise(&["run", config, "--out", url, "--shard", "0/2", "-q"]);
    assert!(half.status.success(), "{}", text(&half));
    assert!(
        text(&half).contains("3 of 5 parts committed"),
        "{}",
        text(&half)
    );
    let status = moto.layerwise(&["status", url]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert!(
        text(&status).contains("missing parts: 1, 3"),
        "{}",
        text(&status)
    );

    let rest = moto.layerwise(&["run", config, "--out", url]);
    assert!(rest.status.success(), "{}", text(&rest));
    assert!(
        text(&rest).contains("does 2 parts (4 images), 3 already committed"),
        "{}",
        text(&rest)
    );
    let status = moto.layerwise(&["status", url]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));

    let downloaded = dir.path().join("downloaded");
    moto.boto(
        DOWNLOAD,
        &["runs", "experiments/tiny", downloaded.to_str().unwrap()],
    );
    assert!(downloaded.join("run.json").is_file());
    let local = dir.path().join("local");
    single_run(Path::new(config), &local);
    assert_same_tables(&downloaded, &local);
    for table in ["images", "stats", "maps", "vectors", "top"] {
        let names: Vec<String> = part_files(&downloaded, table)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            5,
            "{table}: whole objects only, no temporary ones: {names:?}"
        );
    }
    // Another config into the same prefix is refused with the difference.
    let other = std::fs::read_to_string(config)
        .unwrap()
        .replace("keep = [2]", "keep = [3]");
    std::fs::write(dir.path().join("other.toml"), other).unwrap();
    let refused = moto.layerwise(&[
        "run",
        dir.path().join("other.toml").to_str().unwrap(),
        "--out",
        url,
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains(
            "holds another run: its config differs: `layers[0].keep` was [2], is now [3]"
        ),
        "{}",
        text(&refused)
    );
}

const UPLOAD: &str = r#"
import os
bucket, prefix, source = argv
for name in sorted(os.listdir(source)):
    s3.upload_file(os.path.join(source, name), bucket, f"{prefix}/{name}")
"#;

/// The columns of a table of two runs are equal (their provenance, which names the input,
/// differs).
fn assert_same_columns(a: &Path, b: &Path, tables: &[&str]) {
    for table in tables {
        let (x, y) = (read_table(a, table), read_table(b, table));
        assert_eq!(x.num_rows(), y.num_rows(), "{table}: rows");
        assert_eq!(x.columns(), y.columns(), "{table}: values");
    }
}

#[test]
fn shards_in_s3_are_read_as_local_ones_and_a_killed_run_resumes() {
    let data = built_by("tests/datasets/make_datasets.py", "dirty/notatar.tar");
    let moto = Moto::start();
    moto.boto("s3.create_bucket(Bucket='data')", &[]);
    for folder in ["wds", "hf"] {
        moto.boto(
            UPLOAD,
            &["data", folder, data.join(folder).to_str().unwrap()],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, input: &str, model_name: &str, run: &str| {
        let text = format!(
            "name = \"{name}\"\n[input]\n{input}\n[model]\npath = \"{}\"\n\
             [[layers]]\ntensor = \"op:Relu#0\"\nkeep = [0, 1]\n[[layers]]\ntensor = \"op:Relu#-1\"\n\
             [run]\n{run}\n[output]\ndir = \"out-{name}\"\n",
            model(model_name).display()
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let local = |p: &str| data.join(p).display().to_string();

    // Parquet over ranged reads, against the same file read locally.
    let remote = config(
        "hf-s3",
        "parquet = \"s3://data/hf/*.parquet\"\nlabel_field = \"label\"",
        "tiny_nchw.onnx",
        "",
    );
    let here = config(
        "hf-local",
        &format!(
            "parquet = \"{}\"\nlabel_field = \"label\"",
            local("hf/train.parquet")
        ),
        "tiny_nchw.onnx",
        "",
    );
    for c in [&remote, &here] {
        let out = moto.layerwise(&["run", c.to_str().unwrap(), "-q"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let (remote_out, local_out) = (
        dir.path().join("out-hf-s3"),
        dir.path().join("out-hf-local"),
    );
    assert_same_columns(&remote_out, &local_out, &["stats", "maps"]);
    let sources = strings(&read_table(&remote_out, "images"), "source");
    assert!(sources
        .iter()
        .all(|s| s.as_deref() == Some("s3://data/hf/train.parquet")));

    // A missing object named as written is its error row; a glob that matches no object is
    // a config error.
    let missing = config(
        "missing",
        "parquet = \"s3://data/hf/missing.parquet\"",
        "tiny_nchw.onnx",
        "",
    );
    let out = moto.layerwise(&["run", missing.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", text(&out));
    let images = read_table(&dir.path().join("out-missing"), "images");
    assert_eq!(
        strings(&images, "path"),
        [Some("s3://data/hf/missing.parquet".to_owned())]
    );
    assert_eq!(
        strings(&images, "error"),
        [Some("shard not found (no such object)".to_owned())]
    );
    let nothing = config(
        "nothing",
        "webdataset = \"s3://data/wds/*.tgz\"",
        "tiny_nchw.onnx",
        "",
    );
    let out = moto.layerwise(&["run", nothing.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`input.webdataset` `s3://data/wds/*.tgz` matches no file"),
        "{}",
        text(&out)
    );

    // A bucket that cannot be listed is no config mistake: a retry may fix it (exit 1).
    let unlisted = config(
        "unlisted",
        "webdataset = \"s3://nobucket/wds/*.tar\"",
        "tiny_nchw.onnx",
        "",
    );
    let out = moto.layerwise(&["run", unlisted.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot list s3://nobucket/wds/"),
        "{}",
        text(&out)
    );

    // Tar shards streamed, listed by a glob; killed after its first part, then resumed.
    let slow = "batch_size = 1";
    let shards = config(
        "wds-s3",
        "webdataset = \"s3://data/wds/shard-*.tar\"\nlabel_field = \"txt\"",
        "vgg16.onnx",
        slow,
    );
    let out = dir.path().join("out-wds-s3");
    let mut child = moto
        .command(&["run", shards.to_str().unwrap(), "-q"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_after_first_part(&mut child, &out, Duration::ZERO);
    let resumed = moto.layerwise(&["run", shards.to_str().unwrap(), "-q"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let whole = dir.path().join("whole");
    let again = moto.layerwise(&[
        "run",
        shards.to_str().unwrap(),
        "-q",
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert!(again.status.success(), "{}", text(&again));
    assert_same_tables(&out, &whole);
    let images = read_table(&out, "images");
    assert_eq!(images.num_rows(), 12);
    assert_eq!(
        strings(&images, "source")[3].as_deref(),
        Some("s3://data/wds/shard-000001.tar")
    );
    // The same shards read locally give the same numbers.
    let here = config(
        "wds-local",
        &format!(
            "webdataset = \"{}\"\nlabel_field = \"txt\"",
            local("wds/shard-*.tar")
        ),
        "vgg16.onnx",
        slow,
    );
    single_run(&here, &dir.path().join("out-wds-local"));
    assert_same_columns(
        &out,
        &dir.path().join("out-wds-local"),
        &["stats", "maps", "vectors"],
    );
}

#[test]
fn a_report_reads_a_run_in_a_bucket_and_writes_into_it() {
    let moto = Moto::start();
    moto.boto("s3.create_bucket(Bucket='atlas')", &[]);
    let dir = tempfile::tempdir().unwrap();
    write_images(
        &dir.path().join("images"),
        &[("p/a.png", 10, 7), ("q/b.png", 9, 9), ("q/c.png", 12, 8)],
    );
    let layers = "[[layers]]\ntensor = \"conv1\"\nkeep = [2]\ntop_k = 2\n[run]\npart_size = 2";
    let config = tiny_config_with_layers(dir.path(), "atlas", layers);
    let url = "s3://atlas/runs/tiny";
    let run = moto.layerwise(&["run", config.to_str().unwrap(), "--out", url, "-q"]);
    assert!(run.status.success(), "{}", text(&run));

    let local = dir.path().join("site");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let made = moto
        .command(&["report", url, "--out", local.to_str().unwrap()])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    // ONNX Runtime 1.32 keeps a file of its own, `.ses`, in TMPDIR when it opens a session (the
    // report runs one to compute the maps the run did not keep); it is not the run's copy.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != ".ses")
        .collect();
    assert!(left.is_empty(), "the run's copy is removed: {left:?}");
    // Its pictures are those of a report of the same run made in a folder.
    let (here, here_site) = (dir.path().join("here"), dir.path().join("here-site"));
    let run_here = moto.layerwise(&[
        "run",
        config.to_str().unwrap(),
        "--out",
        here.to_str().unwrap(),
        "-q",
    ]);
    assert!(run_here.status.success(), "{}", text(&run_here));
    let made = moto.layerwise(&[
        "report",
        here.to_str().unwrap(),
        "--out",
        here_site.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", text(&made));
    let pictures = |site: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(site.join("layer-0"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let (got, want) = (pictures(&local), pictures(&here_site));
    assert!(
        want.len() >= 3,
        "{:?}",
        want.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(
        got == want,
        "the same pictures from the bucket as from the folder"
    );
    let index = std::fs::read_to_string(local.join("index.html")).unwrap();
    assert!(
        index.contains("<span id=\"images-total\">3</span>"),
        "{index}"
    );
    let layer = std::fs::read_to_string(local.join("layer-0.html")).unwrap();
    assert!(
        layer.contains("read_parquet(&#39;s3://atlas/runs/tiny/stats/*.parquet&#39;)"),
        "the queries name the bucket"
    );

    let uploaded = moto.layerwise(&["report", url]);
    assert!(uploaded.status.success(), "{}", text(&uploaded));
    assert_eq!(
        String::from_utf8_lossy(&uploaded.stdout).trim(),
        format!("{url}/report/index.html")
    );
    let fetched = dir.path().join("fetched");
    moto.boto(
        DOWNLOAD,
        &["atlas", "runs/tiny/report", fetched.to_str().unwrap()],
    );
    for page in [
        "index.html",
        "layer-0.html",
        "layer-0/channel-2.html",
        "assets/sort.js",
    ] {
        assert_eq!(
            std::fs::read(fetched.join(page)).unwrap(),
            std::fs::read(local.join(page)).unwrap(),
            "{page}: the uploaded report equals the local one"
        );
    }
}
