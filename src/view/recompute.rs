//! Maps a run did not keep, computed again for its pictures: the run's own config (model,
//! preprocessing, layer) on the few images a figure shows, in batches, through the same engine
//! as `layerwise run`, so that every channel of a layer page can show its map.
//!
//! Bounded: at most [`MAX_IMAGES`] images per layer (the examples of every channel's first rank
//! first, then the second ...), each run once for all the channels it is an example of;
//! memory is one batch's tensors plus the maps asked for. The model must be the run's (the same
//! SHA-256), else nothing is recomputed.

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;

use crate::config::{Keep, Positions};
use crate::digest::sha256_hex;
use crate::engine::Prepared;
use crate::input::{self, Content, Sample};
use crate::plan::{self, Overrides, Plan};
use crate::view::photos::Photos;
use crate::view::read::{self, MapQuery, StoredImage, StoredMap, StoredRun};

/// The most images whose maps are recomputed for one layer of a report.
pub const MAX_IMAGES: usize = 256;

/// The maps of `wanted` (image, channel) pairs of `layer`, computed again by running the
/// images through the run's model; the images are taken in the order of `wanted`'s first
/// mention, at most `max_images` of them.
pub fn maps(
    run: &StoredRun,
    layer: &str,
    wanted: &[(u64, u32)],
    images: &HashMap<u64, &StoredImage>,
    max_images: usize,
) -> Result<HashMap<(u64, u32), StoredMap>> {
    let mut order: Vec<u64> = Vec::new();
    for &(id, _) in wanted {
        if !order.contains(&id) && order.len() < max_images {
            order.push(id);
        }
    }
    let chosen: BTreeSet<u64> = order.iter().copied().collect();
    let wanted: BTreeSet<(u64, u32)> = wanted
        .iter()
        .copied()
        .filter(|(id, _)| chosen.contains(id))
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let channels: BTreeSet<u32> = wanted.iter().map(|&(_, c)| c).collect();
    let mut prepared = prepare(run, layer, channels.iter().copied().collect())?;
    let shown: Vec<&StoredImage> = order
        .iter()
        .filter_map(|id| images.get(id).copied())
        .collect();
    let photos = Photos::read(run, shown.iter().copied());
    let samples: Vec<Sample> = shown.iter().filter_map(|i| sample(&photos, i)).collect();
    let query = MapQuery {
        layer: layer.to_owned(),
        channels: Some(channels),
        images: Some(chosen),
    };
    let pool = prepared.pool()?;
    let mut batcher = prepared.batcher(&pool);
    let mut found = HashMap::new();
    batcher.process_all(&mut input::Slice(&samples), |mut batch| {
        for map in read::select_maps(&batch.rows.maps.finish(), &query) {
            if wanted.contains(&(map.image_id, map.channel)) {
                found.insert((map.image_id, map.channel), map);
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// The engine for `layer` of the run alone, keeping `channels`, with the run's model (checked
/// to be the one it ran).
fn prepare(run: &StoredRun, layer: &str, channels: Vec<u32>) -> Result<Prepared> {
    let mut config = run.config.clone();
    for l in &mut config.layers {
        l.top_k = None;
    }
    let model = plan::read_model(&config)?;
    let digest = sha256_hex(&model.bytes);
    if digest != run.facts.model.sha256 {
        crate::mistake!(
            "{} is not the model the run used (its SHA-256 has changed)",
            model.path.display()
        );
    }
    let overrides = Overrides {
        out: Some(std::env::temp_dir()),
        limit: None,
    };
    let mut plan = Plan::new(config, &model, &overrides)?;
    plan.layers.retain(|l| l.name == layer);
    for l in &mut plan.layers {
        l.keep = Keep::Channels(channels.clone());
        l.positions = Some(Positions::None);
    }
    if plan.layers.is_empty() {
        crate::mistake!("the run's config no longer picks a layer `{layer}`");
    }
    Prepared::new(plan, model)
}

/// `image` as a sample to run again, with its bytes as the report's pictures read them.
fn sample(photos: &Photos, image: &StoredImage) -> Option<Sample> {
    let (bytes, _) = photos.encoded(image)?.ok()?;
    Some(Sample {
        image_id: image.image_id,
        path: image.path.clone(),
        source: image.source.clone(),
        key: None,
        label: None,
        content: Content::Bytes(bytes.into_owned()),
    })
}
