//! Provenance: what produced a dataset, recorded in `run.json` and in every Parquet file.
//!
//! [`RunRecord`] is `run.json`, written and read by the same types: reading tolerates keys it
//! does not know (written by a later version) and config keys that are retired, and reads every
//! earlier format ([`RunRecord::FORMAT`]; 0.1.0 wrote format 1, without the key).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Tokens};
use crate::output::sink::TableCounts;
use crate::output::tables::Table;
use crate::plan::{LayerSpec, ReduceMode};
use crate::reduce::layout::Decided;
use crate::reduce::{LayerKind, LayerReducer, LayerShape};

/// What produced a dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    /// Experiment name.
    pub name: String,
    /// `layerwise <version>`.
    pub tool: String,
    /// The ONNX Runtime library used.
    pub onnxruntime: RuntimeInfo,
    /// The model file.
    pub model: ModelInfo,
    /// The layers extracted, with their real shapes.
    pub layers: Vec<LayerInfo>,
    /// The config, with paths resolved. Read back with the keys this version does not know
    /// left out ([`Config::from_recorded`]).
    #[serde(deserialize_with = "recorded_config")]
    pub config: Config,
    /// The folder the config's relative names (its shard patterns) are taken from: the config
    /// file's (empty in records of runs made before it was recorded: then the current one).
    #[serde(default)]
    pub config_folder: String,
    /// When the run started (UTC, RFC 3339).
    #[serde(default)]
    pub started_at: String,
}

fn recorded_config<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Config::from_recorded(value).map_err(serde::de::Error::custom)
}

impl Provenance {
    /// Reads a record: the provenance of a part file's metadata, or the whole of `run.json`.
    /// The config's folder is the recorded `config_folder`.
    pub fn from_json(text: &str) -> Result<Provenance> {
        Ok(serde_json::from_str::<Provenance>(text)?.placed())
    }

    /// With the config's folder set to the recorded `config_folder` (the config's folder is
    /// not one of its keys, so it is not in the recorded config).
    fn placed(mut self) -> Provenance {
        self.config.folder = self.config_folder.clone().into();
        self
    }
}

/// The ONNX Runtime library used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Its version.
    pub version: String,
    /// The library file.
    pub library: String,
}

/// The model file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Its path.
    pub path: String,
    /// Its SHA-256.
    pub sha256: String,
}

/// One extracted layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Name in the tables.
    pub name: String,
    /// Tensor in the graph.
    #[serde(default)]
    pub tensor: String,
    /// The selector in the config that picked it.
    #[serde(default)]
    pub selector: String,
    /// `maps` (statistics and maps per channel) or `vector`.
    pub kind: LayerKind,
    /// Channels (or vector length).
    pub channels: usize,
    /// Map height (1 for vectors).
    pub height: usize,
    /// Map width (1 for vectors).
    pub width: usize,
    /// Channels whose maps are stored.
    pub kept: Vec<u32>,
    /// Where its statistics and maps were computed: `host` (by layerwise) or `graph` (by ONNX
    /// Runtime, `[run] reduce`).
    #[serde(default)]
    pub reduced_in: ReduceMode,
    /// How its tensor was cut into maps (absent for vectors, and in runs before 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutRecord>,
}

/// How a maps layer's tensor was cut into maps, and how that was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutRecord {
    /// The tensor's batch axis in the model: 0, or 1 for a sequence-first tensor.
    pub batch_axis: usize,
    /// The channel axis, counted with the batch first.
    pub channel_axis: usize,
    /// For a transformer's tokens: the prefix tokens left out and the patches' grid.
    pub tokens: Option<Tokens>,
    /// `given` (by the config), `inferred` (a token grid) or `default` (channels on axis 1).
    pub decided: Decided,
}

impl LayerInfo {
    /// Describes a layer from its spec and its reducer.
    pub fn of(layer: &LayerSpec, reducer: &LayerReducer) -> LayerInfo {
        let (channels, height, width) = match reducer.shape {
            LayerShape::Vector { len } => (len, 1, 1),
            LayerShape::Maps {
                channels,
                height,
                width,
            } => (channels, height, width),
        };
        LayerInfo {
            name: layer.name.clone(),
            tensor: layer.tensor.clone(),
            selector: layer.selector.clone(),
            kind: reducer.shape.kind(),
            channels,
            height,
            width,
            kept: reducer.kept().to_vec(),
            reduced_in: reducer.reduced_in(),
            layout: matches!(reducer.shape, LayerShape::Maps { .. }).then_some(LayoutRecord {
                batch_axis: reducer.batch_axis,
                channel_axis: reducer.layout.channel_axis,
                tokens: reducer.layout.tokens,
                decided: reducer.layout.decided,
            }),
        }
    }

    /// What its maps are, for the log and `check`: "384 channels over 16 x 16 patches + 1
    /// prefix token", "64 channels of 112 x 112", or "a vector of 1000 values".
    pub fn describe(&self) -> String {
        match (self.kind, self.layout.and_then(|l| l.tokens)) {
            (LayerKind::Vector, _) => format!("a vector of {} values", self.channels),
            (LayerKind::Maps, Some(tokens)) => format!("{} channels over {tokens}", self.channels),
            (LayerKind::Maps, None) => {
                format!(
                    "{} channels of {} x {}",
                    self.channels, self.height, self.width
                )
            }
        }
    }
}

/// What a finished run did: `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The format of the record ([`RunRecord::FORMAT`] when written; 1, 0.1.0's, when absent).
    #[serde(default = "first_format")]
    pub format: u32,
    /// What produced it.
    #[serde(flatten)]
    pub provenance: Provenance,
    /// The shard of the process that wrote this record, e.g. `0/1`.
    pub shard: String,
    /// Whether every part of the run is committed.
    pub complete: bool,
    /// Images and rows.
    #[serde(default)]
    pub counts: Counts,
    /// Seconds spent.
    #[serde(default)]
    pub timings: Timings,
}

fn first_format() -> u32 {
    1
}

/// Images and rows of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Files listed.
    pub images: u64,
    /// Images run through the model.
    pub ok: u64,
    /// Images that could not be used.
    pub error: u64,
    /// Parts committed.
    pub parts: usize,
    /// Parts of the whole run.
    pub parts_total: usize,
    /// Rows per table.
    pub rows: serde_json::Map<String, serde_json::Value>,
    /// File bytes per table.
    pub bytes: serde_json::Map<String, serde_json::Value>,
}

impl Counts {
    /// Counts from image totals and the tables' counts.
    pub fn new(
        ok: u64,
        error: u64,
        parts: usize,
        parts_total: usize,
        tables: &TableCounts,
    ) -> Counts {
        let per_table = |values: &[u64; Table::COUNT]| {
            Table::ALL
                .iter()
                .zip(values)
                .map(|(t, v)| (t.name().to_owned(), (*v).into()))
                .collect()
        };
        Counts {
            images: ok + error,
            ok,
            error,
            parts,
            parts_total,
            rows: per_table(&tables.rows),
            bytes: per_table(&tables.bytes),
        }
    }
}

/// Seconds spent in each phase of a run, by the process that wrote the record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    /// Reading the config and model, loading the runtime, creating the session.
    pub setup_s: f64,
    /// Listing the input folder.
    pub listing_s: f64,
    /// Decoding, inference, reduction and writing.
    pub run_s: f64,
    /// Images this process did.
    pub images: u64,
    /// Images (ok or not) per second of `run_s`.
    pub images_per_s: f64,
    /// Of `run_s`: reading, decoding and preprocessing.
    pub decode_s: f64,
    /// Of `run_s`: ONNX Runtime.
    pub model_s: f64,
    /// Of `run_s`: statistics and maps.
    pub reduce_s: f64,
    /// Of `run_s`: waiting for the writer thread.
    pub write_wait_s: f64,
    /// Where the CPU time went, per image, by stage and for the busiest thread of layerwise's
    /// own (absent in runs of earlier versions).
    #[serde(default)]
    pub cpu: crate::cpu::CpuTimes,
}

impl RunRecord {
    /// The format this version writes: 2 added the key `format` itself (1, 0.1.0's, had none).
    pub const FORMAT: u32 = 2;

    /// The record as `run.json` holds it.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        Ok((serde_json::to_string_pretty(self)? + "\n").into_bytes())
    }

    /// Reads `run.json`, of this format or any earlier one.
    pub fn from_json(text: &str) -> Result<RunRecord> {
        let record: RunRecord = serde_json::from_str(text)?;
        Ok(RunRecord {
            provenance: record.provenance.placed(),
            ..record
        })
    }
}

/// The current time as RFC 3339 UTC, e.g. `2026-11-28T09:30:00Z`.
pub fn now_rfc3339() -> String {
    rfc3339(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    )
}

fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(1_795_858_245)),
            "2026-11-28T09:30:45Z"
        );
    }
}
