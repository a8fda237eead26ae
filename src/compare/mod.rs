//! Comparing the representations of layers from what runs stored (no model pass): the linear
//! CKA, standard and debiased, of every pair of layers within a run or across two runs
//! ([`pass`], [`finish`]), from per-image features ([`features`]) of the images both have
//! ([`matching`]), streamed into fixed-size sums ([`cka`], [`accumulate`](mod@accumulate)); RSA on a sample
//! ([`rsa`]); per shard and merged ([`store`]). Written as `similarity.parquet`, a heat map
//! ([`heatmap`]) and `compare.json`.

pub mod accumulate;
pub mod cka;
pub mod features;
pub mod heatmap;
pub mod matching;
pub mod rsa;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::{s, Array2};
use serde::{Deserialize, Serialize};

use crate::shard::Shard;
use crate::view::read::StoredRun;
use accumulate::{accumulate, Accumulator, Side};
use features::{Features, RunFeatures};
use matching::{LeftOut, Matching, RunIndex};

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
    /// The Spearman correlation of the layers' dissimilarity matrices on the RSA sample.
    pub rsa: Option<f64>,
    /// What stood for a map layer on an image: `mean`, `max` or `prefix`.
    pub features: String,
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
        Field::new("rsa", DataType::Float64, true),
        text("features"),
    ]))
});

/// What to compare.
#[derive(Debug, Clone)]
pub struct Request {
    /// One run (its layers with each other) or two (the first's layers with the second's).
    pub runs: Vec<PathBuf>,
    /// Only these layers, each from the runs that have it (default: every layer of each run
    /// that the features apply to).
    pub layers: Option<Vec<String>>,
    /// What stands for a map layer on an image.
    pub features: Features,
    /// RSA on a sample of this many images, too.
    pub rsa: Option<usize>,
    /// The seed that draws the RSA sample.
    pub seed: u64,
}

/// What a comparison is and what it found: `compare.json`, and the header of every shard's
/// file (shards merge only when their records are equal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The runs' folders, as given.
    pub runs: Vec<String>,
    /// Each run's compared layers, in order.
    pub layers: Vec<Vec<String>>,
    /// Their features' widths.
    pub widths: Vec<Vec<usize>>,
    /// What stood for a map layer: `mean`, `max` or `prefix`.
    pub features: String,
    /// The images compared.
    pub images: u64,
    /// The images left out, and why.
    pub left_out: LeftOut,
    /// Each run's committed parts, and all its parts.
    pub parts: Vec<(usize, usize)>,
    /// The RSA sample, when RSA was asked for.
    pub rsa: Option<RsaSample>,
}

/// The images of the RSA sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RsaSample {
    /// The seed that drew it.
    pub seed: u64,
    /// The size asked for (the sample is smaller when fewer images were compared).
    pub size: usize,
    /// Its images' (`source`, `path`), in the first run's order.
    pub images: Vec<(String, String)>,
}

impl Record {
    /// The widths of every compared layer, the first run's then the second's.
    pub fn all_widths(&self) -> Vec<usize> {
        self.widths.concat()
    }

    /// Says which runs are partial: " (a partial run: 2 of 3 parts committed)", or nothing.
    pub fn partial(&self) -> String {
        let said: Vec<String> = (self.runs.iter().zip(&self.parts))
            .filter(|(_, (done, all))| done < all)
            .map(|(run, (done, all))| match self.runs.len() {
                1 => format!("a partial run: {done} of {all} parts committed"),
                _ => format!("{run} is partial: {done} of {all} parts committed"),
            })
            .collect();
        match said.is_empty() {
            true => String::new(),
            false => format!(" ({})", said.join("; ")),
        }
    }
}

/// One pass over the compared images of shard `shard`: the comparison's record and the sums
/// of its share. `scratch` takes a temporary file when the second run's images come in
/// another order than the first's.
pub fn pass(request: &Request, shard: Shard, scratch: &Path) -> Result<(Record, Accumulator)> {
    let runs = (request.runs.iter().map(|r| StoredRun::open(r))).collect::<Result<Vec<_>>>()?;
    let indexes = runs
        .iter()
        .map(RunIndex::read)
        .collect::<Result<Vec<_>>>()?;
    let names = chosen_layers(&runs, request)?;
    let mut sides = Vec::with_capacity(runs.len());
    for ((run, index), names) in runs.iter().zip(&indexes).zip(&names) {
        let features = RunFeatures::new(run, names.as_deref(), request.features)?;
        sides.push(Side { features, index });
    }
    let rsa = request.rsa.map(|n| (n, request.seed));
    if rsa.is_some_and(|(n, _)| n < 4) {
        crate::mistake!("--rsa takes a sample of 4 images or more");
    }
    let matching = match (runs.as_slice(), indexes.as_slice()) {
        ([run], [index]) => Matching::within(run, index, rsa)?,
        ([a, b], [ia, ib]) => Matching::across((a, ia), (b, ib), rsa)?,
        _ => crate::mistake!("compare takes one run or two"),
    };
    if matching.images < 4 {
        crate::mistake!(
            "{} images are ok in {}: the debiased CKA needs 4 or more",
            matching.images,
            match runs.len() {
                1 => "the run",
                _ => "both runs",
            }
        );
    }
    let record = Record {
        runs: request
            .runs
            .iter()
            .map(|r| r.display().to_string())
            .collect(),
        layers: sides.iter().map(|s| s.features.names()).collect(),
        widths: sides.iter().map(|s| s.features.widths()).collect(),
        features: request.features.name().to_owned(),
        images: matching.images,
        left_out: matching.left_out,
        parts: runs.iter().map(|r| r.facts.parts).collect(),
        rsa: request.rsa.map(|size| RsaSample {
            seed: request.seed,
            size,
            images: matching.sample_keys.clone(),
        }),
    };
    let sums = accumulate(&sides[0], sides.get(1), &matching, shard, scratch)?;
    Ok((record, sums))
}

/// Each run's layers to compare (`None`: its default). With two runs a named layer is taken
/// from each run that has it; a name neither has is a mistake.
fn chosen_layers<'a>(
    runs: &[StoredRun],
    request: &'a Request,
) -> Result<Vec<Option<Vec<&'a str>>>> {
    let Some(names) = &request.layers else {
        return Ok(vec![None; runs.len()]);
    };
    if runs.len() == 1 {
        return Ok(vec![Some(names.iter().map(String::as_str).collect())]);
    }
    let has = |run: &StoredRun, name: &str| run.layers.iter().any(|l| l.name == name);
    for name in names {
        if !runs.iter().any(|run| has(run, name)) {
            let listed: Vec<String> = (runs.iter().zip(&request.runs))
                .map(|(run, dir)| {
                    let names: Vec<&str> = run.layers.iter().map(|l| l.name.as_str()).collect();
                    format!("{}: {}", dir.display(), names.join(", "))
                })
                .collect();
            crate::mistake!("neither run has layer `{name}`; {}", listed.join("; "));
        }
    }
    let mut chosen = Vec::with_capacity(runs.len());
    for (run, dir) in runs.iter().zip(&request.runs) {
        let mine: Vec<&str> = (names.iter().map(String::as_str))
            .filter(|n| has(run, n))
            .collect();
        if mine.is_empty() {
            crate::mistake!("--layers names no layer of {}", dir.display());
        }
        chosen.push(Some(mine));
    }
    Ok(chosen)
}

/// The similarity of every pair: within one run each layer with each (a full symmetric
/// matrix), across two runs each of the first's layers with each of the second's; row by row.
pub fn finish(record: &Record, sums: &Accumulator) -> Result<Vec<Similarity>> {
    let names: Vec<(&String, &String)> = (record.layers.iter().zip(&record.runs))
        .flat_map(|(layers, run)| layers.iter().map(move |l| (l, run)))
        .collect();
    let first = record.layers[0].len();
    let (rows, columns) = match record.layers.len() {
        1 => (0..first, 0..first),
        _ => (0..first, first..names.len()),
    };
    let ranked = match &record.rsa {
        Some(sample) => Some(ranked_layers(record, sums, sample.images.len())?),
        None => None,
    };
    let mut similar = Vec::with_capacity(rows.len() * columns.len());
    for a in rows {
        for b in columns.clone() {
            // Within a run, a pair and its mirror take the same numbers: exactly symmetric.
            let (i, j) = (a.min(b), a.max(b));
            similar.push(Similarity {
                layer_a: names[a].0.clone(),
                layer_b: names[b].0.clone(),
                run_a: names[a].1.clone(),
                run_b: names[b].1.clone(),
                images: sums.sums.images(),
                cka: sums.sums.cka(i, j),
                cka_debiased: sums.sums.cka_debiased(i, j),
                rsa: ranked.as_ref().map(|r| r[i].spearman(&r[j])),
                features: record.features.clone(),
            });
        }
    }
    Ok(similar)
}

/// Every layer's ranked dissimilarities on the RSA sample.
fn ranked_layers(record: &Record, sums: &Accumulator, size: usize) -> Result<Vec<rsa::Ranked>> {
    if sums.sample.len() != size {
        crate::mistake!(
            "the RSA sample has {} of its {size} images: a shard is missing",
            sums.sample.len()
        );
    }
    let widths = record.all_widths();
    let width: usize = widths.iter().sum();
    let mut x = Array2::<f64>::zeros((size, width));
    for (row, (_, features)) in x.rows_mut().into_iter().zip(&sums.sample) {
        row.into_slice()
            .expect("standard layout")
            .copy_from_slice(features);
    }
    let mut start = 0;
    let mut ranked = Vec::with_capacity(widths.len());
    for w in widths {
        ranked.push(rsa::Ranked::of(x.slice(s![.., start..start + w])));
        start += w;
    }
    Ok(ranked)
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
        Arc::new(rows.iter().map(|r| r.rsa).collect::<Float64Array>()) as ArrayRef,
        text(&|r| &r.features),
    ];
    Ok(RecordBatch::try_new(SIMILARITY.clone(), columns)?)
}

/// Writes `DIR/similarity.parquet`, its heat map `DIR/similarity.png` and the record
/// `DIR/compare.json`, each whole through a temporary file; returns their paths.
pub fn write(rows: &[Similarity], record: &Record, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut table = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut table, SIMILARITY.clone(), None)?;
    writer.write(&to_batch(rows)?)?;
    writer.close()?;
    let picture = crate::view::plot::encode_png(&heatmap::heat_map(&panels(rows)))?;
    let json = serde_json::to_vec_pretty(record)?;
    let mut written = Vec::new();
    for (name, bytes) in [
        ("similarity.parquet", table),
        ("similarity.png", picture),
        ("compare.json", json),
    ] {
        let path = dir.join(name);
        write_whole(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// A comparison that `layerwise compare` wrote into `dir`: its record and its rows, checked
/// (the files may come from anywhere: a table of another shape is refused, not misread).
pub fn read(dir: &Path) -> Result<(Record, Vec<Similarity>)> {
    let path = dir.join("compare.json");
    if !path.is_file() {
        crate::mistake!(
            "{} has no compare.json: give a folder that layerwise compare wrote",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let record: Record = serde_json::from_str(&text).map_err(|e| {
        crate::error::Mistake(format!(
            "{} is not a comparison's record: {e}",
            path.display()
        ))
    })?;
    let path = dir.join("similarity.parquet");
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let not_ours = |why: String| -> anyhow::Error {
        crate::error::Mistake(format!(
            "{} is not a similarity table: {why}",
            path.display()
        ))
        .into()
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| not_ours(e.to_string()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| not_ours(e.to_string()))?;
        rows.extend(from_batch(&batch).map_err(not_ours)?);
    }
    let distinct = |pick: fn(&Similarity) -> &str| {
        (rows.iter().map(pick))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    if rows.is_empty() || rows.len() != distinct(|r| &r.layer_a) * distinct(|r| &r.layer_b) {
        return Err(not_ours(format!(
            "its {} rows are not a whole matrix",
            rows.len()
        )));
    }
    Ok((record, rows))
}

/// The rows of a record batch of [`SIMILARITY`]'s columns (by name), or what is wrong with it.
fn from_batch(batch: &RecordBatch) -> Result<Vec<Similarity>, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, UInt64Type};
    for field in SIMILARITY.fields() {
        let found = batch.schema().field_with_name(field.name()).cloned();
        match found {
            Ok(f) if f.data_type() == field.data_type() => {}
            _ => {
                return Err(format!(
                    "it has no {} column of type {}",
                    field.name(),
                    field.data_type()
                ))
            }
        }
    }
    let column = |name: &str| batch.column_by_name(name).expect("checked");
    let text = |name: &str| column(name).as_string::<i32>().clone();
    let number = |name: &str| column(name).as_primitive::<Float64Type>().clone();
    let (a, b, run_a, run_b, features) = (
        text("layer_a"),
        text("layer_b"),
        text("run_a"),
        text("run_b"),
        text("features"),
    );
    let (cka, debiased, rsa) = (number("cka"), number("cka_debiased"), number("rsa"));
    let images = column("images").as_primitive::<UInt64Type>().clone();
    Ok((0..batch.num_rows())
        .map(|i| Similarity {
            layer_a: a.value(i).to_owned(),
            layer_b: b.value(i).to_owned(),
            run_a: run_a.value(i).to_owned(),
            run_b: run_b.value(i).to_owned(),
            images: images.value(i),
            cka: cka.value(i),
            cka_debiased: debiased.value(i),
            rsa: arrow_array::Array::is_valid(&rsa, i).then(|| rsa.value(i)),
            features: features.value(i).to_owned(),
        })
        .collect())
}

/// The heat map's panels of the rows: CKA, debiased CKA and, when computed, RSA.
pub fn panels(rows: &[Similarity]) -> Vec<heatmap::Panel> {
    let names = |pick: fn(&Similarity) -> &String| -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for row in rows {
            if !seen.contains(pick(row)) {
                seen.push(pick(row).clone());
            }
        }
        seen
    };
    let (down, across) = (names(|r| &r.layer_a), names(|r| &r.layer_b));
    let panel = |title: &str, value: fn(&Similarity) -> f64| heatmap::Panel {
        title: title.to_owned(),
        rows: down.clone(),
        columns: across.clone(),
        values: rows.iter().map(value).collect(),
    };
    let mut panels = vec![
        panel("linear CKA", |r| r.cka),
        panel("debiased linear CKA", |r| r.cka_debiased),
    ];
    if rows.iter().any(|r| r.rsa.is_some()) {
        panels.push(panel("RSA (Spearman)", |r| r.rsa.unwrap_or(f64::NAN)));
    }
    panels
}

/// Writes a file whole: into a temporary name beside it, then renamed, so that a reader never
/// sees part of it.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The matrix of one column as text: a row per layer of the first run, a column per layer
/// of the second (or the same), values to 3 decimals.
pub fn matrix_text(rows: &[Similarity], value: impl Fn(&Similarity) -> f64) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let across: Vec<&str> = (rows.iter())
        .take_while(|r| r.layer_a == first.layer_a)
        .map(|r| r.layer_b.as_str())
        .collect();
    let longest = rows.iter().flat_map(|r| [r.layer_a.len(), r.layer_b.len()]);
    let width = longest.max().unwrap_or(0).max(5);
    let mut text = format!("{:width$}", "");
    for name in &across {
        text += &format!(" {name:>width$}");
    }
    text.push('\n');
    for chunk in rows.chunks(across.len()) {
        text += &format!("{:width$}", chunk[0].layer_a);
        for row in chunk {
            text += &format!(" {:>width$.3}", value(row));
        }
        text.push('\n');
    }
    text
}
