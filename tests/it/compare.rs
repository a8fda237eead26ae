//! Comparing layers (`layerwise compare`): the streamed sums against the Gram-matrix
//! estimators on the same features, read back from the Parquet files independently; shards
//! merged against one pass; two runs of different models matched by path; the heat map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::types::Float64Type;
use arrow_array::RecordBatch;
use layerwise::compare::accumulate::{accumulate, Side};
use layerwise::compare::cka::CkaSums;
use layerwise::compare::features::{Features, RunFeatures};
use layerwise::compare::matching::{Matching, Pair, Pairs, RunIndex};
use layerwise::compare::{pass, Request};
use layerwise::shard::Shard;
use layerwise::view::read::StoredRun;
use ndarray::{Array1, Array2};

use crate::common::*;

/// Each layer's features (images x channels, rows in `image_id` order) from the stats
/// table's `column`.
fn features_of(out: &Path, column: &str) -> BTreeMap<String, Array2<f64>> {
    let stats = read_table(out, "stats");
    let (ids, layers, channels, values) = (
        u64s(&stats, "image_id"),
        strings(&stats, "layer"),
        u32s(&stats, "channel"),
        f32s(&stats, column),
    );
    let mut by_layer: BTreeMap<String, BTreeMap<(u64, u32), f64>> = BTreeMap::new();
    for i in 0..ids.len() {
        let layer = layers[i].clone().unwrap();
        by_layer
            .entry(layer)
            .or_default()
            .insert((ids[i], channels[i]), values[i] as f64);
    }
    by_layer
        .into_iter()
        .map(|(layer, cells)| {
            let images: std::collections::BTreeSet<u64> = cells.keys().map(|k| k.0).collect();
            let width = cells.keys().map(|k| k.1).max().unwrap() as usize + 1;
            let mut x = Array2::zeros((images.len(), width));
            for (row, id) in images.iter().enumerate() {
                for c in 0..width {
                    x[[row, c]] = cells[&(*id, c as u32)];
                }
            }
            (layer, x)
        })
        .collect()
}

/// Song et al.'s unbiased HSIC from Gram matrices with zeroed diagonals.
fn hsic_u(k: &Array2<f64>, l: &Array2<f64>) -> f64 {
    let n = k.nrows() as f64;
    let zero = |m: &Array2<f64>| {
        let mut m = m.clone();
        m.diag_mut().fill(0.0);
        m
    };
    let (k, l) = (zero(k), zero(l));
    let ones = Array1::<f64>::ones(k.nrows());
    ((&k * &l).sum() + k.sum() * l.sum() / ((n - 1.0) * (n - 2.0))
        - 2.0 / (n - 2.0) * ones.dot(&k.dot(&l)).dot(&ones))
        / (n * (n - 3.0))
}

/// (standard, debiased) CKA from the Gram matrices.
fn reference(x: &Array2<f64>, y: &Array2<f64>) -> (f64, f64) {
    let n = x.nrows();
    let h = Array2::<f64>::eye(n) - 1.0 / n as f64;
    let (k, l) = (x.dot(&x.t()), y.dot(&y.t()));
    let (kc, lc) = (h.dot(&k).dot(&h), h.dot(&l).dot(&h));
    let hsic = |a: &Array2<f64>, b: &Array2<f64>| (a * b).sum();
    let standard = hsic(&kc, &lc) / (hsic(&kc, &kc) * hsic(&lc, &lc)).sqrt();
    let debiased = hsic_u(&k, &l) / (hsic_u(&k, &k) * hsic_u(&l, &l)).sqrt();
    (standard, debiased)
}

/// The paths of a run's images by id.
fn paths_of(out: &Path) -> BTreeMap<u64, String> {
    let images = read_table(out, "images");
    let paths = strings(&images, "path").into_iter().map(Option::unwrap);
    u64s(&images, "image_id").into_iter().zip(paths).collect()
}

/// Each layer's features by image path.
type ByPath = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

/// Each layer's features by image path: map layers' `mean` from stats, vectors' values.
fn features_by_path(out: &Path) -> ByPath {
    let paths = paths_of(out);
    let mut by_layer: ByPath = BTreeMap::new();
    let stats = read_table(out, "stats");
    let (ids, layers, channels, means) = (
        u64s(&stats, "image_id"),
        strings(&stats, "layer"),
        u32s(&stats, "channel"),
        f32s(&stats, "mean"),
    );
    for i in 0..ids.len() {
        let row = (by_layer.entry(layers[i].clone().unwrap()).or_default())
            .entry(paths[&ids[i]].clone())
            .or_default();
        let c = channels[i] as usize;
        row.resize(row.len().max(c + 1), f64::NAN);
        row[c] = means[i] as f64;
    }
    if part_files(out, "vectors").is_empty() {
        return by_layer;
    }
    let vectors = read_table(out, "vectors");
    let (ids, layers) = (u64s(&vectors, "image_id"), strings(&vectors, "layer"));
    for ((id, layer), values) in ids.iter().zip(layers).zip(lists(&vectors)) {
        let values = values.iter().map(|&v| v as f64).collect();
        (by_layer.entry(layer.unwrap()).or_default()).insert(paths[id].clone(), values);
    }
    by_layer
}

/// The rows of `paths`, in that order.
fn rows(features: &BTreeMap<String, Vec<f64>>, paths: &[String]) -> Array2<f64> {
    let width = features[&paths[0]].len();
    Array2::from_shape_fn((paths.len(), width), |(i, c)| features[&paths[i]][c])
}

/// Each row's `cka` and `cka_debiased` equal the Gram-matrix estimators on the features of
/// its layers (`layer_a`'s from `x`, `layer_b`'s from `y`) over `paths`, within 1e-9.
fn assert_equals_reference(table: &RecordBatch, (x, y): (&ByPath, &ByPath), paths: &[String]) {
    let cka = primitives::<Float64Type>(table, "cka");
    let debiased = primitives::<Float64Type>(table, "cka_debiased");
    let (layers_a, layers_b) = (strings(table, "layer_a"), strings(table, "layer_b"));
    for i in 0..table.num_rows() {
        let (a, b) = (layers_a[i].clone().unwrap(), layers_b[i].clone().unwrap());
        let (standard, unbiased) = reference(&rows(&x[&a], paths), &rows(&y[&b], paths));
        assert!(
            close(cka[i], standard, 1e-9),
            "{a} {b}: {} {standard}",
            cka[i]
        );
        let got = debiased[i];
        assert!(close(got, unbiased, 1e-9), "{a} {b}: {got} {unbiased}");
    }
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * a.abs().max(b.abs())
}

/// Writes `n` small PNGs named 00.png, 01.png, ... under `dir/folder`.
fn numbered_images(dir: &Path, folder: &str, n: usize) {
    let files: Vec<(String, u32, u32)> = (0..n).map(|i| (format!("{i:02}.png"), 8, 8)).collect();
    let named: Vec<(&str, u32, u32)> = files.iter().map(|(n, w, h)| (n.as_str(), *w, *h)).collect();
    write_images(&dir.join(folder), &named);
}

fn request(runs: &[&Path], layers: Option<&[&str]>, features: Features) -> Request {
    Request {
        runs: runs.iter().map(|r| r.to_path_buf()).collect(),
        layers: layers.map(|l| l.iter().map(|n| n.to_string()).collect()),
        features,
        rsa: None,
        seed: 0,
    }
}

#[test]
fn a_runs_cka_equals_the_gram_matrix_estimators_on_its_stats() {
    let dir = tempfile::tempdir().unwrap();
    numbered_images(dir.path(), "images", 23);
    write_html_as_jpg(&dir.path().join("images/broken.jpg"));
    let layers = "[[layers]]\ntensor = \"conv1\"\n[[layers]]\ntensor = \"conv2\"\n\
                  [run]\npart_size = 5\nbatch_size = 3";
    let config = tiny_config_with_layers(dir.path(), "cka", layers);
    run_quietly(&config).unwrap();
    let out = dir.path().join("out");
    for (features, column) in [(Features::Mean, "mean"), (Features::Max, "max")] {
        let asked = request(&[&out], Some(&["conv1", "conv2"]), features);
        let (record, sums) = pass(&asked, Shard::default(), dir.path()).unwrap();
        let sums: CkaSums = sums.sums;
        assert_eq!(sums.images(), 23, "the broken file has no features");
        assert_eq!(record.left_out.failed, 1);
        let x = features_of(&out, column);
        let (standard, debiased) = reference(&x["conv1"], &x["conv2"]);
        assert!(
            close(sums.cka(0, 1), standard, 1e-9),
            "{} {standard}",
            sums.cka(0, 1)
        );
        let got = sums.cka_debiased(0, 1);
        assert!(close(got, debiased, 1e-9), "{got} {debiased}");
        assert!((sums.cka(0, 0) - 1.0).abs() < 1e-12);
    }
    let asked = request(&[&out], Some(&["conv3"]), Features::Mean);
    let err = pass(&asked, Shard::default(), dir.path()).unwrap_err();
    assert!(
        format!("{err:#}").contains("the run has no layer `conv3`"),
        "{err:#}"
    );
}

#[test]
fn compare_writes_the_similarity_table_of_its_schema_its_heat_map_and_prints_the_matrix() {
    let dir = tempfile::tempdir().unwrap();
    numbered_images(dir.path(), "images", 12);
    let layers = "[[layers]]\ntensor = \"conv1\"\n[[layers]]\ntensor = \"conv2\"\n\
                  [[layers]]\ntensor = \"probs\"\n[run]\npart_size = 4";
    let config = tiny_config_with_layers(dir.path(), "cmp", layers);
    let out = dir.path().join("out");
    // Two of three parts: a partial run compares its committed parts and says so.
    let half = layerwise()
        .args(["run", config.to_str().unwrap(), "--quiet", "--shard", "0/2"])
        .output()
        .unwrap();
    assert_eq!(half.status.code(), Some(0), "{}", text(&half));
    let said = succeeded(layerwise().arg("compare").arg(&out));
    assert!(
        said.starts_with("linear CKA over 8 images (a partial run: 2 of 3 parts committed), features: each channel's mean\n"),
        "{said}"
    );
    let table = read_parquet(&out.join("compare/similarity.parquet"));
    assert_eq!(
        table.num_rows(),
        9,
        "conv1, conv2 and the vector probs, each with each"
    );
    let pairs: Vec<(String, String)> = strings(&table, "layer_a")
        .into_iter()
        .zip(strings(&table, "layer_b"))
        .map(|(a, b)| (a.unwrap(), b.unwrap()))
        .collect();
    assert_eq!(pairs[2], ("conv1".to_owned(), "probs".to_owned()));
    let x = features_by_path(&out);
    let paths: Vec<String> = x["conv1"].keys().cloned().collect();
    assert_eq!(paths.len(), 8);
    assert_equals_reference(&table, (&x, &x), &paths);
    let cka = primitives::<Float64Type>(&table, "cka");
    for (i, (a, b)) in pairs.iter().enumerate() {
        let mirror = pairs.iter().position(|p| p.0 == *b && p.1 == *a).unwrap();
        assert_eq!(cka[i], cka[mirror], "symmetric");
    }
    assert_eq!(u64s(&table, "images"), vec![8; 9]);
    let rsa = table.column_by_name("rsa").unwrap();
    assert_eq!(
        arrow_array::Array::null_count(rsa),
        9,
        "no RSA unless asked"
    );
    // The file is what schemas/similarity.json says.
    assert_eq!(schema_of(&table), contract("similarity"));
    // The heat map: three columns of cells in viridis, the values written.
    let picture = image::open(out.join("compare/similarity.png"))
        .unwrap()
        .to_rgb8();
    let colours: std::collections::BTreeSet<[u8; 3]> = picture.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 20,
        "drawn, not blank: {} colours",
        colours.len()
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("compare/compare.json")).unwrap()).unwrap();
    assert_eq!(record["images"], 8);
    assert_eq!(record["layers"][0][2], "probs");
    // Mistakes exit 2.
    for (args, said) in [
        (
            vec!["--layers", "conv1,nope"],
            "the run has no layer `nope`",
        ),
        (
            vec!["--layers", "conv1", "--features", "prefix"],
            "layer `conv1` has no class token",
        ),
        (
            vec!["--features", "prefix"],
            "no layer of the run stores a class token",
        ),
        (
            vec!["--rsa", "0"],
            "--rsa takes a sample of 4 images or more",
        ),
    ] {
        let refused = layerwise()
            .arg("compare")
            .arg(&out)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
        assert!(text(&refused).contains(said), "{}", text(&refused));
    }
}

/// A finished run of the tiny CNN over `dir/images` (`n` images) in parts of 4, to `dir/out`.
fn cnn_run(dir: &Path, n: usize) -> PathBuf {
    numbered_images(dir, "images", n);
    let layers = "[[layers]]\ntensor = \"conv1\"\n[[layers]]\ntensor = \"conv2\"\n\
                  [[layers]]\ntensor = \"probs\"\n[run]\npart_size = 4";
    run_quietly(&tiny_config_with_layers(dir, "cnn", layers)).unwrap();
    dir.join("out")
}

#[test]
fn the_sums_of_three_shards_merge_to_one_pass_and_a_missing_or_torn_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = cnn_run(dir.path(), 22);
    let whole = dir.path().join("whole");
    succeeded(
        layerwise()
            .arg("compare")
            .arg(&out)
            .args(["--rsa", "9", "--out"])
            .arg(&whole),
    );
    let sharded = dir.path().join("sharded");
    for i in 0..3 {
        let said = succeeded(
            (layerwise().arg("compare").arg(&out))
                .args(["--rsa", "9", "--shard", &format!("{i}/3"), "--out"])
                .arg(&sharded),
        );
        assert!(
            said.contains(&format!("shard {i}/3: the sums of ")),
            "{said}"
        );
        assert!(
            said.contains("when every shard is written: layerwise compare --merge"),
            "{said}"
        );
    }
    let said = succeeded(layerwise().arg("compare").arg("--merge").arg(&sharded));
    assert!(
        said.starts_with("linear CKA over 22 images, features: each channel's mean\n"),
        "{said}"
    );
    assert!(
        said.contains("RSA (Spearman) over a sample of 9 images, seed 0:\n"),
        "{said}"
    );
    let (one, merged) = (
        read_parquet(&whole.join("similarity.parquet")),
        read_parquet(&sharded.join("similarity.parquet")),
    );
    assert_eq!(u64s(&merged, "images"), vec![22; 9]);
    for column in ["cka", "cka_debiased"] {
        let (a, b) = (
            primitives::<Float64Type>(&one, column),
            primitives::<Float64Type>(&merged, column),
        );
        for (x, y) in a.iter().zip(&b) {
            assert!(close(*x, *y, 1e-12), "{column}: {a:?} {b:?}");
        }
    }
    let rsa = primitives::<Float64Type>(&merged, "rsa");
    assert_eq!(
        primitives::<Float64Type>(&one, "rsa"),
        rsa,
        "the same sample, the same RSA"
    );
    assert!((rsa[0] - 1.0).abs() < 1e-12 && rsa[1] == rsa[3], "{rsa:?}");
    assert_eq!(
        std::fs::read(whole.join("compare.json")).unwrap(),
        std::fs::read(sharded.join("compare.json")).unwrap(),
        "the same record, sample included"
    );
    // A shard missing, then a torn shard's file: exit 2, saying what to do.
    let file = |i: usize| sharded.join(format!("shards/shard-0000{i}-of-00003.cka"));
    let kept = std::fs::read(file(1)).unwrap();
    std::fs::remove_file(file(1)).unwrap();
    let missing = layerwise()
        .arg("compare")
        .arg("--merge")
        .arg(&sharded)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("lacks shards 1/3: run compare with --shard"),
        "{}",
        text(&missing)
    );
    std::fs::write(file(1), &kept[..kept.len() - 8]).unwrap();
    let torn = layerwise()
        .arg("compare")
        .arg("--merge")
        .arg(&sharded)
        .output()
        .unwrap();
    assert_eq!(torn.status.code(), Some(2), "{}", text(&torn));
    assert!(
        text(&torn).contains(
            "is not a whole shard's file of layerwise compare (its numbers do not fit its layers)"
        ),
        "{}",
        text(&torn)
    );
}

#[test]
fn two_runs_of_different_models_are_compared_over_the_images_ok_in_both() {
    let dir = tempfile::tempdir().unwrap();
    // The CNN sees 12 images and one more; the ViT the same 12, one of them broken.
    let cnn = cnn_run(dir.path(), 13);
    numbered_images(dir.path(), "vit-images", 12);
    write_html_as_jpg(&dir.path().join("vit-images/03.png"));
    let text_of = format!(
        "name = \"vit\"\n[input]\nroot = \"vit-images\"\n[model]\npath = \"{}\"\n\
         [[layers]]\ntensor = \"block0\"\n[[layers]]\ntensor = \"block1\"\n\
         [run]\npart_size = 5\n[output]\ndir = \"vit\"\n",
        model("tiny_vit.onnx").display()
    );
    run_quietly(&write_config(dir.path(), &text_of)).unwrap();
    let vit = dir.path().join("vit");
    let said = succeeded(layerwise().arg("compare").arg(&cnn).arg(&vit));
    assert!(
        said.starts_with("linear CKA over 11 images, features: each channel's mean\n"),
        "{said}"
    );
    let counts = format!(
        "matched by (source, path): 1 only in {}, 0 only in {}, 1 failed in either, 0 repeated\n",
        cnn.display(),
        vit.display()
    );
    assert!(said.contains(&counts), "{said}");
    let table = read_parquet(&cnn.join("compare-vit/similarity.parquet"));
    assert_eq!(
        table.num_rows(),
        3 * 2,
        "the CNN's 3 layers down, the ViT's 2 across"
    );
    let (x, y) = (features_by_path(&cnn), features_by_path(&vit));
    let paths: Vec<String> = (0..12)
        .filter(|&i| i != 3)
        .map(|i| format!("{i:02}.png"))
        .collect();
    assert_equals_reference(&table, (&x, &y), &paths);
    assert_eq!(
        strings(&table, "run_b")[0].as_deref(),
        Some(vit.to_str().unwrap())
    );
    // The ViT's class tokens (positions, float16) stand for its blocks with `prefix`.
    let tokens = succeeded(
        layerwise()
            .arg("compare")
            .arg(&vit)
            .args(["--features", "prefix"]),
    );
    assert!(
        tokens.starts_with("linear CKA over 11 images, features: the class token\n"),
        "{tokens}"
    );
    let prefix = read_parquet(&vit.join("compare/similarity.parquet"));
    let positions = read_table(&vit, "positions");
    let paths_by_id = paths_of(&vit);
    let mut class: ByPath = BTreeMap::new();
    let (ids, layers) = (u64s(&positions, "image_id"), strings(&positions, "layer"));
    for ((id, layer), values) in ids.iter().zip(layers).zip(position_vectors(&positions)) {
        let values = values.iter().map(|&v| v as f64).collect();
        class
            .entry(layer.unwrap())
            .or_default()
            .insert(paths_by_id[id].clone(), values);
    }
    let (standard, _) = reference(
        &rows(&class["block0"], &paths),
        &rows(&class["block1"], &paths),
    );
    let got = primitives::<Float64Type>(&prefix, "cka")[1];
    assert!(close(got, standard, 1e-9), "{got} {standard}");
}

#[test]
fn a_second_run_in_another_order_is_read_in_the_first_runs_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = cnn_run(dir.path(), 10);
    let run = StoredRun::open(&out).unwrap();
    let index = RunIndex::read(&run).unwrap();
    let side = || Side {
        features: RunFeatures::new(&run, Some(&["conv1", "conv2"]), Features::Mean).unwrap(),
        index: &index,
    };
    // Each image paired with another: the second side's parts come out of order.
    let places: Vec<(usize, u64)> = (0..index.parts.len())
        .flat_map(|part| index.ok_ids(part).iter().map(move |&id| (part, id)))
        .collect();
    let n = places.len();
    let pairs = (0..n)
        .map(|k| Pair {
            a: places[k],
            b: places[n - 1 - k],
        })
        .collect();
    let crossed = Matching {
        pairs: Pairs::Across(pairs),
        images: n as u64,
        sample: vec![],
        sample_keys: vec![],
        left_out: Default::default(),
    };
    let got = accumulate(
        &side(),
        Some(&side()),
        &crossed,
        Shard::default(),
        dir.path(),
    )
    .unwrap();
    let x = features_of(&out, "mean");
    let (conv1, conv2) = (&x["conv1"], &x["conv2"]);
    let mut reversed = conv2.clone();
    for k in 0..n {
        reversed.row_mut(k).assign(&conv2.row(n - 1 - k));
    }
    let (standard, debiased) = reference(conv1, &reversed);
    // Layers: conv1, conv2 of the first side, then conv1, conv2 of the second.
    assert!(
        close(got.sums.cka(0, 3), standard, 1e-9),
        "{} {standard}",
        got.sums.cka(0, 3)
    );
    assert!(close(got.sums.cka_debiased(0, 3), debiased, 1e-9));
    let same = reference(conv1, conv2).0;
    assert!(close(got.sums.cka(0, 1), same, 1e-9) && !close(standard, same, 1e-3));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "no file left behind"
    );
}

#[test]
fn the_reports_index_shows_the_runs_matrix_and_a_comparisons() {
    let dir = tempfile::tempdir().unwrap();
    let out = cnn_run(dir.path(), 9);
    let compared = dir.path().join("compared");
    succeeded(
        layerwise()
            .arg("compare")
            .arg(&out)
            .arg(&out)
            .arg("--out")
            .arg(&compared),
    );
    let site = dir.path().join("site");
    succeeded(
        (layerwise().arg("report").arg(&out).arg("--out").arg(&site))
            .arg("--compare")
            .arg(&compared),
    );
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(
        index.contains("<h2 id=\"similarity\">How the layers relate</h2>"),
        "{index}"
    );
    assert!(
        index.contains(
            "pair of layers over 9 images, each layer standing as each channel&#39;s mean"
        ),
        "{index}"
    );
    let heading = format!(
        "<h2 id=\"comparison\">Comparison: {} with {}</h2>",
        out.display(),
        out.display()
    );
    assert!(index.contains(&heading), "{index}");
    assert!(index.contains("(0 only in the first run, 0 only in the second, 0 failed in either)"));
    // The pictures are the heat maps of the numbers: the run with itself is its own matrix.
    let own = image::open(site.join("similarity.png")).unwrap().to_rgb8();
    let drawn = image::open(site.join("comparison.png")).unwrap().to_rgb8();
    assert_eq!(
        own, drawn,
        "a run compared with itself is its within-run matrix"
    );
    assert_eq!(
        own,
        image::open(compared.join("similarity.png"))
            .unwrap()
            .to_rgb8()
    );
    // A folder that is not a comparison, and a table of another shape: exit 2.
    let refused = |folder: &Path, said: &str| {
        let o = (layerwise().arg("report").arg(&out).arg("--out").arg(&site))
            .arg("--compare")
            .arg(folder)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(said), "{}", text(&o));
    };
    refused(
        &out,
        "compare.json: give a folder that layerwise compare wrote",
    );
    std::fs::copy(
        out.join("stats/part-00000.parquet"),
        compared.join("similarity.parquet"),
    )
    .unwrap();
    refused(
        &compared,
        "is not a similarity table: it has no layer_a column of type Utf8",
    );
}
