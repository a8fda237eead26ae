//! Reading a finished run back: its `run.json`, and the rows of its tables that a question
//! needs, with column projection and row-group pruning rather than whole tables.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type, UInt64Type};
use arrow_array::{Array, BooleanArray, RecordBatch};
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ParquetRecordBatchReaderBuilder, RowFilter};
use parquet::arrow::ProjectionMask;
use parquet::file::statistics::Statistics;
use serde::Deserialize;

use crate::config::Config;
use crate::error::TableError;
use crate::output::provenance::{
    LayerInfo, ModelInfo, Provenance, RunRecord, RuntimeInfo, Timings,
};
use crate::output::sink::PROVENANCE_KEY;
use crate::output::tables::Table;
use crate::view::conform::conform;

/// A run, finished or partial: its folder and what its `run.json` (or, before the run is
/// complete, the provenance in its committed part files) says.
#[derive(Debug, Clone)]
pub struct StoredRun {
    /// The output folder.
    pub dir: PathBuf,
    /// The config it ran, with paths resolved, and the folder of its relative shard names
    /// (`config.folder`; empty for runs made before it was recorded: then the current one).
    pub config: Config,
    /// Its layers.
    pub layers: Vec<LayerInfo>,
    /// What ran it, and how far it got.
    pub facts: RunFacts,
}

/// What ran a run, and how far it got.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// The run's name.
    pub name: String,
    /// The layerwise version.
    pub tool: String,
    /// The model file.
    pub model: ModelInfo,
    /// The ONNX Runtime library.
    pub onnxruntime: RuntimeInfo,
    /// When the run began (UTC).
    pub started_at: String,
    /// Whether every part is committed (false until `run.json` is written).
    pub complete: bool,
    /// Seconds and speed, from `run.json`.
    pub timings: Option<Timings>,
    /// Parts committed, and parts of the whole run (from `_manifest.json` and `_parts/`).
    pub parts: (usize, usize),
}

#[derive(Deserialize)]
struct ManifestParts {
    parts: usize,
}

/// An image of the `images` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredImage {
    /// Its id.
    pub image_id: u64,
    /// Path relative to the input root, or its name in its shard.
    pub path: String,
    /// The shard it came from (`None` for files).
    pub source: Option<String>,
    /// Its label.
    pub label: Option<String>,
    /// Whether it went through the model.
    pub ok: bool,
    /// Why it could not be used, when it could not.
    pub error: Option<String>,
}

/// One stored map.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMap {
    /// The image.
    pub image_id: u64,
    /// The channel.
    pub channel: u32,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// Row-major values.
    pub values: Vec<f32>,
    /// The `top` score, for maps from the `top` table.
    pub score: Option<f32>,
}

/// Which maps to read: one layer, and optionally only some channels and images.
#[derive(Debug, Clone)]
pub struct MapQuery {
    /// The layer's name.
    pub layer: String,
    /// Only these channels.
    pub channels: Option<BTreeSet<u32>>,
    /// Only these images.
    pub images: Option<BTreeSet<u64>>,
}

impl StoredRun {
    /// Opens a run: finished, from its `run.json`; partial, from the provenance that every
    /// committed part file carries.
    pub fn open(dir: &Path) -> Result<StoredRun> {
        let path = dir.join("run.json");
        let (provenance, complete, timings) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let record = RunRecord::from_json(&text)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                (record.provenance, record.complete, Some(record.timings))
            }
            Err(_) => {
                let (text, source) = partial_provenance(dir)?;
                let provenance = Provenance::from_json(&text).with_context(|| {
                    format!("cannot read the provenance of {}", source.display())
                })?;
                (provenance, false, None)
            }
        };
        Ok(StoredRun {
            dir: dir.to_owned(),
            facts: RunFacts {
                name: provenance.name,
                tool: provenance.tool,
                model: provenance.model,
                onnxruntime: provenance.onnxruntime,
                started_at: provenance.started_at,
                complete,
                timings,
                parts: parts(dir),
            },
            config: provenance.config,
            layers: provenance.layers,
        })
    }

    /// A layer by name, or an error listing the layers there are.
    pub fn layer(&self, name: &str) -> Result<&LayerInfo> {
        self.layers.iter().find(|l| l.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
            crate::error::Mistake(format!(
                "the run has no layer `{name}`; its layers are {}",
                names.join(", ")
            ))
            .into()
        })
    }

    /// Every row of the `images` table.
    pub fn images(&self) -> Result<Vec<StoredImage>> {
        let mut images = Vec::new();
        for batch in self.read(
            Table::Images,
            &["image_id", "path", "source", "label", "status", "error"],
            None,
        )? {
            let ids = column(&batch, "image_id").as_primitive::<UInt64Type>();
            let paths = column(&batch, "path").as_string::<i32>();
            let sources = column(&batch, "source").as_string::<i32>();
            let labels = column(&batch, "label").as_string::<i32>();
            let status = column(&batch, "status").as_string::<i32>();
            let errors = column(&batch, "error").as_string::<i32>();
            for i in 0..batch.num_rows() {
                images.push(StoredImage {
                    image_id: ids.value(i),
                    path: paths.value(i).to_owned(),
                    source: sources.is_valid(i).then(|| sources.value(i).to_owned()),
                    label: labels.is_valid(i).then(|| labels.value(i).to_owned()),
                    ok: status.value(i) == "ok",
                    error: errors.is_valid(i).then(|| errors.value(i).to_owned()),
                });
            }
        }
        Ok(images)
    }

    /// The stored maps that `query` asks for, in table order.
    pub fn maps(&self, query: &MapQuery) -> Result<Vec<StoredMap>> {
        let columns = ["image_id", "channel", "height", "width", "values"];
        let mut maps = Vec::new();
        for batch in self.read(Table::Maps, &columns, Some(query))? {
            maps.extend(to_maps(&batch, None));
        }
        Ok(maps)
    }

    /// The `k` best maps of a channel from the `top` table, merged over the parts.
    pub fn top(&self, layer: &str, channel: u32, k: usize) -> Result<Vec<StoredMap>> {
        let mut by_channel = self.tops(layer, Some(channel), k)?;
        Ok(by_channel.remove(&channel).unwrap_or_default())
    }

    /// The `k` best maps of every channel of a layer (or only of `channel`) from the `top`
    /// table, merged over the parts: best score first, then the smaller `image_id`.
    pub fn tops(
        &self,
        layer: &str,
        channel: Option<u32>,
        k: usize,
    ) -> Result<BTreeMap<u32, Vec<StoredMap>>> {
        let query = MapQuery {
            layer: layer.to_owned(),
            channels: channel.map(|c| [c].into()),
            images: None,
        };
        let columns = ["image_id", "channel", "height", "width", "values", "score"];
        let mut by_channel: BTreeMap<u32, Vec<StoredMap>> = BTreeMap::new();
        self.scan(Table::Top, &columns, Some(&query), |batch| {
            let scores = column(&batch, "score").as_primitive::<Float32Type>();
            for map in to_maps(&batch, Some(scores.values())) {
                by_channel.entry(map.channel).or_default().push(map);
            }
        })?;
        let score = |m: &StoredMap| m.score.unwrap_or(f32::NEG_INFINITY);
        for maps in by_channel.values_mut() {
            maps.sort_by(|a, b| {
                score(b)
                    .total_cmp(&score(a))
                    .then(a.image_id.cmp(&b.image_id))
            });
            maps.truncate(k);
        }
        Ok(by_channel)
    }

    /// `(image_id, max)` of one channel of a layer, from the `stats` table.
    pub fn maxima(&self, layer: &str, channel: u32) -> Result<Vec<(u64, f32)>> {
        let query = MapQuery {
            layer: layer.to_owned(),
            channels: Some([channel].into()),
            images: None,
        };
        let mut maxima = Vec::new();
        for batch in self.read(Table::Stats, &["image_id", "max"], Some(&query))? {
            let ids = column(&batch, "image_id").as_primitive::<UInt64Type>();
            let max = column(&batch, "max").as_primitive::<Float32Type>();
            maxima.extend(
                ids.values()
                    .iter()
                    .copied()
                    .zip(max.values().iter().copied()),
            );
        }
        Ok(maxima)
    }

    /// The `columns` of a table's rows that match `query`, in part order; the part files are
    /// read in parallel (on the current thread pool), so memory holds the whole result.
    pub fn read(
        &self,
        table: Table,
        columns: &[&str],
        query: Option<&MapQuery>,
    ) -> Result<Vec<RecordBatch>> {
        use rayon::prelude::*;
        let files = part_files(&self.dir.join(table.name()))?;
        let per_file: Vec<Result<Vec<RecordBatch>>> = files
            .par_iter()
            .map(|path| {
                let mut batches = Vec::new();
                read_part(path, table, columns, query, |b| batches.push(b))?;
                Ok(batches)
            })
            .collect();
        let mut batches = Vec::new();
        for file in per_file {
            batches.extend(file?);
        }
        Ok(batches)
    }

    /// The names of the run's committed part files (`part-00000.parquet`, ...), in order, from
    /// its `images` table: every table has a file of each name.
    pub fn part_names(&self) -> Result<Vec<String>> {
        let files = part_files(&self.dir.join(Table::Images.name()))?;
        Ok(files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    /// Hands `each` the `columns` of the rows of one part file of a table (`name` from
    /// [`part_names`](Self::part_names)) that match `query`, batch by batch.
    pub fn scan_part(
        &self,
        table: Table,
        name: &str,
        columns: &[&str],
        query: Option<&MapQuery>,
        each: impl FnMut(RecordBatch),
    ) -> Result<()> {
        read_part(
            &self.dir.join(table.name()).join(name),
            table,
            columns,
            query,
            each,
        )
    }

    /// Hands `each` the `columns` of a table's rows that match `query`, batch by batch, part
    /// by part, holding one batch at a time. Row groups whose statistics rule the layer or the
    /// images out are skipped; the rest are filtered row by row on `layer`, `channel` and
    /// `image_id` before the other columns are decoded.
    pub fn scan(
        &self,
        table: Table,
        columns: &[&str],
        query: Option<&MapQuery>,
        mut each: impl FnMut(RecordBatch),
    ) -> Result<()> {
        for path in part_files(&self.dir.join(table.name()))? {
            read_part(&path, table, columns, query, &mut each)?;
        }
        Ok(())
    }
}

/// Hands `each` the `columns` of the rows of one part file that match `query`, conformed to
/// the table's current schema.
fn read_part(
    path: &Path,
    table: Table,
    columns: &[&str],
    query: Option<&MapQuery>,
    mut each: impl FnMut(RecordBatch),
) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = guarded(|| scan_file(file, table, columns, query, path))
        .unwrap_or_else(|| Err(damaged(path)))?;
    for batch in reader {
        let batch = batch.map_err(|e| match e.chain().any(|c| c.is::<TableError>()) {
            true => e,
            false => unreadable(path, &e),
        })?;
        each(conform(&batch, table, path)?);
    }
    Ok(())
}

/// Rows per batch when reading the tables whose rows are a few numbers (`images`, `stats`).
const SMALL_ROWS_BATCH: usize = 64 * 1024;

/// The reader of one part file of `table`: `columns` of the rows that match `query`.
fn scan_file(
    file: File,
    table: Table,
    columns: &[&str],
    query: Option<&MapQuery>,
    path: &Path,
) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let mut builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(path, &e))?;
    let arrow_schema = builder.schema().clone();
    let roots = |names: &[&str]| -> Result<Vec<usize>, TableError> {
        names
            .iter()
            .map(|n| {
                arrow_schema.index_of(n).map_err(|_| TableError {
                    file: path.display().to_string(),
                    table: table.name(),
                    column: (*n).to_owned(),
                    problem: "is missing".into(),
                })
            })
            .collect()
    };
    let projection = ProjectionMask::roots(builder.parquet_schema(), roots(columns)?);
    if let Some(query) = query {
        let groups = row_groups(&builder, query);
        // What the query looks at: the layer, and the channel and image only when it picks
        // some (the vectors and positions tables have no channel).
        let filter_columns: Vec<&str> = std::iter::once("layer")
            .chain(query.channels.is_some().then_some("channel"))
            .chain(query.images.is_some().then_some("image_id"))
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots(&filter_columns)?);
        let query = query.clone();
        let file = path.to_owned();
        let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let batch = conform(&batch, table, &file)
                .map_err(|e| arrow_schema::ArrowError::ExternalError(Box::new(e)))?;
            Ok(matches(&batch, &query))
        });
        builder = builder
            .with_row_groups(groups)
            .with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
    }
    // Rows of a few numbers are read in large batches; rows of whole maps or vectors in the
    // reader's default (1,024), so that a batch stays small.
    if matches!(table, Table::Images | Table::Stats) {
        builder = builder.with_batch_size(SMALL_ROWS_BATCH);
    }
    let reader = builder.with_projection(projection).build()?;
    let mut reader = reader.map(|batch| batch.map_err(anyhow::Error::from));
    let path = path.to_owned();
    Ok(std::iter::from_fn(move || {
        guarded(|| reader.next()).unwrap_or_else(|| Some(Err(damaged(&path))))
    }))
}

/// The error of a part file the Parquet reader rejects: damaged, cut short or not Parquet; a
/// mistake to fix, not to retry (exit 2).
fn unreadable(path: &Path, e: &dyn std::fmt::Display) -> anyhow::Error {
    crate::error::Mistake(format!(
        "cannot read {}: {e}; the file is damaged or is not Parquet",
        path.display()
    ))
    .into()
}

/// The error of a file the Parquet reader panicked on: a mistake to fix, not to retry (exit 2).
fn damaged(path: &Path) -> anyhow::Error {
    crate::error::Mistake(format!(
        "cannot read {}: the file is damaged (the Parquet reader failed on it)",
        path.display()
    ))
    .into()
}

/// Runs `work`; `None` if it panicked (the parquet crate asserts, rather than returns an
/// error, on some damaged files).
fn guarded<T>(work: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).ok()
}

/// The provenance JSON of a run without `run.json`, from its first committed `images` part.
fn partial_provenance(dir: &Path) -> Result<(String, PathBuf)> {
    let not_a_run = || {
        format!(
            "{} is not a layerwise run: it has no run.json and no committed part yet",
            dir.display()
        )
    };
    let files = part_files(&dir.join(Table::Images.name())).unwrap_or_default();
    let Some(first) = files.first() else {
        crate::mistake!("{}", not_a_run());
    };
    let file = File::open(first).with_context(|| format!("cannot open {}", first.display()))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(first, &e))?;
    let json = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == PROVENANCE_KEY))
        .and_then(|kv| kv.value.clone())
        .with_context(|| format!("{} has no `{PROVENANCE_KEY}` metadata", first.display()))?;
    Ok((json, first.clone()))
}

/// Parts committed (markers in `_parts/`) and parts in all (`_manifest.json`); zeros where
/// they cannot be read.
fn parts(dir: &Path) -> (usize, usize) {
    let committed = std::fs::read_dir(dir.join("_parts")).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    });
    let total = std::fs::read_to_string(dir.join("_manifest.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<ManifestParts>(&text).ok())
        .map_or(0, |m| m.parts);
    (committed, total)
}

/// The row groups whose statistics do not rule out `query`'s layer and images.
fn row_groups(builder: &ParquetRecordBatchReaderBuilder<File>, query: &MapQuery) -> Vec<usize> {
    let leaves = builder.parquet_schema().columns();
    let leaf = |name: &str| leaves.iter().position(|c| c.path().string() == name);
    let (layer_leaf, id_leaf) = (leaf("layer"), leaf("image_id"));
    let image_range = query
        .images
        .as_ref()
        .and_then(|s| Some((*s.first()?, *s.last()?)));
    builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, group)| {
            let stats = |leaf: Option<usize>| leaf.and_then(|l| group.column(l).statistics());
            let layer_possible = match stats(layer_leaf) {
                Some(s) => match (s.min_bytes_opt(), s.max_bytes_opt()) {
                    (Some(lo), Some(hi)) => {
                        lo <= query.layer.as_bytes() && query.layer.as_bytes() <= hi
                    }
                    _ => true,
                },
                None => true,
            };
            let images_possible = match (stats(id_leaf), image_range) {
                (Some(Statistics::Int64(s)), Some((first, last))) => {
                    match (s.min_opt(), s.max_opt()) {
                        (Some(&lo), Some(&hi)) => (lo as u64) <= last && first <= (hi as u64),
                        _ => true,
                    }
                }
                _ => true,
            };
            layer_possible && images_possible
        })
        .map(|(i, _)| i)
        .collect()
}

/// The maps of a batch of `maps` rows that `query` asks for, in batch order.
pub fn select_maps(batch: &RecordBatch, query: &MapQuery) -> Vec<StoredMap> {
    let wanted = matches(batch, query);
    to_maps(batch, None)
        .into_iter()
        .zip(wanted.iter())
        .filter_map(|(map, keep)| keep.unwrap_or(false).then_some(map))
        .collect()
}

/// Which rows of a batch match the query (its `layer`, and its `channel` and `image_id` where
/// the query picks some).
fn matches(batch: &RecordBatch, query: &MapQuery) -> BooleanArray {
    let layers = column(batch, "layer").as_string::<i32>();
    let channels = query
        .channels
        .as_ref()
        .map(|c| (c, column(batch, "channel").as_primitive::<UInt32Type>()));
    let ids = query
        .images
        .as_ref()
        .map(|s| (s, column(batch, "image_id").as_primitive::<UInt64Type>()));
    (0..batch.num_rows())
        .map(|i| {
            Some(
                layers.value(i) == query.layer
                    && channels.is_none_or(|(c, values)| c.contains(&values.value(i)))
                    && ids.is_none_or(|(s, values)| s.contains(&values.value(i))),
            )
        })
        .collect()
}

/// Maps from a batch with `image_id`, `channel`, `height`, `width` and `values`.
fn to_maps(batch: &RecordBatch, scores: Option<&[f32]>) -> Vec<StoredMap> {
    let ids = column(batch, "image_id").as_primitive::<UInt64Type>();
    let channels = column(batch, "channel").as_primitive::<UInt32Type>();
    let heights = column(batch, "height").as_primitive::<UInt32Type>();
    let widths = column(batch, "width").as_primitive::<UInt32Type>();
    let values = column(batch, "values").as_list::<i32>();
    (0..batch.num_rows())
        .map(|i| {
            let list = values.value(i);
            let values = match list.data_type() {
                arrow_schema::DataType::Float16 => list
                    .as_primitive::<arrow_array::types::Float16Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_f32())
                    .collect(),
                _ => list.as_primitive::<Float32Type>().values().to_vec(),
            };
            StoredMap {
                image_id: ids.value(i),
                channel: channels.value(i),
                height: heights.value(i) as usize,
                width: widths.value(i) as usize,
                values,
                score: scores.map(|s| s[i]),
            }
        })
        .collect()
}

/// A column that the projection is known to hold.
pub(crate) fn column<'b>(batch: &'b RecordBatch, name: &str) -> &'b arrow_array::ArrayRef {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("the projection holds `{name}`"))
}

/// The `.parquet` files of a table folder, sorted (temporary files are not listed).
fn part_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}
