//! Reduce: one layer's output tensor becomes per-channel statistics, kept maps, or vectors;
//! [`top`] keeps the best maps of each channel.

pub mod layout;
pub mod positions;
pub mod top;

use ndarray::{ArrayViewD, Axis};
use rayon::prelude::*;

use crate::config::{Keep, MapDtype, Positions, TopBy};
use crate::error::PlanError;
use crate::model::reduction::{GraphMaps, LayerGraph, LayerOutputs};
use crate::model::statistics::{HostPass, MapStats, Stat};
use crate::output::tables::{Formats, MapKey, PositionKey, Rows};
use crate::plan::{LayerSpec, ReduceMode};
use crate::reduce::layout::Layout;
use crate::reduce::positions::Places;
use crate::reduce::top::LayerTop;

/// How a layer's tensor is cut up, learned from its real shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerShape {
    /// A rank-2 tensor `[N, D]`: one vector per image.
    Vector {
        /// Length of the vector.
        len: usize,
    },
    /// A tensor of rank 3 or more: one map per channel.
    Maps {
        /// Number of channels.
        channels: usize,
        /// Map height (the first axis that is neither batch nor channel).
        height: usize,
        /// Map width (the product of the axes after it; 1 for a rank-3 tensor).
        width: usize,
    },
}

impl LayerShape {
    /// What kind of layer it is.
    pub fn kind(&self) -> LayerKind {
        match self {
            LayerShape::Vector { .. } => LayerKind::Vector,
            LayerShape::Maps { .. } => LayerKind::Maps,
        }
    }
}

/// What a layer's rows are: statistics and maps per channel, or one vector per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// A tensor of rank 3 or more: `stats` rows per channel, kept maps in `maps` and `top`.
    Maps,
    /// A rank-2 tensor: one `vectors` row per image.
    Vector,
}

impl LayerKind {
    /// The word `run.json` and the report use: `maps` or `vector`.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Maps => "maps",
            LayerKind::Vector => "vector",
        }
    }
}

/// Reduces one layer's tensor into rows.
#[derive(Debug, Clone)]
pub struct LayerReducer {
    /// The layer's name in the tables.
    pub name: String,
    /// Index of the layer's tensor among the exposed ones.
    pub tensor_index: usize,
    /// The layer's shape.
    pub shape: LayerShape,
    tensor: String,
    /// How its tensor is cut into maps (for a maps layer).
    pub layout: Layout,
    /// The batch axis of its tensor in the model: 0, or 1 for a sequence-first one.
    pub batch_axis: usize,
    /// The positions it writes to `positions` (none for most CNN layers).
    pub places: Places,
    /// Element type of its `positions` vectors.
    pub positions_dtype: MapDtype,
    keep: Vec<u32>,
    top: Option<(usize, TopBy)>,
    pool: usize,
    rank: usize,
    /// Where the session's graph reduced the layer, when it did (`reduce = "graph"`).
    graph: Option<GraphOutputs>,
}

/// The indices, among the session's outputs, of a layer reduced in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GraphOutputs {
    /// Its `[N, C, 6]` statistics.
    stats: usize,
    /// Its stored maps, `[N, K, h, w]`: every channel for a layer with `top_k`, else the kept.
    maps: Option<usize>,
    /// Its prefix tokens, `[N, P, dim]`, for `positions = "prefix"`.
    prefix: Option<usize>,
    /// The vectors at its sampled positions, `[N, n, dim]`, for `positions = N`.
    sampled: Option<usize>,
}

/// Which row of a tensor, its places across it (channels last), holds a position's vector.
#[derive(Debug, Clone, Copy)]
enum RowOf {
    /// The position's own index (the whole tensor, or its prefix tokens).
    Position,
    /// The order in which the position was drawn (the graph's gathered samples).
    Draw,
}

/// Where the stored maps of one batch come from.
enum MapSource<'a> {
    /// The layer's whole tensor, `[N, C, map...]` once permuted: maps are pooled here.
    Tensor(ArrayViewD<'a, f32>),
    /// Maps the graph gathered and pooled, `[N, K, h, w]`; `all` when K is every channel.
    Graph {
        maps: ArrayViewD<'a, f32>,
        all: bool,
    },
}

impl LayerReducer {
    /// Checks `layer` against the per-image shape its tensor has (batch axis removed), found
    /// on axis `batch_axis` by the probe run.
    pub fn new(
        layer: &LayerSpec,
        tensor_index: usize,
        image_shape: &[usize],
        batch_axis: usize,
    ) -> Result<LayerReducer, PlanError> {
        let key = |field: &str| format!("layers[{}].{field}", layer.position);
        let rank = image_shape.len() + 1;
        if let Some(given) = layer.batch_axis.filter(|&given| given != batch_axis) {
            let mut shape: Vec<String> = image_shape.iter().map(ToString::to_string).collect();
            shape.insert(batch_axis, "N".into());
            return Err(PlanError::invalid(
                key("batch_axis"),
                format!(
                    "is {given}, but tensor `{}` has its batch on axis {batch_axis}: shape [{}]; \
                     remove `batch_axis`",
                    layer.tensor,
                    shape.join(", ")
                ),
            ));
        }
        let layout = Layout::of(layer, image_shape)?;
        let shape = if rank == 2 {
            LayerShape::Vector {
                len: image_shape[0],
            }
        } else {
            maps_shape(layer, &layout, image_shape)?
        };
        let places = places(layer, &layout, &shape)?;
        let keep = match (&layer.keep, &shape) {
            (Keep::All, LayerShape::Maps { channels, .. }) => (0..*channels as u32).collect(),
            (Keep::Channels(list), LayerShape::Maps { channels, .. }) => {
                if let Some(c) = list.iter().find(|c| **c as usize >= *channels) {
                    return Err(PlanError::invalid(
                        key("keep"),
                        format!(
                            "lists channel {c}, but `{}` has {channels} channels (0 to {})",
                            layer.tensor,
                            channels - 1
                        ),
                    ));
                }
                list.clone()
            }
            (_, LayerShape::Vector { .. }) => Vec::new(),
        };
        if layer.top.is_some() && matches!(shape, LayerShape::Vector { .. }) {
            return Err(PlanError::invalid(
                key("top_k"),
                format!(
                    "needs maps, but `{}` is a vector per image (rank 2); remove `top_k`",
                    layer.tensor
                ),
            ));
        }
        Ok(LayerReducer {
            name: layer.name.clone(),
            tensor_index,
            shape,
            tensor: layer.tensor.clone(),
            layout,
            batch_axis,
            places,
            positions_dtype: layer.positions_dtype,
            keep,
            top: layer.top,
            pool: layer.pool,
            rank,
            graph: None,
        })
    }

    /// Channels, height and width of a maps layer (none for a vector layer).
    fn maps_shape(&self) -> Option<(usize, usize, usize)> {
        match self.shape {
            LayerShape::Maps {
                channels,
                height,
                width,
            } => Some((channels, height, width)),
            LayerShape::Vector { .. } => None,
        }
    }

    /// What the session's graph is to compute for this layer (none for a vector layer, or one
    /// that writes every position: they are taken from the whole tensor).
    pub fn graph(&self) -> Option<LayerGraph<'_>> {
        let (gathered_prefix, sampled) = match self.places.positions {
            Positions::None => (0, 0),
            Positions::Prefix => (self.layout.tokens.map_or(0, |t| t.prefix), 0),
            Positions::Sample(n) => (0, (n as usize).min(self.places.cells)),
            Positions::All => return None,
        };
        let (channels, height, width) = self.maps_shape()?;
        let maps = match (self.top, self.keep.as_slice()) {
            (Some(_), _) => GraphMaps::All,
            (None, []) => GraphMaps::None,
            (None, keep) => GraphMaps::Channels(keep),
        };
        Some(LayerGraph {
            tensor: &self.tensor,
            rank: self.rank,
            batch_axis: self.batch_axis,
            channel_axis: self.layout.channel_axis,
            prefix: self.layout.tokens.map_or(0, |t| t.prefix),
            channels,
            height,
            width,
            maps,
            pool: self.pool,
            gathered_prefix,
            sampled,
        })
    }

    /// The indices of the added graph input of this layer for a batch of images `ids`: each
    /// image's sampled positions on the grid, `[ids.len(), n]` row-major (none for a layer
    /// that does not gather sampled positions in the graph).
    pub fn graph_indices(&self, ids: &[u64]) -> Option<Vec<i64>> {
        self.graph?.sampled?;
        let Positions::Sample(n) = self.places.positions else {
            return None;
        };
        let cells = self.places.cells;
        Some(
            ids.iter()
                .flat_map(|&id| positions::sample(cells, n as usize, id, &self.name))
                .map(i64::from)
                .collect(),
        )
    }

    /// Takes this layer's rows from the graph's reductions: `outputs` are their names, and
    /// `index` gives each output's position among the session's outputs.
    pub fn reduced_in_graph(&mut self, outputs: &LayerOutputs, index: impl Fn(&str) -> usize) {
        self.graph = Some(GraphOutputs {
            stats: index(&outputs.stats),
            maps: outputs.maps.as_deref().map(&index),
            prefix: outputs.prefix.as_deref().map(&index),
            sampled: outputs.sampled.as_ref().map(|s| index(&s.output)),
        });
    }

    /// The per-image shape each of this layer's graph outputs must have: statistics, then
    /// stored maps (empty before [`LayerReducer::reduced_in_graph`]).
    pub fn graph_shapes(&self) -> Vec<(usize, Vec<usize>)> {
        let (Some(graph), Some((channels, height, width))) = (self.graph, self.maps_shape()) else {
            return Vec::new();
        };
        let mut shapes = vec![(graph.stats, vec![channels, Stat::COUNT])];
        if let Some(maps) = graph.maps {
            let stored = if self.top.is_some() {
                channels
            } else {
                self.keep.len()
            };
            let pooled = vec![
                stored,
                height.div_ceil(self.pool),
                width.div_ceil(self.pool),
            ];
            shapes.push((maps, pooled));
        }
        if let (Some(prefix), Some(tokens)) = (graph.prefix, self.layout.tokens) {
            shapes.push((prefix, vec![tokens.prefix, channels]));
        }
        if let (Some(sampled), Some(layer)) = (graph.sampled, self.graph()) {
            shapes.push((sampled, vec![layer.sampled, channels]));
        }
        shapes
    }

    /// A fresh tracker of this layer's best maps per channel, when it has `top_k`.
    pub fn top_tracker(&self) -> Option<LayerTop> {
        match (self.top, &self.shape) {
            (
                Some((k, by)),
                LayerShape::Maps {
                    channels,
                    height,
                    width,
                },
            ) => Some(LayerTop::new(
                k,
                by,
                *channels,
                height.div_ceil(self.pool),
                width.div_ceil(self.pool),
            )),
            _ => None,
        }
    }

    /// Whether the session's graph reduces this layer.
    pub fn in_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// Where its statistics and maps are computed.
    pub fn reduced_in(&self) -> ReduceMode {
        if self.in_graph() {
            ReduceMode::Graph
        } else {
            ReduceMode::Host
        }
    }

    /// The layer's tensor.
    pub fn tensor(&self) -> &str {
        &self.tensor
    }

    /// The channels whose maps are stored.
    pub fn kept(&self) -> &[u32] {
        &self.keep
    }

    /// The statistics of every map of the layer in `outputs` (the session's), image-major:
    /// read from the graph's reductions, or computed in parallel from the tensor (empty for a
    /// vector layer).
    pub fn stats(&self, outputs: &[ArrayViewD<'_, f32>]) -> Vec<MapStats> {
        let Some((channels, height, width)) = self.maps_shape() else {
            return Vec::new();
        };
        if let Some(graph) = self.graph {
            return graph_stats(&outputs[graph.stats], height * width);
        }
        let tensor = &outputs[self.tensor_index];
        let maps = self.maps(tensor);
        (0..tensor.len_of(Axis(0)) * channels)
            .into_par_iter()
            .map_init(Vec::new, |scratch, k| {
                let map = maps
                    .index_axis(Axis(0), k / channels)
                    .index_axis_move(Axis(0), k % channels);
                map_stats(contiguous(map, scratch), width)
            })
            .collect()
    }

    /// Appends the rows of image `i` of the layer in `outputs` (whose statistics are `stats`)
    /// to `rows`, and offers its maps to the layer's `top` tracker.
    pub fn push_image(
        &self,
        outputs: &[ArrayViewD<'_, f32>],
        i: usize,
        image_id: u64,
        stats: &[MapStats],
        rows: &mut Rows,
        top: Option<&mut LayerTop>,
    ) {
        let LayerShape::Maps {
            channels,
            height,
            width,
        } = self.shape
        else {
            let image = outputs[self.tensor_index].index_axis(Axis(0), i);
            rows.vectors
                .push(image_id, &self.name, image.iter().copied());
            return;
        };
        let key = |channel: usize, (height, width): (usize, usize)| MapKey {
            image_id,
            layer: &self.name,
            channel: channel as u32,
            height: height as u32,
            width: width as u32,
        };
        let image_stats = &stats[i * channels..(i + 1) * channels];
        for (c, s) in image_stats.iter().enumerate() {
            rows.stats.push(key(c, (height, width)), s);
        }
        if self.writes_positions() {
            let gathered = self.graph.map_or((None, None), |g| (g.prefix, g.sampled));
            let (tensor, channel_axis, row_of) = match gathered {
                // The graph's `[N, P, dim]`: position p is its row p.
                (Some(index), _) => (&outputs[index], 2, RowOf::Position),
                // The graph's `[N, n, dim]`: the k-th position drawn is its row k.
                (_, Some(index)) => (&outputs[index], 2, RowOf::Draw),
                _ => (
                    &outputs[self.tensor_index],
                    self.layout.channel_axis,
                    RowOf::Position,
                ),
            };
            self.push_positions((tensor, channel_axis, row_of), i, image_id, rows);
        }
        let source = match self.graph {
            None => MapSource::Tensor(self.maps(&outputs[self.tensor_index])),
            Some(GraphOutputs { maps: None, .. }) => return,
            Some(GraphOutputs {
                maps: Some(index), ..
            }) => MapSource::Graph {
                maps: outputs[index].clone(),
                all: self.top.is_some(),
            },
        };
        let (mut scratch, mut pooled) = (Vec::new(), Vec::new());
        let size = (height, width);
        if let Some(top) = top {
            for (c, s) in image_stats.iter().enumerate() {
                top.offer(c, image_id, s, || {
                    self.stored(&source, (i, c, c), size, &mut scratch, &mut pooled)
                        .0
                        .to_vec()
                });
            }
        }
        for (slot, &c) in self.keep.iter().enumerate() {
            let at = (i, c as usize, slot);
            let (values, size) = self.stored(&source, at, size, &mut scratch, &mut pooled);
            rows.maps.push(key(c as usize, size), values);
        }
    }

    /// The map of image `i`, channel `c` (the `slot`-th kept one) as it is stored, with its
    /// height and width: contiguous, and average-pooled when the layer pools.
    fn stored<'a>(
        &self,
        source: &'a MapSource<'_>,
        (i, c, slot): (usize, usize, usize),
        (height, width): (usize, usize),
        scratch: &'a mut Vec<f32>,
        pooled: &'a mut Vec<f32>,
    ) -> (&'a [f32], (usize, usize)) {
        let maps = match source {
            MapSource::Tensor(maps) => maps,
            MapSource::Graph { maps, all } => {
                let index = if *all { c } else { slot };
                let map = maps.index_axis(Axis(0), i).index_axis_move(Axis(0), index);
                let size = (map.shape()[0], map.shape()[1]);
                return (contiguous(map, scratch), size);
            }
        };
        let map = maps.index_axis(Axis(0), i).index_axis_move(Axis(0), c);
        let values = contiguous(map, scratch);
        if self.pool == 1 {
            return (values, (height, width));
        }
        let size = average_pool(values, height, width, self.pool, pooled);
        (pooled, size)
    }

    /// Whether the layer writes rows to `positions`.
    pub fn writes_positions(&self) -> bool {
        self.places.positions != Positions::None
    }

    /// Appends image `i`'s `positions` rows from `tensor`, whose channels are on
    /// `channel_axis`: at each of its places, the vector across channels, found at the row
    /// `row_of` says.
    fn push_positions(
        &self,
        (tensor, channel_axis, row_of): (&ArrayViewD<'_, f32>, usize, RowOf),
        i: usize,
        image_id: u64,
        rows: &mut Rows,
    ) {
        let image = tensor.index_axis(Axis(0), i);
        let channel = channel_axis - 1;
        let mut axes: Vec<usize> = (0..image.ndim()).filter(|&a| a != channel).collect();
        axes.push(channel);
        let channel_last = image.permuted_axes(axes);
        let channels = channel_last.shape()[channel_last.ndim() - 1];
        let places = channel_last
            .to_shape((
                (channel_last.len() / channels, channels),
                ndarray::Order::RowMajor,
            ))
            .expect("the channel-last view holds whole rows");
        let mut scratch = Vec::new();
        for (k, position) in self.places.of(image_id, &self.name).into_iter().enumerate() {
            let row = places.row(match row_of {
                RowOf::Position => position as usize,
                RowOf::Draw => k,
            });
            let values = match row.as_slice() {
                Some(values) => values,
                None => {
                    scratch.clear();
                    scratch.extend(row.iter());
                    &scratch
                }
            };
            let key = PositionKey {
                image_id,
                layer: &self.name,
                position,
                yx: self.places.yx(position),
            };
            rows.positions.push(key, values);
        }
    }

    /// The tensor with the channel axis moved next to the batch axis: `[N, C, map...]`; a
    /// token grid's prefix tokens are left out.
    fn maps<'a>(&self, tensor: &ArrayViewD<'a, f32>) -> ArrayViewD<'a, f32> {
        let channel_axis = self.layout.channel_axis;
        let mut axes = vec![0, channel_axis];
        axes.extend((1..tensor.ndim()).filter(|a| *a != channel_axis));
        let mut view = tensor.clone();
        if let Some(tokens) = self.layout.tokens {
            view.slice_axis_inplace(Axis(1), (tokens.prefix..).into());
        }
        view.permuted_axes(axes)
    }
}

/// The places a layer writes to `positions`: as configured, or by default a transformer's
/// prefix tokens (none for other layers); a choice the tensor cannot give is a config error.
fn places(layer: &LayerSpec, layout: &Layout, shape: &LayerShape) -> Result<Places, PlanError> {
    let key = format!("layers[{}].positions", layer.position);
    let prefix = layout.tokens.map_or(0, |t| t.prefix);
    let positions = layer.positions.unwrap_or(match prefix {
        0 => Positions::None,
        _ => Positions::Prefix,
    });
    let LayerShape::Maps { height, width, .. } = *shape else {
        return match positions {
            Positions::None => Ok(Places {
                positions,
                tokens: None,
                width: 1,
                cells: 0,
            }),
            _ => Err(PlanError::invalid(
                key,
                format!(
                    "applies to maps and tokens, but `{}` is one vector per image (rank 2), \
                     which the `vectors` table holds; remove `positions`",
                    layer.tensor
                ),
            )),
        };
    };
    let cells = height * width;
    match positions {
        Positions::Prefix if prefix == 0 => Err(PlanError::invalid(
            key,
            format!(
                "is \"prefix\", but `{}` has no prefix tokens ({}); write \"all\" or a number \
                 of positions per image",
                layer.tensor,
                layout.describe_tokens()
            ),
        )),
        Positions::Sample(n) if n as usize > cells => Err(PlanError::invalid(
            key,
            format!(
                "asks for {n} positions per image, but `{}` has {cells} ({height} x {width}); \
                 write \"all\", or at most {cells}",
                layer.tensor
            ),
        )),
        _ => Ok(Places {
            positions,
            tokens: layout.tokens,
            width,
            cells,
        }),
    }
}

/// The channels and map size of a tensor of rank 3 or more of per-image shape `shape` laid out
/// as `layout`.
fn maps_shape(
    layer: &LayerSpec,
    layout: &Layout,
    shape: &[usize],
) -> Result<LayerShape, PlanError> {
    let rank = shape.len() + 1;
    if layout.channel_axis >= rank {
        return Err(PlanError::invalid(
            format!("layers[{}].channel_axis", layer.position),
            format!(
                "is {}, but tensor `{}` has rank {rank} (shape [N, {}])",
                layout.channel_axis,
                layer.tensor,
                dims(shape)
            ),
        ));
    }
    let mut map = shape.to_vec();
    let channels = map.remove(layout.channel_axis - 1);
    let [height, width] = match layout.tokens {
        Some(tokens) => tokens.grid,
        None => [map[0], map[1..].iter().product()],
    };
    Ok(LayerShape::Maps {
        channels,
        height,
        width,
    })
}

/// Averages `map` (`height` x `width`, row-major) over `k` x `k` blocks into `out`; a block
/// cut by the edge averages the values it holds. Returns the pooled height and width.
pub fn average_pool(
    map: &[f32],
    height: usize,
    width: usize,
    k: usize,
    out: &mut Vec<f32>,
) -> (usize, usize) {
    let (ph, pw) = (height.div_ceil(k), width.div_ceil(k));
    out.clear();
    out.resize(ph * pw, 0.0);
    for (y, row) in map.chunks_exact(width).enumerate() {
        let sums = &mut out[(y / k) * pw..(y / k + 1) * pw];
        for (x, v) in row.iter().enumerate() {
            sums[x / k] += v;
        }
    }
    for py in 0..ph {
        let rows = (height - py * k).min(k);
        for px in 0..pw {
            let cols = (width - px * k).min(k);
            out[py * pw + px] /= (rows * cols) as f32;
        }
    }
    (ph, pw)
}

/// The tables' list formats for these reducers: maps as `map_dtype`, and `positions` vectors
/// of the channels and element type that every layer with positions shares (a run's
/// `positions` files have one `fixed_size_list` type); layers that differ are a config error.
pub fn formats(map_dtype: MapDtype, reducers: &[LayerReducer]) -> Result<Formats, PlanError> {
    let mut with = reducers.iter().filter(|r| r.writes_positions());
    let Some(first) = with.next() else {
        return Ok(Formats {
            map_dtype,
            ..Formats::default()
        });
    };
    let dim = |r: &LayerReducer| match r.shape {
        LayerShape::Maps { channels, .. } => channels,
        LayerShape::Vector { len } => len,
    };
    if let Some(other) =
        with.find(|r| dim(r) != dim(first) || r.positions_dtype != first.positions_dtype)
    {
        return Err(PlanError::invalid(
            "layers",
            format!(
                "write positions of {} {:?} values (`{}`) and of {} {:?} values (`{}`), but \
                 the `positions` table holds vectors of one length and type; give the layers \
                 of another width their own run, or set `positions = \"none\"` on them",
                dim(first),
                first.positions_dtype,
                first.name,
                dim(other),
                other.positions_dtype,
                other.name
            ),
        ));
    }
    Ok(Formats {
        map_dtype,
        positions_dtype: first.positions_dtype,
        positions_dim: dim(first),
    })
}

/// Reduces one batch: `tensors` holds the exposed tensors (one entry per image of
/// `image_ids`); rows are appended ordered by image, then layer, then channel. `tops` holds
/// each reducer's `top` tracker, if any.
pub fn reduce_batch(
    reducers: &[LayerReducer],
    tensors: &[ArrayViewD<'_, f32>],
    image_ids: &[u64],
    rows: &mut Rows,
    tops: &mut [Option<LayerTop>],
) {
    let stats: Vec<Vec<MapStats>> = reducers.iter().map(|r| r.stats(tensors)).collect();
    for (i, id) in image_ids.iter().enumerate() {
        for ((r, s), top) in reducers.iter().zip(&stats).zip(tops.iter_mut()) {
            r.push_image(tensors, i, *id, s, rows, top.as_mut());
        }
    }
}

/// The statistics of a batch from the graph's `[N, C, Stat::COUNT]` reductions of maps of
/// `values` values.
fn graph_stats(view: &ArrayViewD<'_, f32>, values: usize) -> Vec<MapStats> {
    let mut scratch = Vec::new();
    contiguous(view.clone(), &mut scratch)
        .chunks_exact(Stat::COUNT)
        .map(|s| MapStats::from_graph(s, values))
        .collect()
}

/// `2, 3, 4`: a shape for a message.
fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The map's values in row-major order: borrowed when the view is contiguous, else copied.
fn contiguous<'a>(map: ArrayViewD<'a, f32>, scratch: &'a mut Vec<f32>) -> &'a [f32] {
    if let Some(values) = map.to_slice() {
        return values;
    }
    scratch.clear();
    // Strided maps (a channel of a transformer's tokens, of an NHWC tensor) copy several times
    // faster through a static dimension than through `IxDyn` iteration.
    match map.ndim() {
        1 => scratch.extend(
            map.into_dimensionality::<ndarray::Ix1>()
                .expect("rank 1")
                .iter(),
        ),
        2 => scratch.extend(
            map.into_dimensionality::<ndarray::Ix2>()
                .expect("rank 2")
                .iter(),
        ),
        _ => scratch.extend(map.iter()),
    }
    scratch
}

/// Lanes of the statistics loop: independent accumulators the compiler turns into SIMD.
const LANES: usize = 8;
/// Values summed in `f32` lanes (64 each) before the sums are carried into `f64`: short sums
/// keep the mean within about 1e-6 of the exact value relative to the map's largest value.
const BLOCK: usize = 512;

/// Statistics of one map (row-major, `width` values a row), from [`map_pass`].
pub fn map_stats(values: &[f32], width: usize) -> MapStats {
    MapStats::from_host(&map_pass(values, width))
}

/// What every statistic is computed from, in one pass over a map's memory, a block of `BLOCK`
/// values at a time (each block read twice while it is in the first-level cache, by two
/// vectorised loops that each fit the vector registers): the sum, the extremes, the first
/// place of the maximum and the positive count, then the sum of squares. Both sums are taken
/// around a shift (the mean of the first block, or the first value of a map of one block);
/// the variance from them is exact enough (within about 1e-6, relative) while the shift lies
/// within one standard deviation of the mean, and otherwise (a map whose first values stand
/// far from the rest) a second pass sums the squared differences from the mean itself. Each
/// of the `LANES` lanes keeps its own sums, extremes and the first place of its maximum,
/// which the compiler turns into vector adds, compares and blends.
pub fn map_pass(values: &[f32], width: usize) -> HostPass {
    let n = values.len();
    let shift = match values.get(..BLOCK) {
        Some(first) if n > BLOCK => first.iter().sum::<f32>() / BLOCK as f32,
        _ => values.first().copied().unwrap_or(0.0),
    };
    let (mut sum, mut squares) = (0f64, 0f64);
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let mut at = [u32::MAX; LANES];
    let mut positive = [0u32; LANES];
    let mut tail = (f32::NEG_INFINITY, u32::MAX);
    let mut index = 0u32;
    for block in values.chunks(BLOCK) {
        let mut s = [0f32; LANES];
        let mut lanes = block.chunks_exact(LANES);
        for chunk in &mut lanes {
            for i in 0..LANES {
                let v = chunk[i];
                s[i] += v - shift;
                lo[i] = if v < lo[i] { v } else { lo[i] };
                at[i] = if v > hi[i] { index + i as u32 } else { at[i] };
                hi[i] = if v > hi[i] { v } else { hi[i] };
                positive[i] += u32::from(v > 0.0);
            }
            index += LANES as u32;
        }
        for &v in lanes.remainder() {
            s[0] += v - shift;
            lo[0] = if v < lo[0] { v } else { lo[0] };
            if v > tail.0 {
                tail = (v, index);
            }
            positive[0] += u32::from(v > 0.0);
            index += 1;
        }
        sum += s.iter().map(|&x| f64::from(x)).sum::<f64>();
        squares += centred_squares(block, shift);
    }
    let offset = sum / n as f64;
    let mean = f64::from(shift) + offset;
    let shifted = squares / n as f64 - offset * offset;
    let var = if offset * offset <= shifted {
        shifted
    } else {
        centred_squares(values, mean as f32) / n as f64
    };
    let min = lo
        .into_iter()
        .fold(f32::INFINITY, |a, b| if b < a { b } else { a });
    // The maximum, and its first place: the lowest place among the lanes (and the tail of a
    // block) that hold it; 0 when no value compares (all NaN).
    let (max, argmax) = hi.into_iter().zip(at).chain([tail]).fold(
        (f32::NEG_INFINITY, u32::MAX),
        |(m, a), (v, i)| {
            if v > m || (v == m && i < a) {
                (v, i)
            } else {
                (m, a)
            }
        },
    );
    let argmax = if argmax == u32::MAX {
        0
    } else {
        argmax as usize
    };
    let positive: u64 = positive.iter().map(|&p| u64::from(p)).sum();
    HostPass {
        n,
        width,
        mean,
        variance: var,
        min,
        max,
        positive,
        argmax,
    }
}

/// The sum of `(v - mean)^2` over `values`, in `f32` lanes carried into `f64` per block.
fn centred_squares(values: &[f32], mean: f32) -> f64 {
    let mut total = 0f64;
    for block in values.chunks(BLOCK) {
        let mut q = [0f32; LANES];
        let mut lanes = block.chunks_exact(LANES);
        for chunk in &mut lanes {
            for i in 0..LANES {
                let d = chunk[i] - mean;
                q[i] += d * d;
            }
        }
        for &v in lanes.remainder() {
            let d = v - mean;
            q[0] += d * d;
        }
        total += q.iter().map(|&x| f64::from(x)).sum::<f64>();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapDtype;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, UInt32Type};
    use ndarray::{Array, IxDyn};

    #[test]
    fn the_maximum_and_its_first_place_agree_with_a_plain_scan() {
        let mut state = 7u32;
        for n in [1, 5, 8, 9, 63, 512, 513, 1030, 4099] {
            for levels in [3, 50] {
                let mut values: Vec<f32> = (0..n)
                    .map(|_| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        ((state >> 8) % levels) as f32 - 1.0
                    })
                    .collect();
                if n > 4 {
                    values[n / 2] = f32::NAN;
                }
                let pass = map_pass(&values, 1);
                let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let first = values.iter().position(|&v| v == max).unwrap();
                assert_eq!(
                    (pass.max, pass.argmax),
                    (max, first),
                    "{n} values, {levels} levels"
                );
                let min = values.iter().copied().fold(f32::INFINITY, f32::min);
                assert_eq!(pass.min, min);
            }
        }
        let nan = map_pass(&[f32::NAN; 11], 1);
        assert_eq!((nan.max, nan.argmax), (f32::NEG_INFINITY, 0));
    }

    fn layer(keep: Keep, channel_axis: usize) -> LayerSpec {
        LayerSpec {
            name: "l".into(),
            tensor: "t".into(),
            selector: "t".into(),
            position: 2,
            top: None,
            pool: 1,
            keep,
            channel_axis: Some(channel_axis),
            tokens: None,
            batch_axis: None,
            grid_hints: crate::plan::GridHints {
                input: [8, 8],
                patch: None,
            },
            positions: None,
            positions_dtype: MapDtype::Float16,
        }
    }

    #[test]
    fn average_pooling_over_blocks_and_cut_edges() {
        // 3 x 5 map, values 0..15; 2 x 2 blocks give 2 x 3, edges averaging what they hold.
        let map: Vec<f32> = (0..15).map(|v| v as f32).collect();
        let mut out = Vec::new();
        assert_eq!(average_pool(&map, 3, 5, 2, &mut out), (2, 3));
        let want = [
            (0.0 + 1.0 + 5.0 + 6.0) / 4.0,
            (2.0 + 3.0 + 7.0 + 8.0) / 4.0,
            (4.0 + 9.0) / 2.0,
            (10.0 + 11.0) / 2.0,
            (12.0 + 13.0) / 2.0,
            14.0,
        ];
        assert_eq!(out, want);
        assert_eq!(average_pool(&map, 3, 5, 8, &mut out), (1, 1));
        assert_eq!(out, [7.0]);
    }

    #[test]
    fn stats_of_a_small_map() {
        // 2 x 3 map: [[-1, 4, 0], [2, 4, 3]]
        let s = map_stats(&[-1.0, 4.0, 0.0, 2.0, 4.0, 3.0], 3);
        assert_eq!(s[Stat::Mean], 2.0);
        assert!((s[Stat::Std] - (22.0f64 / 6.0).sqrt()).abs() < 1e-6);
        assert_eq!((s[Stat::Min], s[Stat::Max]), (-1.0, 4.0));
        assert_eq!(
            (s[Stat::ArgmaxY], s[Stat::ArgmaxX]),
            (0.0, 1.0),
            "the first maximum"
        );
        assert_eq!(s[Stat::FracPositive] as f32, 4.0 / 6.0);
    }

    /// The mean and variance of `values` in two passes in f64.
    fn exact_moments(values: &[f32]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var)
    }

    #[test]
    fn stats_agree_with_two_exact_passes_on_long_and_offset_maps() {
        // 10,007 values (not a multiple of the lanes or blocks), with a large offset.
        let values: Vec<f32> = (0..10_007u32)
            .map(|i| 1000.0 + ((i * 7919) % 1013) as f32 * 0.01 - 5.0)
            .collect();
        let s = map_stats(&values, 100);
        let (mean, var) = exact_moments(&values);
        assert!(
            (s[Stat::Mean] - mean).abs() < 1e-4,
            "{} vs {mean}",
            s[Stat::Mean]
        );
        assert!(
            (s[Stat::Std] - var.sqrt()).abs() / var.sqrt() < 1e-4,
            "{} vs {}",
            s[Stat::Std],
            var.sqrt()
        );
        let max = values.iter().cloned().fold(f32::MIN, f32::max);
        let at = values.iter().position(|&v| v == max).unwrap();
        assert_eq!(
            (s[Stat::Max], s[Stat::ArgmaxY], s[Stat::ArgmaxX]),
            (f64::from(max), (at / 100) as f64, (at % 100) as f64)
        );
        assert_eq!(
            s[Stat::Min],
            f64::from(values.iter().cloned().fold(f32::MAX, f32::min))
        );
        assert_eq!(s[Stat::FracPositive], 1.0);
    }

    #[test]
    fn the_variance_in_one_pass_or_two_is_within_1e_6_of_the_exact_one() {
        let mut state = 11u32;
        let mut noise = move || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let relu: Vec<f32> = (0..50_176).map(|_| (noise() * 3.0).max(0.0)).collect();
        let offset: Vec<f32> = (0..50_176).map(|_| 5000.0 + noise()).collect();
        // The first block far from the rest: the shift is useless, the second pass decides.
        let mut far = offset.clone();
        far[..BLOCK].iter_mut().for_each(|v| *v = -5000.0);
        let small: Vec<f32> = (0..196).map(|_| 100.0 + noise()).collect();
        for (what, values) in [
            ("relu", relu),
            ("offset", offset),
            ("far", far),
            ("small", small),
        ] {
            let pass = map_pass(&values, 224);
            let (mean, var) = exact_moments(&values);
            let error = (pass.variance - var).abs() / var;
            assert!(
                error < 1e-6,
                "{what}: {} vs {var} ({error:e})",
                pass.variance
            );
            assert!(
                (pass.mean - mean).abs() <= 1e-6 * mean.abs().max(1.0),
                "{what}"
            );
        }
    }

    #[test]
    fn shapes_and_keep_are_checked() {
        let r = LayerReducer::new(&layer(Keep::All, 1), 0, &[4, 2, 3], 0).unwrap();
        assert_eq!(
            r.shape,
            LayerShape::Maps {
                channels: 4,
                height: 2,
                width: 3
            }
        );
        assert_eq!(r.kept(), [0, 1, 2, 3]);
        let r = LayerReducer::new(&layer(Keep::All, 2), 0, &[7, 5], 0).unwrap();
        assert_eq!(
            r.shape,
            LayerShape::Maps {
                channels: 5,
                height: 7,
                width: 1
            }
        );
        let r = LayerReducer::new(&layer(Keep::Channels(vec![3]), 1), 0, &[10], 0).unwrap();
        assert_eq!(r.shape, LayerShape::Vector { len: 10 });
        let err = LayerReducer::new(&layer(Keep::Channels(vec![0, 4]), 1), 0, &[4, 2, 3], 0)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "config: `layers[2].keep` lists channel 4, but `t` has 4 channels (0 to 3)"
        );
        let err = LayerReducer::new(&layer(Keep::All, 3), 0, &[4, 2], 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`layers[2].channel_axis` is 3, but tensor `t` has rank 3"),
            "{err}"
        );
    }

    #[test]
    fn channels_last_maps_match_a_direct_index() {
        // [N=2, H=2, W=3, C=4] with channel_axis 3: map (i, c)[y][x] = t[i, y, x, c].
        let t = Array::from_shape_fn(IxDyn(&[2, 2, 3, 4]), |ix| {
            (ix[0] * 1000 + ix[1] * 100 + ix[2] * 10 + ix[3]) as f32
        });
        let r = LayerReducer::new(&layer(Keep::Channels(vec![2]), 3), 0, &[2, 3, 4], 0).unwrap();
        let mut rows = Rows::new(&Formats::default());
        reduce_batch(&[r], &[t.view()], &[7, 8], &mut rows, &mut [None]);
        let maps = rows.maps.finish();
        assert_eq!(maps.num_rows(), 2);
        let values = maps.column(5).as_list::<i32>();
        let second = values.value(1);
        let got: Vec<f32> = second.as_primitive::<Float32Type>().values().to_vec();
        assert_eq!(got, [1002.0, 1012.0, 1022.0, 1102.0, 1112.0, 1122.0]);
        let stats = rows.stats.finish();
        assert_eq!(stats.num_rows(), 8);
        let argmax_x = stats
            .column_by_name("argmax_x")
            .unwrap()
            .as_primitive::<UInt32Type>();
        assert_eq!(argmax_x.value(0), 2, "image 7, channel 0: max at y 1, x 2");
    }
}
