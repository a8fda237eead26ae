//! `layerwise check`: everything a run validates, then what the run will take (rows, bytes and
//! memory), measured by running a sample of the images through the real pipeline into a
//! scratch folder, so that disks and memory are not blown up by surprise.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::MapDtype;
use crate::engine::{Batcher, Prepared};
use crate::input::{self, Listing, Sample};
use crate::model::statistics::STATISTICS;
use crate::output::encode::Encoders;
use crate::output::provenance::LayerInfo;
use crate::output::sink::{Sink, TableCounts};
use crate::output::tables::{Rows, Table};
use crate::plan::Overrides;
use crate::progress::bytes;
use crate::reduce::LayerKind;

/// Batches run to measure the estimates.
const SAMPLE_BATCHES: usize = 2;

/// What a run of a config will produce and need.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Experiment name.
    pub name: String,
    /// The model file.
    pub model: String,
    /// The ONNX Runtime version in use.
    pub onnxruntime: String,
    /// Images per model call.
    pub batch_size: usize,
    /// The layers, with their shapes and estimated bytes per image in each table.
    pub layers: Vec<LayerEstimate>,
    /// Files the listing finds (after `--limit`); for shards, an estimate: the samples of
    /// the first shard times the number of shards.
    pub images: usize,
    /// For shards: the samples the first shard holds.
    pub first_shard: Option<usize>,
    /// Part files per table.
    pub parts: usize,
    /// Images run to measure the estimates.
    pub sample: usize,
    /// Per table: bytes per image and estimated total.
    pub tables: Vec<TableEstimate>,
    /// Estimated bytes of the whole run.
    pub estimated_bytes: u64,
    /// Peak resident memory measured while processing the sample, if the OS tells.
    pub measured_peak_bytes: Option<u64>,
    /// Upper bound of the Parquet row groups buffered during a run.
    pub row_group_bytes: u64,
}

/// One layer's estimate.
#[derive(Debug, Clone, Serialize)]
pub struct LayerEstimate {
    /// The layer, as `run.json` records it.
    #[serde(flatten)]
    pub layer: LayerInfo,
    /// Estimated bytes per image in `stats`, `maps` and `vectors`.
    pub bytes_per_image: [f64; 3],
}

/// One table's estimate.
#[derive(Debug, Clone, Serialize)]
pub struct TableEstimate {
    /// The table.
    pub table: &'static str,
    /// Bytes per image, measured on the sample.
    pub bytes_per_image: f64,
    /// Bytes of a part file with no rows (schema, footer, provenance).
    pub bytes_per_part: u64,
    /// Estimated bytes of the whole run.
    pub estimated_bytes: u64,
}

/// Validates a config as a run would and measures what the run will take.
pub fn check(config: &Path, overrides: &Overrides) -> Result<CheckReport> {
    let prepared = Prepared::load(config, overrides)?;
    let pool = prepared.pool()?;
    let provenance = serde_json::to_string(&prepared.provenance())?;
    let Prepared {
        plan,
        runtime,
        mut extractor,
        reducers,
        layers,
        formats,
    } = prepared;
    let listing = input::list(&plan.input)?;
    let batch_size = extractor.batch_size();
    let wanted = SAMPLE_BATCHES * batch_size;
    let (sample, images, first_shard) = match &listing {
        Listing::Files(files) => (spread(files, wanted), files.len(), None),
        Listing::Shards { shards, .. } => {
            let (sample, first) = first_samples(&listing, shards.len(), wanted, plan.input.limit);
            (sample, first * shards.len(), Some(first))
        }
    };
    let part_size = first_shard.map_or(plan.run.part_size, |n| n.max(1));
    let scratch = Scratch::new()?;
    let encoders = Encoders::new(plan.run.threads)?;
    let sink = Sink::new(&scratch.0, &plan.output, formats, provenance, &encoders)?;
    // An empty part gives the fixed cost of a file; the sample part adds the cost per image.
    let empty = sink.begin_part(0)?.finish()?.counts;
    let mut batcher = Batcher::new(&plan, &mut extractor, &reducers, formats, &pool);
    // Two batches: memory keeps growing after the first model call (allocator arenas).
    let mut part = sink.begin_part(1)?;
    for batch in sample.chunks(batch_size) {
        let mut rows = Rows::new(&formats);
        batcher.process(batch, &mut rows)?;
        part.write(&mut rows)?;
    }
    let mut rows = Rows::new(&formats);
    batcher.drain_top(&mut rows);
    part.write(&mut rows)?;
    let measured_peak_bytes = peak_resident_bytes();
    let sampled = part.finish()?.counts;

    let parts = listing.parts(plan.run.part_size);
    let top_k = plan
        .layers
        .iter()
        .filter_map(|l| l.top.map(|(k, _)| k))
        .max()
        .unwrap_or(0);
    let tables = estimate_tables(&empty, &sampled, sample.len(), images, part_size, top_k);
    let estimated_bytes = tables.iter().map(|t| t.estimated_bytes).sum();
    let part_images = part_size.min(images) as f64;
    let row_group_bytes = tables
        .iter()
        .map(|t| {
            let buffered = encoders.buffered_bytes_per_file() as u64;
            ((t.bytes_per_image * part_images) as u64).min(buffered)
        })
        .sum();
    Ok(CheckReport {
        name: plan.name.clone(),
        model: plan.model.path.display().to_string(),
        onnxruntime: runtime.version.clone(),
        batch_size,
        layers: estimate_layers(&layers, &tables, plan.output.map_dtype),
        images,
        first_shard,
        parts,
        sample: sample.len(),
        tables,
        estimated_bytes,
        measured_peak_bytes,
        row_group_bytes,
    })
}

/// Up to `n` files spread evenly over the listing.
fn spread(files: &[Sample], n: usize) -> Vec<Sample> {
    let k = n.min(files.len());
    (0..k).map(|i| files[i * files.len() / k].clone()).collect()
}

/// The first `n` samples of the shards, and how many the first shard holds (it is read
/// through, without decoding, to estimate the run).
fn first_samples(
    listing: &Listing,
    shards: usize,
    n: usize,
    limit: Option<usize>,
) -> (Vec<Sample>, usize) {
    let cpu = Default::default();
    let mut reader = listing.open(0, 0, limit, &cpu);
    let mut sample = reader.next_batch(n);
    let mut first = sample.len();
    loop {
        let more = reader.next_batch(1024).len();
        if more == 0 {
            break;
        }
        first += more;
    }
    for part in 1..shards {
        if sample.len() >= n {
            break;
        }
        sample.extend(
            listing
                .open(part, 0, limit, &cpu)
                .next_batch(n - sample.len()),
        );
    }
    (sample, first)
}

/// Per table: the bytes of an empty part, plus the bytes per image the sample added. The `top`
/// table grows per part, not per image: a part holds up to k maps per channel.
fn estimate_tables(
    empty: &TableCounts,
    sampled: &TableCounts,
    sample: usize,
    images: usize,
    part_size: usize,
    top_k: usize,
) -> Vec<TableEstimate> {
    let parts = images.div_ceil(part_size);
    Table::ALL
        .iter()
        .enumerate()
        .map(|(i, table)| {
            let per_part = empty.bytes[i];
            let added = sampled.bytes[i].saturating_sub(per_part) as f64;
            let (bytes_per_image, estimated) = if *table == Table::Top {
                let kept_in_sample = top_k.min(sample);
                let scale = if kept_in_sample == 0 {
                    0.0
                } else {
                    top_k.min(part_size).min(images) as f64 / kept_in_sample as f64
                };
                let per_part_total = per_part as f64 + added * scale;
                (
                    per_part_total / part_size.min(images).max(1) as f64,
                    per_part_total * parts as f64,
                )
            } else {
                let per_image = if sample == 0 {
                    0.0
                } else {
                    added / sample as f64
                };
                (
                    per_image,
                    per_part as f64 * parts as f64 + per_image * images as f64,
                )
            };
            TableEstimate {
                table: table.name(),
                bytes_per_image,
                bytes_per_part: per_part,
                estimated_bytes: estimated as u64,
            }
        })
        .collect()
}

/// Splits each table's measured bytes per image over the layers, in proportion to the bytes
/// each layer's rows hold before encoding.
fn estimate_layers(
    layers: &[LayerInfo],
    tables: &[TableEstimate],
    dtype: MapDtype,
) -> Vec<LayerEstimate> {
    let raw: Vec<[f64; 3]> = layers
        .iter()
        .map(|l| raw_bytes_per_image(l, dtype))
        .collect();
    let totals: [f64; 3] = std::array::from_fn(|t| raw.iter().map(|r| r[t]).sum());
    layers
        .iter()
        .zip(&raw)
        .map(|(layer, raw)| LayerEstimate {
            layer: layer.clone(),
            bytes_per_image: std::array::from_fn(|t| {
                // tables[0] is `images`; stats, maps and vectors follow.
                let measured = tables[t + 1].bytes_per_image;
                if totals[t] > 0.0 {
                    measured * raw[t] / totals[t]
                } else {
                    0.0
                }
            }),
        })
        .collect()
}

/// Bytes a layer's rows of one image hold before encoding, in `stats`, `maps` and `vectors`
/// (the `top` table is estimated as a whole).
fn raw_bytes_per_image(layer: &LayerInfo, dtype: MapDtype) -> [f64; 3] {
    let key = 8.0 + layer.name.len() as f64;
    let element = match dtype {
        MapDtype::Float32 => 4.0,
        MapDtype::Float16 => 2.0,
    };
    if layer.kind == LayerKind::Vector {
        return [0.0, 0.0, key + 4.0 * layer.channels as f64];
    }
    let values: usize = STATISTICS.iter().map(|s| s.column.bytes()).sum();
    let stats_row = key + 3.0 * 4.0 + values as f64;
    let map_row = key + 3.0 * 4.0 + element * (layer.height * layer.width) as f64;
    [
        stats_row * layer.channels as f64,
        map_row * layer.kept.len() as f64,
        0.0,
    ]
}

/// The process's peak resident memory so far (`VmHWM`), on Linux.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A scratch folder for the sample's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("layerwise-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the scratch folder {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl CheckReport {
    /// The estimated peak memory of the run: the measured peak plus the buffered row groups.
    pub fn estimated_peak_bytes(&self) -> Option<u64> {
        self.measured_peak_bytes.map(|m| m + self.row_group_bytes)
    }

    /// The report as text for a person.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}: the config, model ({}), ONNX Runtime {} and every layer check out.\n\nlayers \
             (bytes per image: stats / maps / vectors):\n",
            self.name, self.model, self.onnxruntime
        );
        for l in &self.layers {
            let i = &l.layer;
            let shape = match i.kind {
                LayerKind::Maps => format!("{}, {} kept", i.describe(), i.kept.len()),
                LayerKind::Vector => format!("a vector of {}", i.channels),
            };
            let [s, m, v] = l.bytes_per_image.map(|b| bytes(b as u64));
            out.push_str(&format!("  {:<16} {:<40} {s} / {m} / {v}\n", i.name, shape));
        }
        let images = match self.first_shard {
            Some(first) => format!(
                "about {} images ({} shards, assumed alike: the first holds {first} samples)",
                self.images, self.parts
            ),
            None => format!("{} images, {} part(s)", self.images, self.parts),
        };
        out.push_str(&format!(
            "\n{images}, batches of {}; estimated output, measured on {} sample image(s):\n",
            self.batch_size, self.sample
        ));
        for t in &self.tables {
            out.push_str(&format!(
                "  {:<8} {:>10} per image  {:>10}\n",
                t.table,
                bytes(t.bytes_per_image as u64),
                bytes(t.estimated_bytes)
            ));
        }
        out.push_str(&format!(
            "  {:<8} {:>32}\n",
            "total",
            bytes(self.estimated_bytes)
        ));
        match (self.measured_peak_bytes, self.estimated_peak_bytes()) {
            (Some(measured), Some(peak)) => out.push_str(&format!(
                "\npeak memory: about {} ({} measured on the sample, plus up to {} of buffered \
                 row groups)\n",
                bytes(peak),
                bytes(measured),
                bytes(self.row_group_bytes)
            )),
            _ => out.push_str("\npeak memory: not measurable on this system\n"),
        }
        out
    }
}
