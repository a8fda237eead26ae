//! Some samples of a shard input read again after the run, by image id, for the pictures that
//! draw them (the report's examples, `layerwise plot top`): each shard that holds any is read
//! once, by the run's own reader, up to the last one wanted, the shards in parallel.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rayon::prelude::*;

use crate::input::shards;
use crate::input::stream::Emitter;
use crate::input::{Content, Format, MAX_SHARD_SAMPLES};

/// A sample wanted again, as the run's `images` table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// Its id: `(part << 32) | position in the shard`.
    pub image_id: u64,
    /// Its shard (`images.source`).
    pub source: &'a str,
    /// Its name in the shard (`images.path`).
    pub path: &'a str,
}

/// The encoded image of each wanted sample, or why it cannot be had now (the shard is gone,
/// or changed since the run). `folder` is the one the run's relative shard names were taken
/// from.
pub fn encoded(
    format: &Format,
    folder: &Path,
    wanted: &[Wanted],
) -> HashMap<u64, Result<Vec<u8>, String>> {
    let mut by_shard: BTreeMap<&str, Vec<&Wanted>> = BTreeMap::new();
    for w in wanted {
        by_shard.entry(w.source).or_default().push(w);
    }
    by_shard
        .into_par_iter()
        .flat_map_iter(|(source, wanted)| read_shard(format, folder, source, &wanted))
        .collect()
}

/// One pass over the shard `source`, keeping the samples `wanted` names.
fn read_shard(
    format: &Format,
    folder: &Path,
    source: &str,
    wanted: &[&Wanted],
) -> Vec<(u64, Result<Vec<u8>, String>)> {
    let last = wanted.iter().map(|w| w.image_id).max().unwrap_or(0);
    let part = (last / MAX_SHARD_SAMPLES) as usize;
    let mut found: HashMap<u64, (String, Content)> = HashMap::new();
    let mut shard_error = None;
    let mut emit = Emitter::new(source, part, usize::MAX, |sample| {
        if sample.path == source && sample.key.is_none() {
            if let Content::Failed(reason) = &sample.content {
                shard_error = Some(reason.clone());
                return false;
            }
        }
        let more = sample.image_id < last;
        if wanted.iter().any(|w| w.image_id == sample.image_id) {
            found.insert(sample.image_id, (sample.path, sample.content));
        }
        more
    });
    let location = shards::location(source, folder);
    match format {
        Format::WebDataset(fields) => {
            crate::input::webdataset::read_location(&location, fields, &mut emit)
        }
        Format::Parquet(fields) => {
            crate::input::parquet::read_location(&location, fields, &mut emit)
        }
    }
    drop(emit);
    wanted
        .iter()
        .map(|w| {
            let got = match (found.remove(&w.image_id), &shard_error) {
                (_, Some(reason)) => Err(format!("shard {source}: {reason}")),
                (None, None) => Err(format!(
                    "shard {source} now ends before sample {} (`{}`): it changed since the run",
                    w.image_id % MAX_SHARD_SAMPLES,
                    w.path
                )),
                (Some((path, _)), None) if path != w.path => Err(format!(
                    "shard {source} changed since the run: its sample {} is now `{path}`, the \
                     run read `{}`",
                    w.image_id % MAX_SHARD_SAMPLES,
                    w.path
                )),
                (Some((_, Content::Bytes(bytes))), None) => Ok(bytes),
                (Some((_, Content::Failed(reason))), None) => Err(reason),
                (Some((_, Content::File(path))), None) => {
                    crate::input::preprocess::read_file(&path)
                }
            };
            (w.image_id, got)
        })
        .collect()
}
