//! The library's surface for bindings: what the Python package (`import layerwise`) calls.
//! Each function does what a command does, on the same engine and with the same messages,
//! and returns data (Arrow record batches, arrays, PNG bytes) instead of printing it. Errors
//! keep their kind: [`crate::error::exit_code`] says which the command would exit with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::compare;
use crate::location::is_remote;
use crate::model::inspect::{self, TensorRow};
use crate::output::provenance::RunRecord;
use crate::output::tables::{Formats, Table};
use crate::report::remote::LocalCopy;
use crate::view::plot::{self, ImageRef, ImageSet};
use crate::view::read::{MapQuery, StoredRun};

pub use crate::extract::{extract, Extracted, Images, LayerTensor, OnError, Request};
pub use crate::model::runtime::set_own_executable;
pub use crate::pipeline::{RunOptions, Watch};
pub use crate::plan::{ConfigSource, Overrides};
pub use crate::shard::Shard;
pub use crate::view::render::Style;

/// The tensors of a model or a config as `layerwise layers` lists them (`shapes` probes a
/// model's real shapes; a config always does): one row per graph input and extractable tensor,
/// with the columns `index` (null for inputs), `tensor`, `op`, `node`, `dtype`, `shape`,
/// `kind` (`input`, `output` or `tensor`) and `tokens`.
pub fn layers(target: &Path, shapes: bool) -> Result<RecordBatch> {
    let listing = inspect::for_path(target, shapes)?;
    let rows: Vec<(&TensorRow, &str)> = (listing.inputs.iter().map(|r| (r, "input")))
        .chain(listing.tensors.iter().map(|r| match r.output {
            true => (r, "output"),
            false => (r, "tensor"),
        }))
        .collect();
    let text = |f: &dyn Fn(&TensorRow) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(|(r, _)| f(r)).collect::<StringArray>())
    };
    let index: UInt32Array = rows
        .iter()
        .map(|(r, _)| r.index.map(|i| i as u32))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(index),
        text(&|r| Some(r.name.clone())),
        text(&|r| Some(r.op.clone())),
        text(&|r| Some(r.node.clone())),
        text(&|r| Some(r.element_type.clone())),
        text(&|r| Some(r.shape.clone())),
        Arc::new(rows.iter().map(|(_, k)| Some(*k)).collect::<StringArray>()),
        text(&|r| r.tokens.clone()),
        Arc::new(
            rows.iter()
                .map(|(r, _)| Some(r.output))
                .collect::<BooleanArray>(),
        ),
    ];
    let field = |name: &str, t: DataType, nullable| Field::new(name, t, nullable);
    let schema = Schema::new(vec![
        field("index", DataType::UInt32, true),
        field("tensor", DataType::Utf8, false),
        field("op", DataType::Utf8, false),
        field("node", DataType::Utf8, false),
        field("dtype", DataType::Utf8, false),
        field("shape", DataType::Utf8, false),
        field("kind", DataType::Utf8, false),
        field("tokens", DataType::Utf8, true),
        field("output", DataType::Boolean, false),
    ]);
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// A config given as JSON (a binding's dict) as the TOML text of a config file; null members
/// are left out, as keys not given.
pub fn config_from_json(config: serde_json::Value) -> Result<String> {
    let table = toml::Value::try_from(crate::extract::without_nulls(config))
        .map_err(|e| crate::error::Mistake(format!("the config cannot be TOML: {e}")))?;
    Ok(toml::to_string(&table)?)
}

/// Runs a config as `layerwise run` does (this process's shard of it) and returns the run's
/// record; more failed images than `[run] max_error_fraction` allows is an error (exit 4)
/// after every part is written.
pub fn run(source: &ConfigSource, overrides: &Overrides, options: RunOptions) -> Result<RunRecord> {
    let record = crate::pipeline::run_source(source, overrides, options)?;
    crate::pipeline::check_error_fraction(&record)?;
    Ok(record)
}

/// A run opened for reading, finished or partial, local or in a bucket (copied to a temporary
/// folder first, removed when the run is dropped).
pub struct Run {
    /// What it is.
    pub stored: StoredRun,
    /// Where it is, as given.
    pub location: PathBuf,
    _copy: Option<LocalCopy>,
}

impl Run {
    /// Opens the run at `location`: a folder or `s3://bucket/prefix`.
    pub fn open(location: &Path) -> Result<Run> {
        let copy = is_remote(location)
            .then(|| LocalCopy::fetch(location))
            .transpose()?;
        let stored = StoredRun::open(copy.as_ref().map_or(location, |c| c.dir()))?;
        Ok(Run {
            stored,
            location: location.to_owned(),
            _copy: copy,
        })
    }

    /// The rows of a table (`images`, `stats`, `maps`, `vectors`, `top` or `positions`),
    /// part by part, with its schema; `layer` keeps one layer's rows (not for `images`).
    pub fn table(&self, name: &str, layer: Option<&str>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let table = table_named(name)?;
        let query = match layer {
            Some(_) if table == Table::Images => {
                crate::mistake!("the images table has no layer column: leave out `layer`")
            }
            Some(layer) => {
                self.stored.layer(layer)?;
                Some(MapQuery {
                    layer: layer.to_owned(),
                    channels: None,
                    images: None,
                })
            }
            None => None,
        };
        let schema = table.schema(&Formats::default());
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let batches = self.stored.read(table, &columns, query.as_ref())?;
        let schema = batches.first().map_or(schema.clone(), |b| b.schema());
        Ok((schema, batches))
    }

    /// One image's stored maps of `layer` (`image`: an `image_id` or a path as the `images`
    /// table has it): their shape `[channels, height, width]`, the channels (every stored one,
    /// or `channels`, each of which must be stored) and the values, row-major.
    pub fn map(
        &self,
        layer: &str,
        image: &str,
        channels: Option<&[u32]>,
    ) -> Result<(Vec<usize>, Vec<u32>, Vec<f32>)> {
        let channels = match channels {
            Some(c) => c.to_vec(),
            None => self.stored.layer(layer)?.kept.clone(),
        };
        let maps = plot::image_maps(&self.stored, layer, &ImageRef::parse(image), &channels)?;
        let (height, width) = maps.first().map_or((0, 0), |m| (m.height, m.width));
        let mut values = Vec::with_capacity(maps.len() * height * width);
        for map in &maps {
            values.extend_from_slice(&map.values);
        }
        let order = maps.iter().map(|m| m.channel).collect();
        Ok((vec![maps.len(), height, width], order, values))
    }

    /// `layerwise plot channels` as PNG bytes.
    pub fn plot_channels(
        &self,
        layer: &str,
        image: &str,
        channels: Option<&[u32]>,
        style: Style,
    ) -> Result<Vec<u8>> {
        let cells =
            plot::channels_from_run(&self.stored, layer, &ImageRef::parse(image), channels)?;
        plot::png_bytes(&cells, style)
    }

    /// `layerwise plot images` as PNG bytes (`images`: `0..49` or `label=NAME`).
    pub fn plot_images(
        &self,
        layer: &str,
        channel: u32,
        images: Option<&str>,
        style: Style,
    ) -> Result<Vec<u8>> {
        let which = images.map(ImageSet::parse).transpose()?;
        let cells = plot::images_from_run(&self.stored, layer, channel, which.as_ref())?;
        plot::png_bytes(&cells, style)
    }

    /// `layerwise plot top` as PNG bytes.
    pub fn plot_top(&self, layer: &str, channel: u32, k: usize, style: Style) -> Result<Vec<u8>> {
        let cells = plot::top_from_run(&self.stored, layer, channel, k)?;
        plot::png_bytes(&cells, style)
    }

    /// `layerwise compare`: the linear CKA (and with `rsa`, RSA on a sample of that many
    /// images) of this run's layers with each other, or with `other`'s; written into `out`
    /// too when given (`similarity.parquet`, `similarity.png`, `compare.json`).
    pub fn compare(
        &self,
        other: Option<&Run>,
        layers: Option<Vec<String>>,
        features: &str,
        (rsa, seed): (Option<usize>, u64),
        out: Option<&Path>,
    ) -> Result<Compared> {
        let runs: Vec<&Run> = std::iter::once(self).chain(other).collect();
        let request = compare::Request {
            runs: runs.iter().map(|r| r.stored.dir.clone()).collect(),
            layers,
            features: compare::features::Features::parse(features)?,
            rsa,
            seed,
        };
        let scratch = out.map_or_else(std::env::temp_dir, Path::to_owned);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let (mut record, sums) = compare::pass(&request, Shard::default(), &scratch)?;
        record.runs = runs
            .iter()
            .map(|r| r.location.display().to_string())
            .collect();
        let rows = compare::finish(&record, &sums)?;
        if let Some(out) = out {
            compare::write(&rows, &record, out)?;
        }
        let picture = compare::heatmap::heat_map(&compare::panels(&rows));
        Ok(Compared {
            table: compare::to_batch(&rows)?,
            png: plot::encode_png(&picture)?,
            record: serde_json::to_string(&record)?,
        })
    }

    /// `layerwise report`: writes the atlas (to `out`, default `RUN/report`; with `compare`,
    /// a comparison's folder whose matrix the index shows too) and returns its entry page.
    pub fn report(&self, out: Option<PathBuf>, compare: Option<PathBuf>) -> Result<PathBuf> {
        let choices = crate::report::Choices {
            top: crate::report::DEFAULT_TOP,
            compare,
            ..Default::default()
        };
        let written = crate::report::write_from(&self.location, out, choices)?;
        Ok(written.dir.join("index.html"))
    }
}

/// A comparison's results.
pub struct Compared {
    /// The `similarity` rows.
    pub table: RecordBatch,
    /// The heat map, as PNG bytes.
    pub png: Vec<u8>,
    /// The record (`compare.json`) as JSON text.
    pub record: String,
}

/// The table of a name, or a mistake listing the names.
fn table_named(name: &str) -> Result<Table> {
    Table::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
            crate::error::Mistake(format!(
                "no table `{name}`: the tables are {}",
                names.join(", ")
            ))
            .into()
        })
}
