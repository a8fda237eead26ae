//! The classic study's figures, from a stored run (or computed on the fly from a config):
//! one image's channels, one channel across images, and the images that excite a channel most.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::Array;
use fast_image_resize::Resizer;
use image::RgbImage;

use crate::config::Keep;
use crate::engine::Prepared;
use crate::input::{Content, Sample};
use crate::output::provenance::LayerInfo;
use crate::output::tables::Rows;
use crate::plan::{self, Overrides, Plan};
use crate::reduce::LayerKind;
use crate::view::photos::Photos;
use crate::view::read::{self, MapQuery, StoredImage, StoredMap, StoredRun};
use crate::view::recompute;
use crate::view::render::{self, Cell};

/// At most this many cells are drawn by default (a 7 x 7 grid).
pub const DEFAULT_CELLS: usize = 49;

/// Which image: its `image_id`, or its path as the `images` table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// By id.
    Id(u64),
    /// By path relative to the input root.
    Path(String),
}

impl ImageRef {
    /// A number is an id; anything else is a path.
    pub fn parse(text: &str) -> ImageRef {
        text.parse()
            .map_or_else(|_| ImageRef::Path(text.to_owned()), ImageRef::Id)
    }
}

/// Which images to show across: a range of ids, or those with a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSet {
    /// `image_id`s in this half-open range.
    Range(u64, u64),
    /// The ok images with this label.
    Label(String),
}

impl ImageSet {
    /// Parses `0..49` or `label=NAME`.
    pub fn parse(text: &str) -> Result<ImageSet> {
        if let Some(label) = text.strip_prefix("label=") {
            return Ok(ImageSet::Label(label.to_owned()));
        }
        let (a, b) = parse_range(text).with_context(|| {
            format!("`--images {text}`: write a range such as 0..49, or label=NAME")
        })?;
        Ok(ImageSet::Range(a, b))
    }
}

/// Parses a channel list: `0..49` (half-open), `0,11,12`, or one number.
pub fn parse_channels(text: &str) -> Result<Vec<u32>> {
    if let Some((a, b)) = parse_range(text) {
        return Ok((a as u32..b as u32).collect());
    }
    text.split(',')
        .map(|c| c.trim().parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            crate::error::Mistake(format!(
                "`{text}`: write channels as 0..49 (half-open), 0,11,12 or 5"
            ))
            .into()
        })
}

fn parse_range(text: &str) -> Option<(u64, u64)> {
    let (a, b) = text.split_once("..")?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a < b).then_some((a, b))
}

/// One image, many channels of a layer, from a run: the classic study's first and third figures.
pub fn channels_from_run(
    run: &StoredRun,
    layer: &str,
    image: &ImageRef,
    channels: Option<&[u32]>,
) -> Result<Vec<Cell>> {
    let stored = run.layer(layer)?;
    let channels = wanted_channels(stored, channels, &run.dir)?;
    Ok(image_maps(run, layer, image, &channels)?
        .into_iter()
        .map(|m| cell(format!("channel {}", m.channel), m))
        .collect())
}

/// One image's stored maps of `channels` of a layer (each must be stored), in that order.
pub fn image_maps(
    run: &StoredRun,
    layer: &str,
    image: &ImageRef,
    channels: &[u32],
) -> Result<Vec<StoredMap>> {
    let stored = run.layer(layer)?;
    wanted_channels(stored, Some(channels), &run.dir)?;
    let images = run.images()?;
    let image = find_image(&images, image)?;
    let query = MapQuery {
        layer: layer.to_owned(),
        channels: Some(channels.iter().copied().collect()),
        images: Some([image.image_id].into()),
    };
    let mut maps = run.maps(&query)?;
    maps.sort_by_key(|m| channels.iter().position(|c| *c == m.channel));
    Ok(maps)
}

/// One channel across images, from a run: the classic study's second figure.
pub fn images_from_run(
    run: &StoredRun,
    layer: &str,
    channel: u32,
    which: Option<&ImageSet>,
) -> Result<Vec<Cell>> {
    let stored = run.layer(layer)?;
    wanted_channels(stored, Some(&[channel]), &run.dir)?;
    let chosen = chosen_images(run, which)?;
    let query = MapQuery {
        layer: layer.to_owned(),
        channels: Some([channel].into()),
        images: Some(chosen.iter().map(|i| i.image_id).collect()),
    };
    Ok(image_cells(&chosen, run.maps(&query)?))
}

/// [`images_from_run`] for a channel whose maps the run did not keep: computed again for the
/// same images by the run's model ([`recompute::maps`]).
pub fn images_recomputed(
    run: &StoredRun,
    layer: &str,
    channel: u32,
    which: Option<&ImageSet>,
) -> Result<Vec<Cell>> {
    run.layer(layer)?;
    let chosen = chosen_images(run, which)?;
    let wanted: Vec<(u64, u32)> = chosen.iter().map(|i| (i.image_id, channel)).collect();
    let images: HashMap<u64, &StoredImage> = chosen.iter().map(|i| (i.image_id, i)).collect();
    let mut found = recompute::maps(run, layer, &wanted, &images, wanted.len())?;
    let maps: Vec<StoredMap> = wanted.iter().filter_map(|key| found.remove(key)).collect();
    Ok(image_cells(&chosen, maps))
}

/// The ok images of a run that `which` picks (the first [`DEFAULT_CELLS`] by default).
fn chosen_images(run: &StoredRun, which: Option<&ImageSet>) -> Result<Vec<StoredImage>> {
    let chosen: Vec<StoredImage> = run
        .images()?
        .into_iter()
        .filter(|i| i.ok)
        .filter(|i| match which {
            Some(ImageSet::Range(a, b)) => (*a..*b).contains(&i.image_id),
            Some(ImageSet::Label(label)) => i.label.as_deref() == Some(label.as_str()),
            None => true,
        })
        .take(DEFAULT_CELLS.max(match which {
            Some(ImageSet::Range(a, b)) => (b - a) as usize,
            _ => 0,
        }))
        .collect();
    if chosen.is_empty() {
        crate::mistake!("no ok image of the run matches {which:?}");
    }
    Ok(chosen)
}

/// A cell per map, titled with its image.
fn image_cells(chosen: &[StoredImage], maps: Vec<StoredMap>) -> Vec<Cell> {
    maps.into_iter()
        .map(|m| {
            let image = chosen
                .iter()
                .find(|i| i.image_id == m.image_id)
                .expect("queried");
            cell(image_title(image), m)
        })
        .collect()
}

/// The `k` images that excite a channel most, each as the input image under its map: from the
/// `top` table, or from `stats` and the stored maps when the layer has no `top_k`.
pub fn top_from_run(run: &StoredRun, layer: &str, channel: u32, k: usize) -> Result<Vec<Cell>> {
    let stored = run.layer(layer)?;
    if channel as usize >= stored.channels {
        crate::mistake!(
            "`{layer}` has {} channels (0 to {}); there is no channel {channel}",
            stored.channels,
            stored.channels - 1
        );
    }
    if stored.kind != LayerKind::Maps {
        crate::mistake!(
            "`{layer}` is {}: it has no maps to draw; `plot top` draws the channels of a layer \
             with maps",
            stored.describe()
        );
    }
    let images = run.images()?;
    let mut maps = run.top(layer, channel, k)?;
    if maps.is_empty() {
        maps = best_by_stats(run, stored, channel, k, &images)?;
    }
    let zoom = render::magnification(stored.height, stored.width);
    let size = (stored.width as u32 * zoom, stored.height as u32 * zoom);
    let mut resizer = Resizer::new();
    let shown: Vec<&StoredImage> = maps
        .iter()
        .filter_map(|m| images.iter().find(|i| i.image_id == m.image_id))
        .collect();
    let photos = Photos::read(run, shown);
    Ok(maps
        .into_iter()
        .map(|m| {
            let image = images.iter().find(|i| i.image_id == m.image_id);
            let title = image.map_or(format!("image: {}", m.image_id), image_title);
            let under = image.and_then(|i| photos.underlay(i, size, &mut resizer));
            Cell {
                under,
                ..cell(title, m)
            }
        })
        .collect())
}

/// Without a `top` table: the `k` images whose map of `channel` has the highest max in `stats`,
/// with their stored maps, or, where the run did not keep the channel, its maps computed again
/// for those images ([`recompute::maps`]).
fn best_by_stats(
    run: &StoredRun,
    stored: &LayerInfo,
    channel: u32,
    k: usize,
    images: &[StoredImage],
) -> Result<Vec<StoredMap>> {
    let mut maxima = run.maxima(&stored.name, channel)?;
    maxima.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    maxima.truncate(k);
    let mut maps = if stored.kept.contains(&channel) {
        let query = MapQuery {
            layer: stored.name.clone(),
            channels: Some([channel].into()),
            images: Some(maxima.iter().map(|m| m.0).collect()),
        };
        run.maps(&query)?
    } else {
        let wanted: Vec<(u64, u32)> = maxima.iter().map(|m| (m.0, channel)).collect();
        let by_id: HashMap<u64, &StoredImage> = images.iter().map(|i| (i.image_id, i)).collect();
        recompute::maps(run, &stored.name, &wanted, &by_id, k)
            .with_context(|| {
                format!(
                    "the run kept neither `top_k` nor the maps of channel {channel} of `{}`, and \
                     they cannot be computed again",
                    stored.name
                )
            })?
            .into_values()
            .collect()
    };
    maps.sort_by_key(|m| maxima.iter().position(|x| x.0 == m.image_id));
    Ok(maps)
}

/// One image's channels computed on the fly from a config, without a run.
pub fn channels_from_config(
    config: &Path,
    image: &Path,
    layer: &str,
    channels: Option<&[u32]>,
) -> Result<Vec<Cell>> {
    let config_path = config;
    let mut config = plan::read_config(config_path)?;
    for l in &mut config.layers {
        l.keep = Keep::All;
        l.top_k = None;
    }
    let model = plan::read_model(&config).map_err(|e| e.in_file(config_path))?;
    let overrides = Overrides {
        out: Some(std::env::temp_dir()),
        limit: None,
    };
    let plan = Plan::new(config, &model, &overrides).map_err(|e| e.in_file(config_path))?;
    if !plan.layers.iter().any(|l| l.name == layer) {
        let names: Vec<&str> = plan.layers.iter().map(|l| l.name.as_str()).collect();
        crate::mistake!(
            "the config has no layer `{layer}`; its layers are {}",
            names.join(", ")
        );
    }
    let mut prepared = Prepared::new(plan, model)?;
    let sample = Sample {
        image_id: 0,
        path: image.display().to_string(),
        source: None,
        key: None,
        label: None,
        content: Content::File(image.to_owned()),
    };
    let mut rows = Rows::new(&prepared.formats);
    let pool = prepared.pool()?;
    let mut batcher = prepared.batcher(&pool);
    batcher.process(&[sample], &mut rows)?;
    let images = rows.images.finish();
    let errors = images
        .column_by_name("error")
        .expect("images has error")
        .as_string::<i32>();
    if errors.is_valid(0) {
        crate::mistake!("{}: {}", image.display(), errors.value(0));
    }
    let query = MapQuery {
        layer: layer.to_owned(),
        channels: channels.map(|c| c.iter().copied().collect()),
        images: None,
    };
    let mut cells: Vec<Cell> = read::select_maps(&rows.maps.finish(), &query)
        .into_iter()
        .map(|m| cell(format!("channel {}", m.channel), m))
        .collect();
    if channels.is_none() {
        cells.truncate(DEFAULT_CELLS);
    }
    Ok(cells)
}

/// Draws the cells and writes the PNG, creating its folder.
pub fn write_png(cells: &[Cell], style: render::Style, path: &Path) -> Result<RgbImage> {
    if cells.is_empty() {
        crate::mistake!("nothing to draw");
    }
    let image = render::grid(cells, style);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    image
        .save(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(image)
}

/// Draws the cells as a PNG file's bytes.
pub fn png_bytes(cells: &[Cell], style: render::Style) -> Result<Vec<u8>> {
    if cells.is_empty() {
        crate::mistake!("nothing to draw");
    }
    encode_png(&render::grid(cells, style))
}

/// A picture as the bytes of a PNG file.
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("cannot encode the PNG")?;
    Ok(png)
}

/// The default file of a figure of a run: `OUT/plots/NAME.png`.
pub fn default_png(run_dir: &Path, name: &str) -> PathBuf {
    run_dir
        .join("plots")
        .join(format!("{}.png", name.replace(['/', ' '], "_")))
}

fn cell(title: String, m: StoredMap) -> Cell {
    Cell {
        title,
        height: m.height,
        width: m.width,
        values: m.values,
        under: None,
    }
}

fn image_title(image: &StoredImage) -> String {
    match &image.label {
        Some(label) => format!("image: {} ({label})", image.image_id),
        None => format!("image: {}", image.image_id),
    }
}

fn find_image<'a>(images: &'a [StoredImage], wanted: &ImageRef) -> Result<&'a StoredImage> {
    let found = images.iter().find(|i| match wanted {
        ImageRef::Id(id) => i.image_id == *id,
        ImageRef::Path(p) => &i.path == p,
    });
    match found {
        Some(i) if i.ok => Ok(i),
        Some(i) => crate::mistake!("image {} ({}) could not be read in this run, so it has no maps", i.image_id, i.path),
        None => crate::mistake!("the run has no image {wanted:?}; give an image_id ({}) or a path as the images table records it", id_range(images)),
    }
}

/// The run's image ids for a person: `0 to 11`, or, for a shard run, where its ids are
/// `(shard << 32) | position`, the first and last with that said.
fn id_range(images: &[StoredImage]) -> String {
    let (Some(lo), Some(hi)) = (
        images.iter().map(|i| i.image_id).min(),
        images.iter().map(|i| i.image_id).max(),
    ) else {
        return "the run has no images".into();
    };
    if hi - lo + 1 == images.len() as u64 {
        format!("{lo} to {hi}")
    } else {
        format!("from {lo} to {hi}, as (shard << 32) | position in the shard")
    }
}

/// The requested channels, all stored; by default the stored ones, up to 49.
fn wanted_channels(layer: &LayerInfo, wanted: Option<&[u32]>, run: &Path) -> Result<Vec<u32>> {
    let Some(wanted) = wanted else {
        if layer.kept.is_empty() {
            crate::mistake!("{}", not_stored(layer, None, run));
        }
        return Ok(layer.kept.iter().copied().take(DEFAULT_CELLS).collect());
    };
    if let Some(missing) = wanted.iter().find(|c| !layer.kept.contains(c)) {
        crate::mistake!("{}", not_stored(layer, Some(*missing), run));
    }
    Ok(wanted.to_vec())
}

fn not_stored(layer: &LayerInfo, channel: Option<u32>, run: &Path) -> String {
    let stored = if layer.kept.is_empty() {
        "no channel's maps are stored".to_owned()
    } else {
        let list: Vec<String> = layer.kept.iter().map(u32::to_string).collect();
        format!("maps are stored for channels {}", list.join(", "))
    };
    let what = channel.map_or("its maps".to_owned(), |c| format!("channel {c}"));
    format!(
        "{what} of `{}` is not stored in {}: {stored}. Store more with `keep = [...]` or \
         `keep = \"all\"` for the layer and run again, or draw it on the fly with `layerwise plot \
         channels --config CONFIG --image PATH --layer {}`",
        layer.name,
        run.display(),
        layer.name
    )
}
