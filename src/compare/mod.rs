//! Comparing the representations of layers from what a run stored (issue 25): the linear CKA
//! of every pair of a run's map layers ([`within_run`]), streamed over its `stats` table
//! ([`features`]) into fixed-size sums ([`cka`]), written as `similarity.parquet`.
//! Not yet: two runs, RSA, sharded compare and merge, the heat map and the report's page.

pub mod cka;
pub mod features;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::reduce::LayerKind;
use crate::view::read::StoredRun;
use features::{run_sums, Features};

/// The similarity of two layers over the images they share.
#[derive(Debug, Clone, PartialEq)]
pub struct Similarity {
    /// The first layer.
    pub layer_a: String,
    /// The second layer.
    pub layer_b: String,
    /// The run of the first layer (its folder, as given).
    pub run_a: String,
    /// The run of the second layer.
    pub run_b: String,
    /// Images compared.
    pub images: u64,
    /// The standard (biased) linear CKA.
    pub cka: f64,
    /// The debiased linear CKA (unbiased HSIC).
    pub cka_debiased: f64,
    /// What stood for a layer on an image: `mean` or `max` of each channel.
    pub features: &'static str,
}

/// The `similarity.parquet` table's schema (`schemas/similarity.json` describes it).
pub static SIMILARITY: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let number = |name: &str| Field::new(name, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        text("layer_a"),
        text("layer_b"),
        text("run_a"),
        text("run_b"),
        Field::new("images", DataType::UInt64, false),
        number("cka"),
        number("cka_debiased"),
        text("features"),
    ]))
});

/// Every pair of `layers` of a run (default: all its map layers, in run order), each pair both
/// ways, the layer with itself included: a full symmetric matrix, row by row.
pub fn within_run(
    run: &StoredRun,
    location: &Path,
    layers: Option<&[String]>,
    features: Features,
) -> Result<Vec<Similarity>> {
    let names: Vec<&str> = match layers {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => (run.layers.iter())
            .filter(|l| l.kind == LayerKind::Maps)
            .map(|l| l.name.as_str())
            .collect(),
    };
    if names.is_empty() {
        crate::mistake!("{} has no map layer to compare", location.display());
    }
    let sums = run_sums(run, &names, features)?;
    if sums.images() < 4 {
        crate::mistake!(
            "{} has {} ok images: the debiased CKA needs 4 or more",
            location.display(),
            sums.images()
        );
    }
    let here = location.display().to_string();
    let mut rows = Vec::with_capacity(names.len() * names.len());
    for (a, name_a) in names.iter().enumerate() {
        for (b, name_b) in names.iter().enumerate() {
            rows.push(Similarity {
                layer_a: name_a.to_string(),
                layer_b: name_b.to_string(),
                run_a: here.clone(),
                run_b: here.clone(),
                images: sums.images(),
                cka: sums.cka(a, b),
                cka_debiased: sums.cka_debiased(a, b),
                features: features.column(),
            });
        }
    }
    Ok(rows)
}

/// The rows as a record batch of [`SIMILARITY`].
pub fn to_batch(rows: &[Similarity]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Similarity) -> &str| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let number = |f: &dyn Fn(&Similarity) -> f64| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<Float64Array>())
    };
    let columns = vec![
        text(&|r| &r.layer_a),
        text(&|r| &r.layer_b),
        text(&|r| &r.run_a),
        text(&|r| &r.run_b),
        Arc::new(rows.iter().map(|r| Some(r.images)).collect::<UInt64Array>()) as ArrayRef,
        number(&|r| r.cka),
        number(&|r| r.cka_debiased),
        text(&|r| r.features),
    ];
    Ok(RecordBatch::try_new(SIMILARITY.clone(), columns)?)
}

/// Writes `DIR/similarity.parquet` (through a temporary file, so a partial file is never
/// seen) and returns its path.
pub fn write(rows: &[Similarity], dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("similarity.parquet");
    let temporary = dir.join(".similarity.parquet.tmp");
    let file = std::fs::File::create(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, SIMILARITY.clone(), None)?;
    writer.write(&to_batch(rows)?)?;
    writer.close()?;
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The matrix of one column as text: a row per layer, its values to 3 decimals.
pub fn matrix_text(rows: &[Similarity], value: impl Fn(&Similarity) -> f64) -> String {
    let mut names: Vec<&str> = Vec::new();
    for row in rows {
        if !names.contains(&row.layer_a.as_str()) {
            names.push(&row.layer_a);
        }
    }
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(5);
    let mut text = format!("{:width$}", "");
    for name in &names {
        text += &format!(" {name:>width$}");
    }
    text.push('\n');
    for chunk in rows.chunks(names.len().max(1)) {
        text += &format!("{:width$}", chunk[0].layer_a);
        for row in chunk {
            text += &format!(" {:>width$.3}", value(row));
        }
        text.push('\n');
    }
    text
}
