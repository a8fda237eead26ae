//! The features of a run's layers per image, read from what the run stored (no model pass),
//! one part file at a time: a map layer's per-channel `mean` or `max` from `stats`, a vector
//! layer's `vectors`, a token layer's class token from `positions`.

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, UInt32Type, UInt64Type};
use arrow_array::{Array, FixedSizeListArray, RecordBatch};
use arrow_schema::DataType;

use crate::config::Positions;
use crate::output::tables::Table;
use crate::reduce::LayerKind;
use crate::view::read::{column, StoredRun};

/// What stands for a map layer's output on an image (a vector layer is always its vector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Features {
    /// Each channel's mean over its map (global average pooling; a token layer's patch mean):
    /// the `stats` table's `mean`.
    Mean,
    /// Each channel's maximum (global max pooling): the `stats` table's `max`.
    Max,
    /// A token layer's class token (position 0, a prefix token) from the `positions` table.
    Prefix,
}

impl Features {
    /// Its name on the command line and in the `features` column.
    pub fn name(self) -> &'static str {
        match self {
            Features::Mean => "mean",
            Features::Max => "max",
            Features::Prefix => "prefix",
        }
    }

    /// Parses `mean`, `max` or `prefix`.
    pub fn parse(text: &str) -> Result<Features> {
        match text {
            "mean" => Ok(Features::Mean),
            "max" => Ok(Features::Max),
            "prefix" => Ok(Features::Prefix),
            _ => crate::mistake!("features `{text}` is not one of mean, max, prefix"),
        }
    }

    /// How it reads to a person: "each channel's mean".
    pub fn describe(self) -> &'static str {
        match self {
            Features::Mean => "each channel's mean",
            Features::Max => "each channel's max",
            Features::Prefix => "the class token",
        }
    }
}

/// Where one layer's features are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A column of `stats`, a value per channel.
    Stats(&'static str),
    /// The `vectors` table.
    Vector,
    /// The class token's row of `positions`.
    Prefix,
}

/// A chosen layer: its name, its features' width and where they are.
#[derive(Debug, Clone)]
struct Chosen {
    name: String,
    width: usize,
    origin: Origin,
}

/// The layers of a run chosen for comparing, their features side by side in this order.
#[derive(Debug)]
pub struct RunFeatures<'r> {
    run: &'r StoredRun,
    layers: Vec<Chosen>,
    offsets: Vec<usize>,
}

/// The features of the ok images of one part: a row per image, in `ids` order.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// The images, in the part's order.
    pub ids: Vec<u64>,
    /// Their features, row-major, the layers side by side.
    pub rows: Vec<f32>,
    /// The width of a row.
    pub width: usize,
    /// `(id, row)` sorted by id, to find an image's row.
    index: Vec<(u64, usize)>,
}

impl Block {
    /// The row of an image, if it is one of the block's.
    fn position(&self, id: u64) -> Option<usize> {
        (self.index.binary_search_by_key(&id, |e| e.0).ok()).map(|i| self.index[i].1)
    }

    /// The features of the `i`-th image.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.width..(i + 1) * self.width]
    }

    /// The features of an image, if it is one of the block's.
    pub fn features(&self, id: u64) -> Option<&[f32]> {
        self.position(id).map(|i| self.row(i))
    }
}

impl<'r> RunFeatures<'r> {
    /// The run's `layers` (default: every layer `features` applies to, in run order: map layers
    /// and vectors; with `prefix`, token layers with a class token and vectors).
    pub fn new(
        run: &'r StoredRun,
        layers: Option<&[&str]>,
        features: Features,
    ) -> Result<RunFeatures<'r>> {
        let names: Vec<&str> = match layers {
            Some(names) => names.to_vec(),
            None => (run.layers.iter())
                .filter(|l| features != Features::Prefix || stores_class_token(run, l))
                .map(|l| l.name.as_str())
                .collect(),
        };
        let tokens = || run.layers.iter().any(|l| stores_class_token(run, l));
        if layers.is_none() && features == Features::Prefix && !tokens() {
            crate::mistake!(
                "no layer of the run stores a class token (a transformer's token layer with \
                 positions \"prefix\" or \"all\"): use --features mean"
            );
        }
        let mut chosen = Vec::with_capacity(names.len());
        let mut offsets = vec![0];
        for name in names {
            let layer = run.layer(name)?;
            let origin = match (layer.kind, features) {
                (LayerKind::Vector, _) => Origin::Vector,
                (LayerKind::Maps, Features::Prefix) if stores_class_token(run, layer) => {
                    Origin::Prefix
                }
                (LayerKind::Maps, Features::Prefix) => crate::mistake!(
                    "layer `{name}` has no class token in the positions table: --features prefix \
                     takes a transformer's token layers whose prefix positions are stored; use \
                     --features mean"
                ),
                (LayerKind::Maps, kind) => Origin::Stats(kind.name()),
            };
            chosen.push(Chosen {
                name: layer.name.clone(),
                width: layer.channels,
                origin,
            });
            offsets.push(offsets.last().copied().unwrap_or(0) + layer.channels);
        }
        Ok(RunFeatures {
            run,
            layers: chosen,
            offsets,
        })
    }

    /// The chosen layers' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.name.clone()).collect()
    }

    /// The chosen layers' widths, in order.
    pub fn widths(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.width).collect()
    }

    /// The width of an image's features, all layers side by side.
    pub fn width(&self) -> usize {
        self.offsets[self.layers.len()]
    }

    /// The features of the ok images of one part (`name` as in
    /// [`StoredRun::part_names`]), in the order of `ids`; an error when a table lacks some.
    pub fn part(&self, name: &str, ids: &[u64]) -> Result<Block> {
        let mut fill = Fill::new(ids, self);
        let wanted = |origin: Origin| self.layers.iter().any(|l| l.origin == origin);
        for column in ["mean", "max"] {
            if wanted(Origin::Stats(column)) {
                let columns = ["image_id", "layer", "channel", column];
                (self.run).scan_part(Table::Stats, name, &columns, None, |b| {
                    fill.stats(&b, column)
                })?;
            }
        }
        if wanted(Origin::Vector) {
            let columns = ["image_id", "layer", "values"];
            (self.run).scan_part(Table::Vectors, name, &columns, None, |b| fill.vectors(&b))?;
        }
        if wanted(Origin::Prefix) {
            let columns = ["image_id", "layer", "position", "y", "values"];
            (self.run).scan_part(Table::Positions, name, &columns, None, |b| fill.prefix(&b))?;
        }
        fill.finish(name)
    }
}

/// Whether a layer is a transformer's tokens with a class token before the patches, whose
/// prefix positions the run stored (its `positions`: the default, `prefix` or `all`).
fn stores_class_token(run: &StoredRun, layer: &crate::output::provenance::LayerInfo) -> bool {
    let tokens = (layer.layout)
        .and_then(|l| l.tokens)
        .is_some_and(|t| t.prefix > 0);
    let entry = run
        .config
        .layers
        .iter()
        .find(|c| c.tensor == layer.selector);
    let positions = entry.and_then(|c| c.positions);
    layer.kind == LayerKind::Maps
        && tokens
        && matches!(positions, None | Some(Positions::Prefix | Positions::All))
}

/// A part's rows of features being filled from its tables' rows.
struct Fill<'a> {
    layers: &'a [Chosen],
    offsets: &'a [usize],
    block: Block,
    /// Values set per image and layer, to find missing ones.
    counts: Vec<usize>,
    /// A value out of place, first found.
    problem: Option<String>,
}

impl<'a> Fill<'a> {
    fn new(ids: &[u64], features: &'a RunFeatures) -> Fill<'a> {
        let mut index: Vec<(u64, usize)> = ids.iter().copied().zip(0..).collect();
        index.sort_unstable();
        let width = features.width();
        Fill {
            layers: &features.layers,
            offsets: &features.offsets,
            block: Block {
                ids: ids.to_vec(),
                rows: vec![0.0; ids.len() * width],
                width,
                index,
            },
            counts: vec![0; ids.len() * features.layers.len()],
            problem: None,
        }
    }

    /// The row of an image, if it is one of the part's ok images.
    fn row_of(&self, id: u64) -> Option<usize> {
        self.block.position(id)
    }

    /// The chosen layer of a name and origin, looked up once per run of rows of one layer.
    fn layer_of(&self, name: &str, origin: Origin) -> Option<usize> {
        (self.layers.iter()).position(|l| l.name == name && l.origin == origin)
    }

    /// Writes `values` at an image's row, in a layer's place from `start`.
    fn put(&mut self, row: usize, layer: usize, start: usize, values: impl Iterator<Item = f32>) {
        let width = self.layers[layer].width;
        let at = row * self.block.width + self.offsets[layer] + start;
        let mut n = 0;
        for (cell, v) in self.block.rows[at..].iter_mut().zip(values) {
            if start + n >= width {
                break;
            }
            *cell = v;
            n += 1;
        }
        self.counts[row * self.layers.len() + layer] += n;
    }

    fn stats(&mut self, batch: &RecordBatch, column_name: &'static str) {
        let ids = column(batch, "image_id").as_primitive::<UInt64Type>();
        let names = column(batch, "layer").as_string::<i32>();
        let channels = column(batch, "channel").as_primitive::<UInt32Type>();
        let values = column(batch, column_name).as_primitive::<Float32Type>();
        let mut last: Option<(&str, Option<usize>)> = None;
        for i in 0..batch.num_rows() {
            let name = names.value(i);
            let layer = match last {
                Some((seen, layer)) if seen == name => layer,
                _ => self.layer_of(name, Origin::Stats(column_name)),
            };
            last = Some((name, layer));
            let (Some(layer), Some(row)) = (layer, self.row_of(ids.value(i))) else {
                continue;
            };
            let channel = channels.value(i) as usize;
            if channel >= self.layers[layer].width {
                self.problem.get_or_insert(format!(
                    "its stats hold channel {channel} of layer `{name}`, which has {}",
                    self.layers[layer].width
                ));
                continue;
            }
            self.put(row, layer, channel, std::iter::once(values.value(i)));
        }
    }

    fn vectors(&mut self, batch: &RecordBatch) {
        let ids = column(batch, "image_id").as_primitive::<UInt64Type>();
        let names = column(batch, "layer").as_string::<i32>();
        let lists = column(batch, "values").as_list::<i32>();
        for i in 0..batch.num_rows() {
            let layer = self.layer_of(names.value(i), Origin::Vector);
            let (Some(layer), Some(row)) = (layer, self.row_of(ids.value(i))) else {
                continue;
            };
            let list = lists.value(i);
            let values = list.as_primitive::<Float32Type>();
            self.whole(row, layer, values.len(), values.values().iter().copied());
        }
    }

    fn prefix(&mut self, batch: &RecordBatch) {
        let ids = column(batch, "image_id").as_primitive::<UInt64Type>();
        let names = column(batch, "layer").as_string::<i32>();
        let positions = column(batch, "position").as_primitive::<UInt32Type>();
        let ys = column(batch, "y");
        let lists: &FixedSizeListArray = column(batch, "values").as_fixed_size_list();
        for i in 0..batch.num_rows() {
            if positions.value(i) != 0 || ys.is_valid(i) {
                continue;
            }
            let layer = self.layer_of(names.value(i), Origin::Prefix);
            let (Some(layer), Some(row)) = (layer, self.row_of(ids.value(i))) else {
                continue;
            };
            let list = lists.value(i);
            match list.data_type() {
                DataType::Float16 => {
                    let values = list.as_primitive::<Float16Type>().values();
                    self.whole(row, layer, values.len(), values.iter().map(|v| v.to_f32()));
                }
                _ => {
                    let values = list.as_primitive::<Float32Type>().values();
                    self.whole(row, layer, values.len(), values.iter().copied());
                }
            }
        }
    }

    /// A whole layer's features of an image at once, which must be as wide as the layer.
    fn whole(&mut self, row: usize, layer: usize, len: usize, values: impl Iterator<Item = f32>) {
        if len != self.layers[layer].width {
            self.problem.get_or_insert(format!(
                "layer `{}` has {} values for an image, not its {}",
                self.layers[layer].name, len, self.layers[layer].width
            ));
            return;
        }
        self.put(row, layer, 0, values);
    }

    /// The block, or what is missing or out of place.
    fn finish(self, part: &str) -> Result<Block> {
        if let Some(problem) = self.problem {
            crate::mistake!("part {part} of the run cannot be compared: {problem}");
        }
        let layers = self.layers.len();
        for (i, count) in self.counts.iter().enumerate() {
            let layer = &self.layers[i % layers];
            if *count != layer.width {
                let table = match layer.origin {
                    Origin::Stats(_) => "stats",
                    Origin::Vector => "vectors",
                    Origin::Prefix => "positions (its class token)",
                };
                crate::mistake!(
                    "part {part} of the run has {count} of the {} features of layer `{}` for \
                     image {} in its {table} table: the table is incomplete or written twice",
                    layer.width,
                    layer.name,
                    self.block.ids[i / layers]
                );
            }
        }
        Ok(self.block)
    }
}
