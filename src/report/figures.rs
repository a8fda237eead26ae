//! The pictures of a report: each channel's dataset examples (from `top`, or ranked from
//! `stats` with the stored maps, or with maps the report computes again where the run did not
//! keep them), drawn over their input images as small JPEG files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

use crate::output::provenance::LayerInfo;
use crate::reduce::LayerKind;
use crate::report::summary::ChannelSummary;
use crate::view::read::{MapQuery, StoredImage, StoredMap, StoredRun};
use crate::view::recompute;
use crate::view::render::{self, Cell};

/// The side of a channel's tile on its layer's page, in pixels.
pub const TILE: u32 = 72;
/// The side of an example drawn from the image alone (no map stored), in pixels.
pub const IMAGE_ONLY: u32 = 160;

/// Where a layer's examples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `top` table (the layer has `top_k`): its maps and scores.
    Top,
    /// Ranked by the per-image max in `stats`, with the maps stored in `maps` where the channel
    /// is kept.
    Stats,
}

/// A dataset example of a channel.
#[derive(Debug, Clone)]
pub struct Example {
    /// The image.
    pub image_id: u64,
    /// What it was ranked by.
    pub score: f32,
    /// Its map, when one is stored (or was recomputed).
    pub map: Option<StoredMap>,
    /// Whether the map was computed again by the report, the run having not kept it.
    pub recomputed: bool,
}

/// The `k` best examples of every channel of `layer`, with where they come from.
pub fn examples(
    run: &StoredRun,
    layer: &LayerInfo,
    channels: &[ChannelSummary],
    k: usize,
) -> Result<(Source, Vec<Vec<Example>>)> {
    if layer.kind == LayerKind::Maps {
        let mut tops = run.tops(&layer.name, None, k)?;
        if !tops.is_empty() {
            let examples = channels
                .iter()
                .map(|c| {
                    let maps = tops.remove(&c.channel).unwrap_or_default();
                    maps.into_iter().map(from_top).collect()
                })
                .collect();
            return Ok((Source::Top, examples));
        }
    }
    let mut stored = stored_maps(run, layer, channels)?;
    let examples = channels
        .iter()
        .map(|c| {
            c.best
                .iter()
                .map(|&(image_id, score)| Example {
                    image_id,
                    score,
                    map: stored.remove(&(image_id, c.channel)),
                    recomputed: false,
                })
                .collect()
        })
        .collect();
    Ok((Source::Stats, examples))
}

fn from_top(map: StoredMap) -> Example {
    Example {
        image_id: map.image_id,
        score: map.score.unwrap_or(f32::NAN),
        map: Some(map),
        recomputed: false,
    }
}

/// Computes again, and fills in, the maps of the examples the run did not keep (see
/// [`recompute`]), the first-ranked examples first. When the run's
/// model or images cannot be had any more, warns and leaves them without a map.
pub fn recompute_missing(
    run: &StoredRun,
    layer: &LayerInfo,
    images: &HashMap<u64, &StoredImage>,
    examples: &mut [Vec<Example>],
    channels: &[ChannelSummary],
) {
    let deepest = examples.iter().map(Vec::len).max().unwrap_or(0);
    let wanted: Vec<(u64, u32)> = (0..deepest)
        .flat_map(|rank| {
            examples
                .iter()
                .zip(channels)
                .filter_map(move |(list, c)| list.get(rank).map(|e| (e, c.channel)))
        })
        .filter(|(e, _)| e.map.is_none())
        .map(|(e, channel)| (e.image_id, channel))
        .collect();
    if wanted.is_empty() || layer.kind != LayerKind::Maps {
        return;
    }
    let mut found = match recompute::maps(run, &layer.name, &wanted, images, recompute::MAX_IMAGES)
    {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(
                "{}: the maps of channels the run did not keep are not recomputed: {e:#}",
                layer.name
            );
            return;
        }
    };
    for (list, c) in examples.iter_mut().zip(channels) {
        for e in list.iter_mut().filter(|e| e.map.is_none()) {
            if let Some(map) = found.remove(&(e.image_id, c.channel)) {
                e.map = Some(map);
                e.recomputed = true;
            }
        }
    }
}

/// The stored maps of the best images of the kept channels, by (image, channel).
fn stored_maps(
    run: &StoredRun,
    layer: &LayerInfo,
    channels: &[ChannelSummary],
) -> Result<BTreeMap<(u64, u32), StoredMap>> {
    let kept: BTreeSet<u32> = layer.kept.iter().copied().collect();
    let wanted: BTreeSet<(u64, u32)> = channels
        .iter()
        .filter(|c| kept.contains(&c.channel))
        .flat_map(|c| c.best.iter().map(move |&(id, _)| (id, c.channel)))
        .collect();
    if wanted.is_empty() || layer.kind != LayerKind::Maps {
        return Ok(BTreeMap::new());
    }
    let query = MapQuery {
        layer: layer.name.clone(),
        channels: Some(wanted.iter().map(|&(_, c)| c).collect()),
        images: Some(wanted.iter().map(|&(id, _)| id).collect()),
    };
    Ok(run
        .maps(&query)?
        .into_iter()
        .filter(|m| wanted.contains(&(m.image_id, m.channel)))
        .map(|m| ((m.image_id, m.channel), m))
        .collect())
}

/// The pixel size of an example's picture: its map magnified as in `layerwise plot`, or
/// [`IMAGE_ONLY`] square for an image without a map.
pub fn picture_size(map: Option<&StoredMap>) -> (u32, u32) {
    match map {
        Some(map) => {
            let zoom = render::magnification(map.height, map.width);
            (map.width as u32 * zoom, map.height as u32 * zoom)
        }
        None => (IMAGE_ONLY, IMAGE_ONLY),
    }
}

/// Draws an example: its map over its input image `under` (at [`picture_size`]), or the map
/// alone, or the image alone when no map is stored; None when there is neither.
pub fn draw(map: Option<&StoredMap>, under: Option<&RgbImage>) -> Option<RgbImage> {
    let Some(map) = map else {
        return under.cloned();
    };
    let cell = Cell {
        title: String::new(),
        height: map.height,
        width: map.width,
        values: map.values.clone(),
        under: under.cloned(),
    };
    let zoom = render::magnification(map.height, map.width);
    Some(render::picture(&cell, zoom, render::own_scale(&cell), None))
}

/// JPEG quality of the pictures: photographs under maps are 5 to 10 times smaller than as PNG.
pub const QUALITY: u8 = 88;

/// Writes `picture` as a JPEG file at `path` (its folder must exist).
pub fn save(picture: &RgbImage, path: &Path) -> Result<()> {
    let write = || -> Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        JpegEncoder::new_with_quality(file, QUALITY).encode_image(picture)?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Tiles per row of a layer's sheet of tiles.
pub const SHEET_COLUMNS: usize = 16;

/// Where channel `at`'s tile sits in its layer's sheet: (x, y) in pixels.
pub fn sheet_position(at: usize) -> (u32, u32) {
    let (col, row) = (at % SHEET_COLUMNS, at / SHEET_COLUMNS);
    (col as u32 * TILE, row as u32 * TILE)
}

/// The tiles of a layer, each centred in its [`TILE`] square at [`sheet_position`], on white.
pub fn sheet(tiles: &[Option<RgbImage>]) -> RgbImage {
    let rows = tiles.len().div_ceil(SHEET_COLUMNS).max(1) as u32;
    let width = SHEET_COLUMNS.min(tiles.len().max(1)) as u32 * TILE;
    let mut sheet = RgbImage::from_pixel(width, rows * TILE, render::BACKGROUND);
    for (at, tile) in tiles.iter().enumerate() {
        if let Some(tile) = tile {
            let (x, y) = sheet_position(at);
            let (dx, dy) = ((TILE - tile.width()) / 2, (TILE - tile.height()) / 2);
            image::imageops::replace(&mut sheet, tile, (x + dx).into(), (y + dy).into());
        }
    }
    sheet
}

/// The picture shrunk to fit a [`TILE`] square.
pub fn tile(picture: &RgbImage) -> RgbImage {
    let (w, h) = picture.dimensions();
    let scale = f64::from(TILE) / f64::from(w.max(h));
    let size = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, TILE);
    image::imageops::thumbnail(picture, size(w), size(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_sit_in_their_squares_of_the_sheet() {
        let red = RgbImage::from_pixel(TILE, TILE / 2, image::Rgb([255, 0, 0]));
        let wide = tile(&RgbImage::from_pixel(300, 100, image::Rgb([0, 0, 255])));
        assert_eq!(wide.dimensions(), (TILE, TILE / 3));
        let mut tiles = vec![None; SHEET_COLUMNS + 1];
        tiles[1] = Some(red);
        tiles[SHEET_COLUMNS] = Some(wide);
        let sheet = sheet(&tiles);
        assert_eq!(sheet.dimensions(), (SHEET_COLUMNS as u32 * TILE, 2 * TILE));
        let (x, y) = sheet_position(1);
        assert_eq!((x, y), (TILE, 0));
        assert_eq!(
            sheet.get_pixel(x + 1, y + TILE / 2)[0],
            255,
            "centred vertically"
        );
        assert_eq!(*sheet.get_pixel(x + 1, y + 1), render::BACKGROUND);
        assert_eq!(sheet_position(SHEET_COLUMNS), (0, TILE));
        assert_eq!(sheet.get_pixel(1, TILE + TILE / 2)[2], 255);
        assert_eq!(*sheet.get_pixel(1, 1), render::BACKGROUND, "no tile: white");
    }
}
