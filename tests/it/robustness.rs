//! Dirty inputs, mistakes and faults: every file ends as one `images` row with a reason, every
//! config and model mistake names its key or file and the fix, and a full disk or a signal
//! leaves only committed parts behind, which a rerun completes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type, UInt64Type};
use arrow_array::Array;

/// The dirty folder of `tests/dirty/make_dirty.py` under `dir/images`.
fn make_dirty(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    let made = Command::new(python())
        .arg(root().join("tests/dirty/make_dirty.py"))
        .arg(&images)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    images
}

/// A config over `dir/images` and the identity model: the stored statistics of the `pixels`
/// layer are the mean pixel values of each image, resized to 32 x 32.
fn identity_config(dir: &Path, run: &str) -> PathBuf {
    let text = format!(
        "name = \"dirty\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n\
         [preprocess]\nsize = [32, 32]\nscale = 1.0\n[run]\nbatch_size = 4\n{run}\n\
         [[layers]]\nname = \"pixels\"\ntensor = \"pixels\"\nkeep = []\n[output]\ndir = \"out\"\n",
        model("identity_nchw.onnx").display()
    );
    write_config(dir, &text)
}

/// `path -> (status, error, width, height)` of the `images` table.
type ImageRows = BTreeMap<String, (String, Option<String>, Option<u32>, Option<u32>)>;

fn image_rows(out: &Path) -> ImageRows {
    let images = read_table(out, "images");
    let strings = |c: &str| images.column_by_name(c).unwrap().as_string::<i32>().clone();
    let (path, status, error) = (strings("path"), strings("status"), strings("error"));
    let width = images
        .column_by_name("width")
        .unwrap()
        .as_primitive::<UInt32Type>()
        .clone();
    let height = images
        .column_by_name("height")
        .unwrap()
        .as_primitive::<UInt32Type>()
        .clone();
    let opt_u32 = |a: &arrow_array::UInt32Array, i| (!a.is_null(i)).then(|| a.value(i));
    (0..images.num_rows())
        .map(|i| {
            let error = (!error.is_null(i)).then(|| error.value(i).to_owned());
            let row = (
                status.value(i).to_owned(),
                error,
                opt_u32(&width, i),
                opt_u32(&height, i),
            );
            (path.value(i).to_owned(), row)
        })
        .collect()
}

/// The mean of each of the three channels of each image, from the `stats` table.
fn channel_means(out: &Path) -> BTreeMap<(u64, u32), f32> {
    let stats = read_table(out, "stats");
    let ids = primitives::<UInt64Type>(&stats, "image_id");
    let channels = primitives::<UInt32Type>(&stats, "channel");
    let means = primitives::<Float32Type>(&stats, "mean");
    ids.into_iter().zip(channels).zip(means).collect()
}

#[test]
fn every_file_of_a_dirty_folder_ends_as_one_row_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let images = make_dirty(dir.path());
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(images.join("reference.json")).unwrap()).unwrap();
    std::fs::remove_file(images.join("reference.json")).unwrap();
    // As root (CI containers) permissions do not stop reads; elsewhere, test them too.
    let root_user = unsafe { libc::geteuid() } == 0;
    if !root_user {
        std::fs::write(images.join("locked.png"), b"x").unwrap();
        std::fs::create_dir(images.join("locked_folder")).unwrap();
        for p in ["locked.png", "locked_folder"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(images.join(p), std::fs::Permissions::from_mode(0o000))
                .unwrap();
        }
    }
    let record = run_quietly(&identity_config(dir.path(), "")).unwrap();
    let rows = image_rows(&dir.path().join("out"));

    let ok = [
        "alpha.png",
        "animated.gif",
        "animated.webp",
        "caf\\xe9.jpg",
        "cmyk.jpg",
        "exif_rotated.jpg",
        "exif_rotated.webp",
        "grey.jpg",
        "lossless_alpha.webp",
        "lossy.webp",
        "loop/inside.jpg",
        "palette.png",
        "progressive.jpg",
        "rgb.jpg",
        "sixteen_bit.png",
    ];
    let mut errors = vec![
        ("broken_link.jpg", "unreadable: broken symbolic link"),
        ("empty.jpg", "not an image: the file is empty"),
        ("error_page.jpg", "not an image: looks like HTML (a saved error page?)"),
        (
            "giant.png",
            "too large: 30000 x 30000 exceeds max_pixels (100000000); raise `[input] max_pixels` to take it",
        ),
        ("loop/again", "unreadable folder (its files could not be listed): symbolic link loop"),
        ("truncated.jpg", "truncated JPEG: missing end of image (the file was cut short)"),
        (
            "truncated.webp",
            "truncated WebP: shorter than its RIFF header says (the file was cut short)",
        ),
    ];
    if !root_user {
        errors.push(("locked.png", "unreadable: permission denied"));
        errors.push((
            "locked_folder",
            "unreadable folder (its files could not be listed): permission denied",
        ));
    }
    let mut expected: BTreeMap<String, (String, Option<String>)> = ok
        .iter()
        .map(|p| (p.to_string(), ("ok".to_owned(), None)))
        .collect();
    for (p, reason) in &errors {
        expected.insert(
            p.to_string(),
            ("error".to_owned(), Some(reason.to_string())),
        );
    }
    let got: BTreeMap<String, (String, Option<String>)> = rows
        .iter()
        .map(|(p, (status, error, _, _))| (p.clone(), (status.clone(), error.clone())))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(record.counts.images, (ok.len() + errors.len()) as u64);
    assert_eq!(
        (record.counts.ok, record.counts.error),
        (ok.len() as u64, errors.len() as u64)
    );

    // The EXIF orientation is applied: stored 48 x 32, shown (and recorded) 32 x 48.
    assert_eq!(rows["exif_rotated.jpg"].2, Some(32));
    assert_eq!(rows["exif_rotated.jpg"].3, Some(48));
    assert_eq!(rows["exif_rotated.webp"].2, Some(32));
    assert_eq!(rows["exif_rotated.webp"].3, Some(48));

    // The good images went through the model as Pillow sees them: the mean of each channel of
    // the model input matches Pillow's decode of the same file (CMYK, 16-bit, palette, alpha,
    // the first GIF and WebP frames, EXIF-rotated, WebP through libwebp); a half-grey or
    // colour-swapped decode would not.
    let ids: BTreeMap<String, u64> = {
        let table = read_table(&dir.path().join("out"), "images");
        let paths = table
            .column_by_name("path")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let ids = primitives::<UInt64Type>(&table, "image_id");
        (0..table.num_rows())
            .map(|i| (paths.value(i).to_owned(), ids[i]))
            .collect()
    };
    let means = channel_means(&dir.path().join("out"));
    for name in ok {
        let want = &reference[name];
        for c in 0..3u32 {
            let got = f64::from(means[&(ids[name], c)]);
            let want = want[c as usize].as_f64().unwrap();
            assert!(
                (got - want).abs() < 4.0,
                "{name} channel {c}: {got} vs Pillow's {want}"
            );
        }
    }
    assert_eq!(
        means.len(),
        ok.len() * 3,
        "statistics for the good images only"
    );
}

#[test]
fn a_file_gone_between_listing_and_reading_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    write_images(&dir.path().join("images"), &[("a.png", 8, 8)]);
    std::fs::write(dir.path().join("list.txt"), "a.png\ngone.png\n").unwrap();
    let config = identity_config(dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"images\"",
        "root = \"images\"\nlist = \"list.txt\"",
    );
    std::fs::write(&config, text).unwrap();
    run_quietly(&config).unwrap();
    let rows = image_rows(&dir.path().join("out"));
    assert_eq!(rows["a.png"].0, "ok");
    assert_eq!(
        rows["gone.png"].1.as_deref(),
        Some("unreadable: not found (removed after the listing?)")
    );
}

#[test]
fn too_many_bad_images_fail_the_run_after_writing_everything() {
    let dir = tempfile::tempdir().unwrap();
    make_dirty(dir.path());
    let config = identity_config(dir.path(), "max_error_fraction = 0.25");
    let out = layerwise()
        .arg("run")
        .arg(&config)
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains(
            "error: 7 of 22 images could not be used (31.82%), more than `[run] \
             max_error_fraction = 0.25` allows. Every part was written"
        ),
        "{}",
        text(&out)
    );
    let status = layerwise()
        .arg("status")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_eq!(image_rows(&dir.path().join("out")).len(), 22);

    let allowed = identity_config(dir.path(), "max_error_fraction = 0.5");
    let out = layerwise()
        .arg("run")
        .arg(&allowed)
        .arg("-q")
        .arg("--overwrite")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let wrong = identity_config(dir.path(), "max_error_fraction = 1.5");
    let out = layerwise().arg("run").arg(&wrong).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains(&format!(
        "config {}: `run.max_error_fraction` is 1.5; it is a share of the images, from 0 (no bad \
         image allowed) to 1 (never fail for bad images)",
        wrong.display()
    )));
}

/// Config and model mistakes: each is refused before any image is read (exit 2), naming the
/// key or file and the fix.
#[test]
fn config_and_model_mistakes_name_the_key_or_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    write_images(&dir.path().join("images"), &[("a.png", 8, 8)]);
    let good = std::fs::read_to_string(identity_config(dir.path(), "")).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("batch_size = 4", "batchsize = 4"),
            "`run.batchsize`: TOML parse error at line 10, column 1",
        ),
        (
            good.replace("batch_size = 4", "batch_size = \"4\""),
            "`run.batch_size`: TOML parse error",
        ),
        (
            good.replace("batch_size = 4", "batch_size = 0"),
            "`run.batch_size` must be at least 1",
        ),
        (
            good.replace("size = [32, 32]", "size = [0, 32]"),
            "`preprocess.size`",
        ),
        (
            good.replace("scale = 1.0", "scale = 1.0\nmean = [1.0, 2.0]"),
            "`preprocess.mean` has 2 values",
        ),
        (
            good.replace("scale = 1.0", "scale = 1.0\nstd = [1.0, 0.0, 1.0]"),
            "`preprocess.std[1]` must be a finite, non-zero",
        ),
        (
            good.replace("keep = []", "keep = [3]"),
            "`layers[0].keep` lists channel 3, but `pixels` has 3 channels (0 to 2)",
        ),
        (
            good.replace(
                "[output]",
                "[[layers]]\nname = \"pixels\"\ntensor = \"pixels\"\n[output]",
            ),
            "`layers[1].name` gives the name `pixels`",
        ),
        (
            good.replace("root = \"images\"", "root = \"no-such-folder\""),
            "no-such-folder, which is not a folder; point it at the folder of images",
        ),
        (
            good.replace("identity_nchw.onnx", "no-such-model.onnx"),
            "no-such-model.onnx: there is no such file; check `model.path`",
        ),
    ];
    for (config_text, expected) in cases {
        let config = write_config(dir.path(), &config_text);
        let out = layerwise().arg("run").arg(&config).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{expected}: {}", text(&out));
        assert!(
            text(&out).contains(expected),
            "wanted `{expected}` in: {}",
            text(&out)
        );
        assert!(
            !dir.path().join("out").exists(),
            "{expected}: nothing is written"
        );
    }
    // The output folder is a file.
    std::fs::write(dir.path().join("out"), b"").unwrap();
    let out = layerwise()
        .arg("run")
        .arg(write_config(dir.path(), &good))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("which is a file; choose a folder"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(dir.path().join("out")).unwrap();

    // Models: not ONNX, truncated ONNX, an input whose rank or element type does not fit.
    let script = "import onnx, sys\nfrom onnx import helper, TensorProto as T\n\
        for name, kind, shape in [('tokens', T.INT64, ['batch', 16]), ('flat', T.FLOAT, ['batch', 768])]:\n\
        \x20   g = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], name,\n\
        \x20       [helper.make_tensor_value_info('x', kind, shape)], [helper.make_tensor_value_info('y', kind, shape)])\n\
        \x20   onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]), f'{sys.argv[1]}/{name}.onnx')\n";
    let made = Command::new(python())
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let not_onnx = dir.path().join("notes.onnx");
    std::fs::write(&not_onnx, "these are my notes, not a model\n").unwrap();
    let whole = std::fs::read(model("tiny_nchw.onnx")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    for (path, expected) in [
        (&not_onnx, "is the file complete, and an .onnx export?"),
        (&truncated, "is the file complete, and an .onnx export?"),
        (
            &dir.path().join("flat.onnx"),
            "input `x` has rank 2; an image input has rank 4 (NCHW)",
        ),
        (
            &dir.path().join("tokens.onnx"),
            "input `x` takes int64 tensors; layerwise feeds images as float32 or uint8",
        ),
    ] {
        let config = good.replace(
            &model("identity_nchw.onnx").display().to_string(),
            &path.display().to_string(),
        );
        let out = layerwise()
            .arg("run")
            .arg(write_config(dir.path(), &config))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {}",
            path.display(),
            text(&out)
        );
        assert!(
            text(&out).contains(&format!("error: model {}", path.display())),
            "{}",
            text(&out)
        );
        assert!(text(&out).contains(expected), "{}", text(&out));
    }
}

/// A config over the tiny model, every map kept, parts of 10 images, writing to `dir/out`.
fn tiny_all_maps_config(dir: &Path, images: usize) -> PathBuf {
    let files: Vec<(String, u32, u32)> = (0..images)
        .map(|i| (format!("img{i:03}.png"), 24, 20))
        .collect();
    let files: Vec<(&str, u32, u32)> = files.iter().map(|(n, w, h)| (n.as_str(), *w, *h)).collect();
    write_images(&dir.join("images"), &files);
    let text = format!(
        "name = \"faults\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n[run]\n\
         batch_size = 2\npart_size = 10\n[[layers]]\nname = \"c\"\ntensor = \"conv1\"\n\
         keep = \"all\"\n[output]\ndir = \"out\"\ncompression = \"none\"\n",
        model("tiny_nchw.onnx").display()
    );
    write_config(dir, &text)
}

/// Files of the run folder that are not committed part files, markers or run metadata.
fn leftovers(out: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(out) {
        let path = entry.unwrap().into_path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') && path.is_file() {
            found.push(path);
        }
    }
    found
}

/// The run in `dir/out` left no temporary file, `status` says it is incomplete, and a rerun of
/// `config` completes it with the tables of an uninterrupted run.
fn assert_resumable(dir: &Path, config: &Path) {
    let out = dir.join("out");
    assert_eq!(
        leftovers(&out),
        Vec::<PathBuf>::new(),
        "no temporary file is left"
    );
    let status = layerwise().arg("status").arg(&out).output().unwrap();
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    let rerun = layerwise()
        .arg("run")
        .arg(config)
        .arg("-q")
        .output()
        .unwrap();
    assert!(rerun.status.success(), "{}", text(&rerun));
    let reference = dir.join("reference");
    single_run(config, &reference);
    assert_same_tables(&out, &reference);
}

#[test]
fn a_full_disk_commits_no_partial_part_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_all_maps_config(dir.path(), 25);
    let out = dir.path().join("out");
    // Part 2 (5 images) first, while there is room.
    let first = layerwise()
        .arg("run")
        .arg(&config)
        .args(["-q", "--shard", "2/3"])
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", text(&first));
    let small = std::fs::metadata(out.join("maps/part-00002.parquet"))
        .unwrap()
        .len();
    // Then the whole run with files limited to 1.5 x what 5 images take: parts of 10 do not
    // fit. (A file size limit stands in for a full disk: the write fails the same way.)
    let limit_kib = small * 3 / 2 / 1024;
    let full = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\" run \"$1\" -q",
        ))
        .arg(env!("CARGO_BIN_EXE_layerwise"))
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(full.status.code(), Some(1), "{}", text(&full));
    assert!(
        text(&full).contains(
            "error: the output's disk is full (or a file size limit was reached): the part in \
             progress was not committed and its files were removed; free space and run the same \
             command again"
        ),
        "{}",
        text(&full)
    );
    assert_eq!(
        part_files(&out, "maps"),
        vec![out.join("maps/part-00002.parquet")]
    );
    assert_resumable(dir.path(), &config);
}

#[test]
fn a_signal_stops_the_run_between_batches_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    // The VGG16-shaped model at 224 x 224 takes long enough per batch to interrupt mid-run.
    let files: Vec<(String, u32, u32)> = (0..40)
        .map(|i| (format!("img{i:03}.png"), 64, 48))
        .collect();
    let files: Vec<(&str, u32, u32)> = files.iter().map(|(n, w, h)| (n.as_str(), *w, *h)).collect();
    write_images(&dir.path().join("images"), &files);
    let text_config = format!(
        "name = \"signal\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n[run]\n\
         batch_size = 2\npart_size = 4\n[[layers]]\nname = \"last\"\ntensor = \"block5_conv3\"\n\
         keep = [0]\n[output]\ndir = \"out\"\n",
        model("vgg16.onnx").display()
    );
    let config = write_config(dir.path(), &text_config);
    let out = dir.path().join("out");
    let child = layerwise()
        .arg("run")
        .arg(&config)
        .arg("-q")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first_marker = out.join("_parts/part-00000.json");
    let waiting = Instant::now();
    while !first_marker.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(120),
            "no part committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let signalled = Instant::now();
    let stopped = child.wait_with_output().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "stops promptly"
    );
    assert_eq!(stopped.status.code(), Some(130), "{}", text(&stopped));
    assert!(text(&stopped).contains("stopping after the batch in progress"));
    assert!(text(&stopped).contains("parts are committed and kept, the part in progress was dropped; run the same command again to do the rest"), "{}", text(&stopped));
    let committed = part_files(&out, "stats").len();
    assert!(
        (1..10).contains(&committed),
        "{committed} of 10 parts committed"
    );
    assert_eq!(
        std::fs::read_dir(out.join("_parts")).unwrap().count(),
        committed
    );
    assert_resumable(dir.path(), &config);
}

#[test]
fn damaged_files_of_a_run_are_mistakes_that_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write_images(
        &dir.path().join("images"),
        &[("a.png", 9, 7), ("b.png", 8, 8)],
    );
    let config = identity_config(dir.path(), "");
    let out = dir.path().join("out");
    run_quietly(&config).unwrap();
    let command = |args: &[&str]| {
        let output = layerwise()
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // A part file cut short: the table cannot be read, and retrying will not change that.
    let part = out.join("stats/part-00000.parquet");
    let whole = std::fs::read(&part).unwrap();
    std::fs::write(&part, &whole[..whole.len() / 2]).unwrap();
    let (code, err) = command(&["report", "out", "--out", "site"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "error: cannot read out/stats/part-00000.parquet: Parquet error: Invalid Parquet \
             file. Corrupt footer; the file is damaged or is not Parquet"
        ),
        "{err}"
    );
    // A damaged manifest: said, and `--overwrite` replaces the run.
    std::fs::write(out.join("_manifest.json"), "{ not json").unwrap();
    let (code, err) = command(&["status", "out"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "error: out: its _manifest.json is damaged (key must be a string at line 1 \
             column 3); remove the folder, or pass --overwrite to replace it"
        ),
        "{err}"
    );
    let (code, err) = command(&["run", config.to_str().unwrap(), "-q"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("its _manifest.json is damaged"), "{err}");
    let (code, err) = command(&["run", config.to_str().unwrap(), "-q", "--overwrite"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(command(&["status", "out"]).0, Some(0));
}
