//! `layerwise report`: a static HTML site of a run (finished or partial) that opens from
//! `file://` with no server and no network: an index, a page per layer with every channel as a
//! tile and a sortable table, and a page per channel with its dataset examples, histograms and
//! per-label means, each figure with the DuckDB query that reproduces it.
//!
//! [`summary`] computes the numbers from the tables (streaming, one layer at a time),
//! [`figures`] gathers and draws the examples, [`pages`] writes the HTML through [`html`]'s
//! escaping. The site is built in a hidden sibling folder and renamed into place, so a
//! half-written report is never visible.

pub mod figures;
pub mod html;
pub mod pages;
pub mod remote;
pub mod summary;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fast_image_resize::Resizer;
use rayon::prelude::*;

use crate::compare;
use crate::location::is_remote;
use crate::output::provenance::LayerInfo;
use crate::reduce::LayerKind;
use crate::view::photos::Photos;
use crate::view::plot::{self, ImageRef, ImageSet};
use crate::view::read::{StoredImage, StoredRun};
use crate::view::render::Style;
use figures::Example;
use pages::{LayerView, Site};
use summary::Labels;

/// Dataset examples per channel by default.
pub const DEFAULT_TOP: usize = 8;

/// What to write and where.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The site's folder (replaced if it holds an earlier report).
    pub dest: PathBuf,
    /// Only these layers (default: all).
    pub layers: Option<Vec<String>>,
    /// Dataset examples per channel.
    pub top: usize,
    /// The channel of each layer page's "one channel across images" figure (default: the one
    /// with the highest mean of its per-image max).
    pub channel: Option<u32>,
    /// Where the run's tables are, as the pages' queries name them (default: the run folder).
    pub tables_at: Option<String>,
    /// A comparison's folder (what `layerwise compare` wrote) whose matrix the index shows.
    pub compare: Option<PathBuf>,
}

/// What a report shows, besides where it goes.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// Only these layers (default: all).
    pub layers: Option<Vec<String>>,
    /// Dataset examples per channel.
    pub top: usize,
    /// The channel of each layer page's "one channel across images" figure.
    pub channel: Option<u32>,
    /// A comparison's folder whose matrix the index shows too.
    pub compare: Option<PathBuf>,
}

/// Writes the report of the run at `location` (a folder or `s3://...`) to `dest` (default
/// `LOCATION/report`; a bucket too): a run in a bucket is copied locally first, a report for
/// a bucket is built locally and uploaded.
pub fn write_from(location: &Path, dest: Option<PathBuf>, choices: Choices) -> Result<Written> {
    let copy = is_remote(location)
        .then(|| remote::LocalCopy::fetch(location))
        .transpose()?;
    let run = StoredRun::open(copy.as_ref().map_or(location, |c| c.dir()))?;
    let dest = dest.unwrap_or_else(|| location.join("report"));
    let tables_at = copy.as_ref().map(|_| location.display().to_string());
    let local = std::env::temp_dir().join(format!("layerwise-site-{}", std::process::id()));
    let options = ReportOptions {
        dest: match is_remote(&dest) {
            true => local.clone(),
            false => dest.clone(),
        },
        layers: choices.layers,
        top: choices.top,
        channel: choices.channel,
        tables_at,
        compare: choices.compare,
    };
    if !is_remote(&dest) {
        return write(&run, &options);
    }
    let written = write(&run, &options);
    let uploaded = written.and_then(|w| remote::upload(&local, &dest).map(|()| w));
    let _ = std::fs::remove_dir_all(&local);
    Ok(Written {
        dir: dest,
        ..uploaded?
    })
}

/// What a report wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The site's folder; `index.html` is its entry.
    pub dir: PathBuf,
    /// HTML pages.
    pub pages: usize,
    /// PNG pictures.
    pub pictures: usize,
}

/// Writes the report of `run`.
pub fn write(run: &StoredRun, options: &ReportOptions) -> Result<Written> {
    let layers = chosen_layers(run, options.layers.as_deref())?;
    let staging = Staging::new(&options.dest)?;
    let images = run.images()?;
    let by_id: HashMap<u64, &StoredImage> = images.iter().map(|i| (i.image_id, i)).collect();
    let labels = Labels::new(&images);
    let run_dir = options.tables_at.clone().unwrap_or_else(|| {
        let dir = std::fs::canonicalize(&run.dir).unwrap_or_else(|_| run.dir.clone());
        dir.display().to_string()
    });
    let site = Site {
        run,
        images: &by_id,
        labels: &labels,
        run_dir,
    };
    let mut written = Written {
        dir: options.dest.clone(),
        pages: 1,
        pictures: 0,
    };
    let mut views = Vec::new();
    let count = layers.len();
    for (at, (index, layer)) in layers.into_iter().enumerate() {
        let started = std::time::Instant::now();
        let built = build_layer(&site, index, layer, options, staging.path())?;
        tracing::info!(
            "layer {}/{count} `{}`: {} channel pages, {} pictures in {:.1} s",
            at + 1,
            layer.name,
            built.channels.len(),
            built.pictures,
            started.elapsed().as_secs_f64()
        );
        written.pages += 1 + built.channels.len();
        written.pictures += built.pictures;
        views.push(built);
    }
    let views: Vec<LayerView> = views.iter().map(BuiltLayer::view).collect();
    for view in &views {
        staging.write(&view.page(), &pages::layer(&site, view))?;
    }
    let names: Vec<String> = views.iter().map(|v| v.layer.name.clone()).collect();
    let mut matrices = vec![within_run(run, names, staging.path())];
    if let Some(dir) = &options.compare {
        let (record, rows) = compare::read(dir)?;
        matrices.push(draw_matrix(record, &rows, "comparison.png", staging.path()));
    }
    written.pictures += matrices.iter().filter(|m| m.is_ok()).count();
    staging.write("index.html", &pages::index(&site, &views, &matrices))?;
    staging.write("assets/style.css", html::STYLE)?;
    staging.write("assets/sort.js", html::SORT)?;
    staging.publish(&options.dest)?;
    Ok(written)
}

/// The linear CKA of every pair of the reported layers over the run's images (each channel's
/// mean), drawn as `similarity.png`; why not, when it cannot be (fewer than 4 ok images).
fn within_run(run: &StoredRun, layers: Vec<String>, site: &Path) -> Result<pages::Matrix, String> {
    let request = compare::Request {
        runs: vec![run.dir.clone()],
        layers: Some(layers),
        features: compare::features::Features::Mean,
        rsa: None,
        seed: 0,
    };
    let computed = compare::pass(&request, crate::shard::Shard::default(), site)
        .and_then(|(record, sums)| Ok((compare::finish(&record, &sums)?, record)));
    match computed {
        Ok((rows, record)) => draw_matrix(record, &rows, "similarity.png", site),
        Err(err) => Err(format!("{err:#}")),
    }
}

/// Draws a comparison's heat map into the site as `name`.
fn draw_matrix(
    record: compare::Record,
    rows: &[compare::Similarity],
    name: &str,
    site: &Path,
) -> Result<pages::Matrix, String> {
    let picture = compare::heatmap::heat_map(&compare::panels(rows));
    let png = plot::encode_png(&picture).map_err(|e| format!("{e:#}"))?;
    std::fs::write(site.join(name), png).map_err(|e| format!("cannot write {name}: {e}"))?;
    Ok(pages::Matrix {
        file: name.to_owned(),
        record,
        size: (picture.width(), picture.height()),
    })
}

/// The layers to report, with their positions in the run, in the run's order.
fn chosen_layers<'r>(
    run: &'r StoredRun,
    wanted: Option<&[String]>,
) -> Result<Vec<(usize, &'r LayerInfo)>> {
    let Some(wanted) = wanted else {
        return Ok(run.layers.iter().enumerate().collect());
    };
    for name in wanted {
        run.layer(name)?;
    }
    Ok(run
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| wanted.contains(&l.name))
        .collect())
}

/// A layer's numbers, examples and pictures, with its channel pages written.
struct BuiltLayer<'r> {
    index: usize,
    layer: &'r LayerInfo,
    channels: Vec<summary::ChannelSummary>,
    examples: Vec<Vec<Example>>,
    drawn: Vec<Vec<bool>>,
    source: figures::Source,
    study: pages::Study,
    pictures: usize,
}

impl BuiltLayer<'_> {
    fn view(&self) -> LayerView<'_> {
        LayerView {
            index: self.index,
            layer: self.layer,
            channels: &self.channels,
            examples: &self.examples,
            drawn: &self.drawn,
            source: self.source,
            study: &self.study,
        }
    }
}

/// Summarises a layer, draws its examples, tiles and study figures, and writes its channel
/// pages into `staging`.
fn build_layer<'r>(
    site: &Site,
    index: usize,
    layer: &'r LayerInfo,
    options: &ReportOptions,
    staging: &Path,
) -> Result<BuiltLayer<'r>> {
    let run = site.run;
    let channels = summary::summarise(run, layer, site.labels, options.top)?;
    let (source, mut examples) = figures::examples(run, layer, &channels, options.top)?;
    figures::recompute_missing(run, layer, site.images, &mut examples, &channels);
    let folder = staging.join(format!("layer-{index}"));
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let drawn = draw_examples(site, &channels, &examples, &folder)?;
    let study = study_figures(site, layer, &channels, options.channel, &folder);
    let pictures = drawn
        .iter()
        .map(|d| d.iter().filter(|x| **x).count())
        .sum::<usize>()
        + usize::from(drawn.iter().any(|d| d.first() == Some(&true)))
        + usize::from(study.one_image)
        + usize::from(study.channel.is_some());
    let built = BuiltLayer {
        index,
        layer,
        channels,
        examples,
        drawn,
        source,
        study,
        pictures,
    };
    let view = built.view();
    (0..built.channels.len())
        .into_par_iter()
        .try_for_each(|at| {
            let name = format!("channel-{}.html", built.channels[at].channel);
            write_file(&folder.join(name), &pages::channel(site, &view, at))
        })?;
    Ok(built)
}

/// Channels whose pictures are drawn together: their input images are decoded once for the
/// group, and at most this many channels' worth (x `--top`) are held at a time.
const CHANNELS_AT_ONCE: usize = 64;

/// Draws every example of every channel as `c{channel}-{rank}.jpg`, in parallel, and each
/// channel's best, shrunk, into one sheet `tiles.jpg` (one file for the layer page to load,
/// however many channels); says which were drawn.
fn draw_examples(
    site: &Site,
    channels: &[summary::ChannelSummary],
    examples: &[Vec<Example>],
    folder: &Path,
) -> Result<Vec<Vec<bool>>> {
    let mut drawn = Vec::with_capacity(channels.len());
    let mut tiles = Vec::with_capacity(channels.len());
    let shown: BTreeSet<u64> = examples.iter().flatten().map(|e| e.image_id).collect();
    let photos = Photos::read(
        site.run,
        shown.iter().filter_map(|id| site.images.get(id).copied()),
    );
    for (channels, examples) in channels
        .chunks(CHANNELS_AT_ONCE)
        .zip(examples.chunks(CHANNELS_AT_ONCE))
    {
        let inputs = input_images(site, &photos, examples);
        let group: Result<Vec<(Vec<bool>, Option<image::RgbImage>)>> = channels
            .par_iter()
            .zip(examples)
            .map(|(c, list)| {
                let mut tile = None;
                let drawn = list
                    .iter()
                    .enumerate()
                    .map(|(rank, e)| {
                        let size = figures::picture_size(e.map.as_ref());
                        let under = inputs.get(&(e.image_id, size)).and_then(Option::as_ref);
                        let Some(picture) = figures::draw(e.map.as_ref(), under) else {
                            return Ok(false);
                        };
                        figures::save(
                            &picture,
                            &folder.join(format!("c{}-{rank}.jpg", c.channel)),
                        )?;
                        if rank == 0 {
                            tile = Some(figures::tile(&picture));
                        }
                        Ok(true)
                    })
                    .collect::<Result<Vec<bool>>>()?;
                Ok((drawn, tile))
            })
            .collect();
        for (d, t) in group? {
            drawn.push(d);
            tiles.push(t);
        }
    }
    if tiles.iter().any(Option::is_some) {
        figures::save(&figures::sheet(&tiles), &folder.join("tiles.jpg"))?;
    }
    Ok(drawn)
}

/// The input images under `examples`, each decoded once (in parallel) at each size it is drawn.
fn input_images(
    site: &Site,
    photos: &Photos,
    examples: &[Vec<Example>],
) -> HashMap<(u64, (u32, u32)), Option<image::RgbImage>> {
    let wanted: BTreeSet<(u64, (u32, u32))> = examples
        .iter()
        .flatten()
        .map(|e| (e.image_id, figures::picture_size(e.map.as_ref())))
        .collect();
    wanted
        .into_par_iter()
        .map_init(Resizer::new, |resizer, (id, size)| {
            let image = site.images.get(&id).copied();
            let decoded = image.and_then(|i| photos.underlay(i, size, resizer));
            ((id, size), decoded)
        })
        .collect()
}

/// The classic study's figures of a map layer: the first image's stored maps, and one channel
/// across the first images: `chosen`, or the one with the highest mean of its per-image max
/// (its stored maps, or, when the run did not keep them, computed again).
fn study_figures(
    site: &Site,
    layer: &LayerInfo,
    channels: &[summary::ChannelSummary],
    chosen: Option<u32>,
    folder: &Path,
) -> pages::Study {
    let run = site.run;
    let mut study = pages::Study::default();
    if layer.kind != LayerKind::Maps {
        return study;
    }
    let style = Style {
        cols: 8,
        levels: None,
        shared_scale: false,
    };
    let draw = |cells: Result<Vec<crate::view::render::Cell>>, name: &str| {
        let drawn = cells.and_then(|cells| plot::write_png(&cells, style, &folder.join(name)));
        if let Err(e) = &drawn {
            tracing::warn!("{}: {name}: {e:#}", layer.name);
        }
        drawn.is_ok()
    };
    let first = site
        .images
        .values()
        .filter(|i| i.ok)
        .map(|i| i.image_id)
        .min();
    study.one_image = !layer.kept.is_empty()
        && first.is_some_and(|first| {
            let cells = plot::channels_from_run(run, &layer.name, &ImageRef::Id(first), None);
            draw(cells, "study-image.png")
        });
    let Some(pick) = study_channel(channels, chosen) else {
        return study;
    };
    let range = ImageSet::Range(0, plot::DEFAULT_CELLS as u64);
    let kept = layer.kept.contains(&pick.channel);
    let cells = match kept {
        true => plot::images_from_run(run, &layer.name, pick.channel, Some(&range)),
        false => plot::images_recomputed(run, &layer.name, pick.channel, Some(&range)),
    };
    if draw(cells, "study-channel.png") {
        study.channel = Some(pages::StudyChannel {
            recomputed: !kept,
            ..pick
        });
    }
    study
}

/// The channel of the "across images" figure, and why it was chosen.
fn study_channel(
    channels: &[summary::ChannelSummary],
    chosen: Option<u32>,
) -> Option<pages::StudyChannel> {
    if let Some(channel) = chosen.filter(|c| channels.iter().any(|s| s.channel == *c)) {
        return Some(pages::StudyChannel {
            channel,
            why: "the one asked for (<code>--channel</code>)".into(),
            recomputed: false,
        });
    }
    let best = channels
        .iter()
        .filter(|c| c.mean_max.is_finite())
        .max_by(|a, b| {
            a.mean_max
                .total_cmp(&b.mean_max)
                .then(b.channel.cmp(&a.channel))
        })?;
    let asked = match chosen {
        Some(c) => format!(" (channel {c}, asked for, is not one of this layer's)"),
        None => String::new(),
    };
    Some(pages::StudyChannel {
        channel: best.channel,
        why: format!(
            "the channel with the highest mean of its per-image max, the one that responds most \
             strongly{asked}; <code>layerwise report --channel N</code> draws another"
        ),
        recomputed: false,
    })
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The hidden folder a report is built in, beside its destination; removed unless published.
struct Staging {
    dir: PathBuf,
    published: bool,
}

impl Staging {
    fn new(dest: &Path) -> Result<Staging> {
        if dest.exists() && !is_report(dest) {
            crate::mistake!(
                "{} exists and is not a layerwise report; give another --out, or remove it",
                dest.display()
            );
        }
        let name = dest
            .file_name()
            .with_context(|| format!("{} cannot be a report folder", dest.display()))?;
        let dir = dest.with_file_name(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("assets"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Staging {
            dir,
            published: false,
        })
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn write(&self, name: &str, text: &str) -> Result<()> {
        write_file(&self.dir.join(name), text)
    }

    /// Replaces `dest` (an earlier report, or nothing) with the staged site.
    fn publish(mut self, dest: &Path) -> Result<()> {
        if dest.exists() {
            std::fs::remove_dir_all(dest)
                .with_context(|| format!("cannot replace {}", dest.display()))?;
        }
        std::fs::rename(&self.dir, dest)
            .with_context(|| format!("cannot move the report to {}", dest.display()))?;
        self.published = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether `dir` holds a report that layerwise wrote (so it may be replaced).
fn is_report(dir: &Path) -> bool {
    dir.join("index.html").is_file() && dir.join("assets/sort.js").is_file()
}
