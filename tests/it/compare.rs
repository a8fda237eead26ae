//! Comparing layers (issue 25, so far the CKA of a run's map layers from its `stats` table):
//! the streamed sums against the Gram-matrix estimators on the same features, read back from
//! the Parquet files independently.

use std::collections::BTreeMap;

use layerwise::compare::cka::CkaSums;
use layerwise::compare::features::{run_sums, Features};
use layerwise::view::read::StoredRun;
use ndarray::{Array1, Array2};

use crate::common::*;

/// Each layer's features (images x channels) from the stats table's `column`.
fn features_of(out: &std::path::Path, column: &str) -> BTreeMap<String, Array2<f64>> {
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

#[test]
fn a_runs_cka_equals_the_gram_matrix_estimators_on_its_stats() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, u32, u32)> = (0..23).map(|i| (format!("{i:02}.png"), 8, 8)).collect();
    let named: Vec<(&str, u32, u32)> = files.iter().map(|(n, w, h)| (n.as_str(), *w, *h)).collect();
    write_images(&dir.path().join("images"), &named);
    write_html_as_jpg(&dir.path().join("images/broken.jpg"));
    let layers = "[[layers]]\ntensor = \"conv1\"\n[[layers]]\ntensor = \"conv2\"\n\
                  [run]\npart_size = 5\nbatch_size = 3";
    let config = tiny_config_with_layers(dir.path(), "cka", layers);
    run_quietly(&config).unwrap();
    let out = dir.path().join("out");
    let run = StoredRun::open(&out).unwrap();
    for (features, column) in [(Features::Mean, "mean"), (Features::Max, "max")] {
        let sums: CkaSums = run_sums(&run, &["conv1", "conv2"], features).unwrap();
        assert_eq!(sums.images(), 23, "the broken file has no features");
        let x = features_of(&out, column);
        let (standard, debiased) = reference(&x["conv1"], &x["conv2"]);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
        assert!(
            close(sums.cka(0, 1), standard),
            "{} {standard}",
            sums.cka(0, 1)
        );
        assert!(
            close(sums.cka_debiased(0, 1), debiased),
            "{} {debiased}",
            sums.cka_debiased(0, 1)
        );
        assert!((sums.cka(0, 0) - 1.0).abs() < 1e-12);
    }
    let err = run_sums(&run, &["conv3"], Features::Mean).unwrap_err();
    assert!(
        format!("{err:#}").contains("the run has no layer `conv3`"),
        "{err:#}"
    );
}

#[test]
fn compare_writes_the_similarity_table_of_its_schema_and_prints_the_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, u32, u32)> = (0..12).map(|i| (format!("{i:02}.png"), 8, 8)).collect();
    let named: Vec<(&str, u32, u32)> = files.iter().map(|(n, w, h)| (n.as_str(), *w, *h)).collect();
    write_images(&dir.path().join("images"), &named);
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
    let done = layerwise().arg("compare").arg(&out).output().unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        said.starts_with("linear CKA over 8 images (a partial run: 2 of 3 parts committed), features: each channel's mean\n"),
        "{said}"
    );
    let table = read_parquet(&out.join("compare/similarity.parquet"));
    let sums = run_sums(
        &StoredRun::open(&out).unwrap(),
        &["conv1", "conv2"],
        Features::Mean,
    )
    .unwrap();
    assert_eq!(table.num_rows(), 4, "the vector layer is left out");
    let pairs: Vec<(String, String)> = strings(&table, "layer_a")
        .into_iter()
        .zip(strings(&table, "layer_b"))
        .map(|(a, b)| (a.unwrap(), b.unwrap()))
        .collect();
    assert_eq!(pairs[1], ("conv1".to_owned(), "conv2".to_owned()));
    let cka = primitives::<arrow_array::types::Float64Type>(&table, "cka");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
    assert!(
        close(cka[1], sums.cka(0, 1)) && close(cka[1], cka[2]),
        "{cka:?}"
    );
    assert!(close(cka[0], 1.0) && close(cka[3], 1.0), "{cka:?}");
    assert_eq!(u64s(&table, "images"), vec![8; 4]);
    // The file is what schemas/similarity.json says.
    assert_eq!(schema_of(&table), contract("similarity"));
    // Mistakes exit 2.
    let vector = layerwise()
        .arg("compare")
        .arg(&out)
        .args(["--layers", "conv1,probs"])
        .output()
        .unwrap();
    assert_eq!(vector.status.code(), Some(2), "{}", text(&vector));
    assert!(
        text(&vector).contains("layer `probs` is a vector"),
        "{}",
        text(&vector)
    );
}
