//! Input: where the images of a run come from, and how each becomes model input.
//!
//! A run's input is a [`Listing`]: the files of a folder or a list ([`listing`]), known whole
//! before any image is read, or shards ([`shards`]): WebDataset tar files ([`webdataset`]) or
//! Parquet files with the image bytes ([`parquet`]), local or in an object store
//! ([`remote`]), each read as a stream on a thread of its own ([`stream`]) when its part
//! runs. Either way a part hands out [`Sample`]s through one [`SampleReader`], so the
//! pipeline does not know which it reads; [`preprocess`] then decodes one image (still WebP
//! images through [`webp`]) and writes its slice of the input tensor.

pub mod listing;
pub mod lookup;
pub mod parquet;
pub mod preprocess;
pub mod remote;
pub mod shards;
pub mod stream;
pub mod webdataset;
pub mod webp;

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::cpu::Ledger;
use crate::error::PlanError;
use crate::location::Location;
use crate::plan::{InputSource, InputSpec, ShardsSpec};
use shards::Shard;
use stream::Emitter;

/// One sample of the input: exactly one row of the `images` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Its id: the ordinal in a folder's or list's sorted listing, or `(part << 32) | i` for
    /// the `i`-th sample of the shard of part `part`.
    pub image_id: u64,
    /// The file's path relative to the root, or the member's or row's name in its shard.
    pub path: String,
    /// The shard it came from, as configured after expansion; `None` for files.
    pub source: Option<String>,
    /// The WebDataset `__key__`, or the Parquet key column or row number; `None` for files.
    pub key: Option<String>,
    /// Its label, if any.
    pub label: Option<String>,
    /// Where its bytes are.
    pub content: Content,
}

/// Where a sample's encoded image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// In a file, read when the image is decoded.
    File(PathBuf),
    /// Read already, from a shard.
    Bytes(Vec<u8>),
    /// Decoded already, as 8-bit RGB (an array or picture a binding was given).
    Pixels(std::sync::Arc<image::RgbImage>),
    /// Nowhere usable, with the reason for the `images` row.
    Failed(String),
}

/// The images of a run, as far as they are known before any is read.
#[derive(Debug, Clone)]
pub enum Listing {
    /// The files of a folder or a list, sorted and numbered; parts are runs of `part_size`.
    Files(Vec<Sample>),
    /// Shards, sorted; part `p` is shard `p`, read when it runs.
    Shards {
        /// How their samples are read.
        format: Format,
        /// The shards.
        shards: Vec<Shard>,
    },
}

/// A format of shards: how a config's fields (`input.image_field`, `label_field`, `key_field`)
/// are read for it, and so how its shards are read.
pub trait ShardFormat: Sync {
    /// Its key in `[input]`, the one of [`crate::config::SHARD_FORMATS`] naming its shards.
    fn key(&self) -> &'static str;

    /// The reader of its shards with the fields `spec` names (or its defaults); a field that
    /// means nothing to the format, or that it cannot take, is a config error naming the key.
    fn reader(&self, spec: &ShardsSpec) -> Result<Format, PlanError>;
}

/// The shard formats, each under its key: the one registration of a format.
pub const FORMATS: [&dyn ShardFormat; 2] = [&webdataset::WebDataset, &parquet::Parquet];

/// Reads one format's shards with the fields a config named.
pub trait ShardReader: Send + Sync + std::fmt::Debug {
    /// Reads the shard at `location`, emitting its samples (or its error row).
    fn read(&self, location: &Location, emit: &mut Emitter);
}

/// The reader of a listing's shards: the one place a shard's bytes are handed to its format
/// (a run's parts, and `lookup`'s reading again).
pub type Format = Arc<dyn ShardReader>;

/// The samples of one part, a batch at a time.
pub trait SampleReader: Send {
    /// The next `n` samples, fewer only at the end of the part; empty when it is done.
    fn next_batch(&mut self, n: usize) -> Vec<Sample>;
}

/// Lists the input of a plan: walks the folder or reads the list, or expands the shard
/// patterns. A glob that matches nothing, or a shard named twice, is a config error
/// ([`crate::PlanError`]); a bucket that cannot be listed is an error a retry may fix.
pub fn list(spec: &InputSpec) -> anyhow::Result<Listing> {
    match &spec.source {
        InputSource::Files(files) => Ok(Listing::Files(listing::list(files, spec.limit)?)),
        InputSource::Shards(spec) => Ok(Listing::Shards {
            format: format(spec.format)?.reader(spec)?,
            shards: shards::expand(spec)?,
        }),
    }
}

/// The shard format registered under `key`.
fn format(key: &str) -> Result<&'static dyn ShardFormat, PlanError> {
    FORMATS
        .into_iter()
        .find(|format| format.key() == key)
        .ok_or_else(|| PlanError::invalid(format!("input.{key}"), "is no known shard format"))
}

impl Listing {
    /// The number of parts: files in runs of `part_size`, or one per shard.
    pub fn parts(&self, part_size: usize) -> usize {
        match self {
            Listing::Files(files) => files.len().div_ceil(part_size),
            Listing::Shards { shards, .. } => shards.len(),
        }
    }

    /// The number of images, when known before reading (files, not shards).
    pub fn images(&self) -> Option<usize> {
        match self {
            Listing::Files(files) => Some(files.len()),
            Listing::Shards { .. } => None,
        }
    }

    /// The number of images in part `part`, when known before reading (files, not shards).
    pub fn images_in(&self, part: usize, part_size: usize) -> Option<usize> {
        match self {
            Listing::Files(files) => Some(part_range(files.len(), part, part_size).len()),
            Listing::Shards { .. } => None,
        }
    }

    /// SHA-256 of what was listed (relative paths, or shard names), one per line.
    pub fn hash(&self) -> String {
        let mut hash = Sha256::new();
        let mut line = |text: &str| {
            hash.update(text.as_bytes());
            hash.update(b"\n");
        };
        match self {
            Listing::Files(files) => files.iter().for_each(|f| line(&f.path)),
            Listing::Shards { shards, .. } => shards.iter().for_each(|s| line(&s.name)),
        }
        crate::digest::hex(&hash.finalize())
    }

    /// What was listed, for a log line.
    pub fn describe(&self, part_size: usize) -> String {
        match self {
            Listing::Files(files) => format!(
                "{} images in {} parts of {part_size}",
                files.len(),
                self.parts(part_size)
            ),
            Listing::Shards { shards, .. } => format!("{} shards, one part each", shards.len()),
        }
    }

    /// The first image id of part `part` (of its samples, when it has any).
    pub fn first_image(&self, part: usize, part_size: usize) -> u64 {
        match self {
            Listing::Files(_) => (part * part_size) as u64,
            Listing::Shards { .. } => shard_image_id(part, 0),
        }
    }

    /// The samples of part `part`: a slice of the files, or a reader streaming its shard
    /// (at most `limit` samples of it) on a thread whose CPU time goes to `cpu`.
    pub fn open(
        &self,
        part: usize,
        part_size: usize,
        limit: Option<usize>,
        cpu: &Arc<Ledger>,
    ) -> Box<dyn SampleReader + '_> {
        match self {
            Listing::Files(files) => {
                Box::new(Slice(&files[part_range(files.len(), part, part_size)]))
            }
            Listing::Shards { format, shards } => {
                let (shard, limit) = (&shards[part], limit.unwrap_or(usize::MAX));
                let (location, format) = (shard.location.clone(), Arc::clone(format));
                Box::new(stream::spawn(shard, part, limit, cpu, move |emit| {
                    format.read(&location, emit)
                }))
            }
        }
    }
}

/// The positions of part `part`'s files in a listing of `files`.
fn part_range(files: usize, part: usize, part_size: usize) -> std::ops::Range<usize> {
    let start = (part * part_size).min(files);
    start..(start + part_size).min(files)
}

/// Samples already in memory (a part of a listing of files), handed out in order.
pub struct Slice<'a>(pub &'a [Sample]);

impl SampleReader for Slice<'_> {
    fn next_batch(&mut self, n: usize) -> Vec<Sample> {
        let (batch, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        batch.to_vec()
    }
}

/// The id of the `index`-th sample of the shard of part `part`.
pub fn shard_image_id(part: usize, index: u64) -> u64 {
    ((part as u64) << 32) | index
}

/// The most samples one shard can hold (ids keep 32 bits for the position in the shard).
pub const MAX_SHARD_SAMPLES: u64 = 1 << 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InputConfig, SHARD_FORMATS};

    #[test]
    fn each_shard_key_of_the_config_is_read_by_the_format_registered_under_it() {
        for (key, _) in SHARD_FORMATS {
            let input: InputConfig = toml::from_str(&format!("{key} = \"s/*.x\"")).unwrap();
            let named: Vec<(&str, Vec<String>)> = input
                .shards()
                .iter()
                .map(|(k, p)| (*k, p.texts()))
                .collect();
            assert_eq!(named, [(key, vec!["s/*.x".to_owned()])]);
            assert_eq!(format(key).unwrap().key(), key);
        }
        assert_eq!(FORMATS.len(), SHARD_FORMATS.len());
        assert_eq!(
            format("tfrecord").err().unwrap().to_string(),
            "config: `input.tfrecord` is no known shard format"
        );
    }
}
