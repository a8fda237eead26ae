//! Reductions appended to the model (`[run] reduce = "graph"`): each maps layer's statistics
//! and stored maps are computed by ONNX Runtime on its execution provider, so only they leave
//! the session and the layer's whole tensor is never a graph output.
//!
//! Per layer, on the tensor with its channel axis moved next to the batch axis (`[N, C, H, W]`):
//! the graph computation of each statistic of [`STATISTICS`] (means over rows, then over the
//! rows' means; ArgMax of the flattened map, the first index on ties), concatenated in list order
//! into one `[N, C, Stat::COUNT]` output; the stored maps are the kept channels gathered from
//! `[N, C, H, W]` (or every channel, for a layer that keeps the best maps), AveragePool-ed when
//! the layer pools. The nodes are appended the way graph outputs are (a second serialized
//! `ModelProto` merges into the first), with names under [`PREFIX`]. A layer that writes N
//! sampled positions per image to `positions` gathers them in the graph too: the positions of
//! each image come in through an added graph input, `[N, n]` int64, and only their vectors,
//! `[N, n, C]`, leave the session.

use std::collections::BTreeSet;

use super::statistics::{Graph, Stat, STATISTICS};
use super::{put_bytes, put_varint};

/// The prefix of every node, initializer and tensor added here.
pub const PREFIX: &str = "layerwise.reduce";

/// The oldest default-domain opset the appended nodes are valid in (AveragePool's
/// `ceil_mode`, Reshape's shape input, broadcasting binary operators).
pub const MIN_OPSET: i64 = 10;

/// The oldest opset in which sampled positions are gathered in the graph (GatherElements).
pub const MIN_OPSET_SAMPLED: i64 = 11;

/// The largest map whose argmax index a float32 output holds exactly (2^24).
pub const MAX_MAP_VALUES: usize = 1 << 24;

/// Which maps a layer stores, as the graph computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphMaps<'a> {
    /// None: statistics only.
    None,
    /// These channels, in this order.
    Channels(&'a [u32]),
    /// Every channel (a layer whose best maps are kept).
    All,
}

/// One maps layer to reduce in the graph: its tensor and how it is cut into maps.
#[derive(Debug, Clone, Copy)]
pub struct LayerGraph<'a> {
    /// The layer's tensor.
    pub tensor: &'a str,
    /// The tensor's rank, batch axis included.
    pub rank: usize,
    /// Its batch axis in the model: 0, or 1 for a sequence-first tensor.
    pub batch_axis: usize,
    /// Its channel axis, counted with the batch first.
    pub channel_axis: usize,
    /// Tokens left out before the maps (a transformer's prefix tokens; the token axis is 1,
    /// batch first), 0 for none.
    pub prefix: usize,
    /// Channels.
    pub channels: usize,
    /// Map height (the first axis that is neither batch nor channel).
    pub height: usize,
    /// Map width (the product of the axes after it).
    pub width: usize,
    /// The maps stored.
    pub maps: GraphMaps<'a>,
    /// Average-pooling factor of the stored maps (1: none).
    pub pool: usize,
    /// The prefix tokens to hand out whole, `[N, P, dim]` (a transformer's class token and
    /// registers, for the `positions` table); 0 for none.
    pub gathered_prefix: usize,
    /// Positions of the map (or token grid, prefix left out) to gather per image, `y * width +
    /// x`, given to each run through a graph input; 0 for none.
    pub sampled: usize,
}

/// The outputs one layer's reduction adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOutputs {
    /// `[N, C, Stat::COUNT]` statistics, in the order of [`STATISTICS`].
    pub stats: String,
    /// `[N, K, h, w]` stored maps (pooled), when the layer stores any.
    pub maps: Option<String>,
    /// `[N, P, dim]` prefix tokens, when the layer writes them to `positions`.
    pub prefix: Option<String>,
    /// The sampled positions: the graph input that takes their indices, and the `[N, n, C]`
    /// vectors gathered at them.
    pub sampled: Option<Sampled>,
}

/// A layer's positions gathered in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    /// The added graph input: `[N, n]` int64, each image's positions on the grid.
    pub input: String,
    /// Positions per image (n).
    pub count: usize,
    /// The output: `[N, n, C]`, the vector at each position.
    pub output: String,
}

/// The appended graph: the serialized `GraphProto` fields, and each layer's outputs (which
/// are to be exposed as graph outputs, see [`super::ModelFile::exposing`]).
#[derive(Debug, Clone)]
pub struct Appended {
    /// Serialized `GraphProto` fields (nodes, initializers and added inputs).
    pub graph: Vec<u8>,
    /// Each layer's outputs, in the order of the layers given.
    pub outputs: Vec<LayerOutputs>,
}

/// The permutation of a layer's tensor, as the model has it, that puts the batch first and
/// the channels second (the other axes in order).
fn channels_first(layer: &LayerGraph) -> Vec<i64> {
    // The model's axis of each batch-first axis: a sequence-first tensor's first two swapped.
    let mut model_axis: Vec<i64> = (0..layer.rank as i64).collect();
    model_axis.swap(0, layer.batch_axis);
    let mut perm = vec![model_axis[0], model_axis[layer.channel_axis]];
    perm.extend(
        (1..layer.rank)
            .filter(|&a| a != layer.channel_axis)
            .map(|a| model_axis[a]),
    );
    perm
}

/// The reductions of `layers` for a model that imports default-domain opset `opset`.
pub fn append(layers: &[LayerGraph], opset: Option<i64>) -> Result<Appended, String> {
    let opset = opset.unwrap_or(0);
    if opset < MIN_OPSET {
        return Err(format!(
            "`[run] reduce = \"graph\"` needs a model of ONNX opset {MIN_OPSET} or later, and this \
             one imports opset {opset}; set `reduce = \"host\"` (or re-export it with a newer opset)"
        ));
    }
    let mut builder = Builder {
        opset,
        graph: Vec::new(),
    };
    let outputs = layers
        .iter()
        .enumerate()
        .map(|(i, layer)| builder.layer(i, layer))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Appended {
        graph: builder.graph,
        outputs,
    })
}

// Field numbers of onnx.proto3.
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const VALUE_INFO_NAME: u32 = 1;
const VALUE_INFO_TYPE: u32 = 2;
const TYPE_TENSOR: u32 = 1;
const TENSOR_TYPE_ELEM_TYPE: u32 = 1;
const TENSOR_TYPE_SHAPE: u32 = 2;
const SHAPE_DIM: u32 = 1;
const DIM_VALUE: u32 = 1;
const DIM_PARAM: u32 = 2;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const ATTRIBUTE_NAME: u32 = 1;
const ATTRIBUTE_I: u32 = 3;
const ATTRIBUTE_INTS: u32 = 8;
const ATTRIBUTE_TYPE: u32 = 20;
const ATTRIBUTE_TYPE_INT: u64 = 2;
const ATTRIBUTE_TYPE_INTS: u64 = 7;
const TENSOR_DIMS: u32 = 1;
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_NAME: u32 = 8;
const TENSOR_RAW_DATA: u32 = 9;
const TYPE_FLOAT: i64 = 1;
const TYPE_INT64: i64 = 7;

/// An attribute of a node.
enum Attribute<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
}

/// One layer's maps and the nodes made for its statistics, each once by name.
struct LayerNodes<'b> {
    builder: &'b mut Builder,
    maps: String,
    flat: String,
    width: usize,
    prefix: &'b dyn Fn(&str) -> String,
    made: BTreeSet<String>,
}

impl LayerNodes<'_> {
    /// The tensor `name` (under the layer's prefix), made by `make` unless it was made before.
    fn once(&mut self, name: &str, make: impl FnOnce(&mut Builder, &str) -> String) -> String {
        let output = (self.prefix)(name);
        if self.made.insert(output.clone()) {
            make(self.builder, &output)
        } else {
            output
        }
    }
}

impl Graph for LayerNodes<'_> {
    fn maps(&self) -> String {
        self.maps.clone()
    }

    fn flat(&self) -> String {
        self.flat.clone()
    }

    fn width(&mut self) -> String {
        let width = self.width as f32;
        self.constant("width", width)
    }

    fn constant(&mut self, name: &str, value: f32) -> String {
        self.once(name, |b, output| {
            b.initializer(output, TYPE_FLOAT, &[], &value.to_le_bytes())
        })
    }

    fn map_mean(&mut self, input: &str, name: &str) -> String {
        self.once(name, |b, output| b.map_mean(input, output))
    }

    fn as_4d(&mut self, input: &str, name: &str) -> String {
        self.once(name, |b, output| b.reshape(input, &[0, 0, 1, 1], output))
    }

    fn reduce_flat(&mut self, op: &str, input: &str, name: &str) -> String {
        self.once(name, |b, output| b.reduce(op, input, 2, output))
    }

    fn op(&mut self, op: &str, inputs: &[&str], name: &str) -> String {
        self.once(name, |b, output| b.node(op, inputs, output, &[]))
    }

    fn argmax(&mut self) -> String {
        let flat = self.flat.clone();
        let argmax = self.once("argmax", |b, output| {
            b.node(
                "ArgMax",
                &[&flat],
                output,
                &[Attribute::Int("axis", 2), Attribute::Int("keepdims", 1)],
            )
        });
        self.float(&argmax, "argmax_float")
    }

    fn float(&mut self, input: &str, name: &str) -> String {
        self.once(name, |b, output| b.cast_to_float(input, output))
    }
}

/// Writes nodes and initializers into a `GraphProto`'s bytes.
struct Builder {
    opset: i64,
    graph: Vec<u8>,
}

impl Builder {
    /// The nodes of layer `i`; returns its outputs.
    fn layer(&mut self, i: usize, layer: &LayerGraph) -> Result<LayerOutputs, String> {
        let LayerGraph {
            channels: c,
            height: h,
            width: w,
            ..
        } = *layer;
        if h * w > MAX_MAP_VALUES {
            return Err(format!(
                "tensor `{}` has maps of {h} x {w} values, more than `[run] reduce = \"graph\"` \
                 indexes exactly ({MAX_MAP_VALUES}); set `reduce = \"host\"`",
                layer.tensor
            ));
        }
        let p = |name: &str| format!("{PREFIX}.{i}.{name}");
        let mut x = layer.tensor.to_owned();
        let perm = channels_first(layer);
        if perm.iter().enumerate().any(|(i, &a)| a != i as i64) {
            x = self.node(
                "Transpose",
                &[&x],
                &p("channels_first"),
                &[Attribute::Ints("perm", &perm)],
            );
        }
        if layer.prefix > 0 {
            // [N, C, tokens] without its first `prefix` tokens.
            let range = (layer.prefix as i64, i64::MAX);
            x = self.slice(&x, range, 2, &|name| p(&format!("grid_{name}")));
        }
        let maps = self.reshape(&x, &[0, c as i64, h as i64, w as i64], &p("maps"));
        let flat = self.reshape(&maps, &[0, c as i64, -1], &p("flat"));
        let stats = self.stats(&maps, &flat, w, &p);
        let stored = match layer.maps {
            GraphMaps::None => None,
            GraphMaps::All => Some(self.pool(&maps, layer.pool, &p("stored"))),
            GraphMaps::Channels(keep) => {
                let indices: Vec<i64> = keep.iter().map(|&k| i64::from(k)).collect();
                let indices =
                    self.initializer(&p("keep"), TYPE_INT64, &[indices.len()], &int64s(&indices));
                let kept = self.node(
                    "Gather",
                    &[&maps, &indices],
                    &p("kept"),
                    &[Attribute::Int("axis", 1)],
                );
                Some(self.pool(&kept, layer.pool, &p("stored")))
            }
        };
        let prefix = (layer.gathered_prefix > 0).then(|| self.prefix_tokens(layer, &p));
        let sampled = match layer.sampled {
            0 => None,
            _ if self.opset < MIN_OPSET_SAMPLED => {
                return Err(format!(
                    "`[run] reduce = \"graph\"` gathers sampled positions with an operator of \
                     ONNX opset {MIN_OPSET_SAMPLED}, and this model imports opset {}; set \
                     `reduce = \"host\"` (or re-export it with a newer opset)",
                    self.opset
                ))
            }
            n => Some(self.sampled(&flat, c, n, &p)),
        };
        Ok(LayerOutputs {
            stats,
            maps: stored,
            prefix,
            sampled,
        })
    }

    /// The vectors of `flat` (`[N, C, cells]`) at `count` positions per image, which a new
    /// graph input gives (`[N, count]`): GatherElements along the cells, then channels last.
    fn sampled(
        &mut self,
        flat: &str,
        channels: usize,
        count: usize,
        p: &dyn Fn(&str) -> String,
    ) -> Sampled {
        let input = self.input_int64(&p("at"), count);
        let at = self.reshape(&input, &[0, 1, count as i64], &p("at_rows"));
        let shape = self.initializer(
            &p("at_shape"),
            TYPE_INT64,
            &[3],
            &int64s(&[1, channels as i64, 1]),
        );
        let at = self.node("Expand", &[&at, &shape], &p("at_channels"), &[]);
        let gathered = self.node(
            "GatherElements",
            &[flat, &at],
            &p("gathered"),
            &[Attribute::Int("axis", 2)],
        );
        let output = self.node(
            "Transpose",
            &[&gathered],
            &p("sampled"),
            &[Attribute::Ints("perm", &[0, 2, 1])],
        );
        Sampled {
            input,
            count,
            output,
        }
    }

    /// Adds a graph input `name`: an int64 tensor `[N, count]`, N free.
    fn input_int64(&mut self, name: &str, count: usize) -> String {
        let mut batch = Vec::new();
        put_bytes(&mut batch, DIM_PARAM, b"N");
        let mut count_dim = Vec::new();
        put_int(&mut count_dim, DIM_VALUE, count as i64);
        let mut shape = Vec::new();
        put_bytes(&mut shape, SHAPE_DIM, &batch);
        put_bytes(&mut shape, SHAPE_DIM, &count_dim);
        let mut tensor = Vec::new();
        put_int(&mut tensor, TENSOR_TYPE_ELEM_TYPE, TYPE_INT64);
        put_bytes(&mut tensor, TENSOR_TYPE_SHAPE, &shape);
        let mut kind = Vec::new();
        put_bytes(&mut kind, TYPE_TENSOR, &tensor);
        let mut info = Vec::new();
        put_bytes(&mut info, VALUE_INFO_NAME, name.as_bytes());
        put_bytes(&mut info, VALUE_INFO_TYPE, &kind);
        put_bytes(&mut self.graph, GRAPH_INPUT, &info);
        name.to_owned()
    }

    /// The first `gathered_prefix` tokens of a `[N, tokens, dim]` layer (`[tokens, N, dim]`
    /// sequence first), batch first: `[N, P, dim]`.
    fn prefix_tokens(&mut self, layer: &LayerGraph, p: &dyn Fn(&str) -> String) -> String {
        let mut x = layer.tensor.to_owned();
        if layer.batch_axis == 1 {
            x = self.node(
                "Transpose",
                &[&x],
                &p("batch_first"),
                &[Attribute::Ints("perm", &[1, 0, 2])],
            );
        }
        let range = (0, layer.gathered_prefix as i64);
        self.slice(&x, range, 1, &|name| p(&format!("prefix_{name}")))
    }

    /// `input[start..end]` along `axis`; `name` names its initializers and (`"tokens"`) its
    /// output.
    fn slice(
        &mut self,
        input: &str,
        (start, end): (i64, i64),
        axis: i64,
        name: &dyn Fn(&str) -> String,
    ) -> String {
        let mut bound = |which: &str, value: i64| {
            self.initializer(&name(which), TYPE_INT64, &[1], &int64s(&[value]))
        };
        let (start, end, axis) = (
            bound("start", start),
            bound("end", end),
            bound("axis", axis),
        );
        self.node("Slice", &[input, &start, &end, &axis], &name("tokens"), &[])
    }

    /// The `[N, C, Stat::COUNT]` statistics of `maps` (`[N, C, H, W]`, maps `width` wide),
    /// `flat` its `[N, C, H * W]` view: each statistic's graph computation, concatenated in list
    /// order.
    fn stats(
        &mut self,
        maps: &str,
        flat: &str,
        width: usize,
        p: &dyn Fn(&str) -> String,
    ) -> String {
        let mut nodes = LayerNodes {
            builder: self,
            maps: maps.to_owned(),
            flat: flat.to_owned(),
            width,
            prefix: p,
            made: BTreeSet::new(),
        };
        let columns: Vec<String> = STATISTICS.iter().map(|s| (s.graph)(&mut nodes)).collect();
        debug_assert_eq!(columns.len(), Stat::COUNT);
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        self.node(
            "Concat",
            &columns,
            &p("stats"),
            &[Attribute::Int("axis", 2)],
        )
    }

    /// `input` average-pooled by `k` x `k` blocks (edge blocks average what they hold).
    fn pool(&mut self, input: &str, k: usize, output: &str) -> String {
        if k == 1 {
            return self.node("Identity", &[input], output, &[]);
        }
        let k = k as i64;
        self.node(
            "AveragePool",
            &[input],
            output,
            &[
                Attribute::Ints("kernel_shape", &[k, k]),
                Attribute::Ints("strides", &[k, k]),
                Attribute::Int("ceil_mode", 1),
            ],
        )
    }

    /// The `[N, C, 1]` mean of each map of `maps` (`[N, C, H, W]`): of its rows' means.
    /// Float32 sums of a few hundred values each keep it within about 1e-6 of the exact value
    /// on 224 x 224 maps, where one sum over the whole map drifts ten times as far.
    fn map_mean(&mut self, maps: &str, output: &str) -> String {
        let rows = self.reduce("ReduceMean", maps, 3, &format!("{output}.rows"));
        let mean = self.reduce("ReduceMean", &rows, 2, &format!("{output}.map"));
        self.reshape(&mean, &[0, 0, 1], output)
    }

    /// `op` over `axis`, dimensions kept: `axes` is an attribute before opset 18, an input
    /// after.
    fn reduce(&mut self, op: &str, input: &str, axis: i64, output: &str) -> String {
        if self.opset >= 18 {
            let axes = self.initializer(
                &format!("{output}.axes"),
                TYPE_INT64,
                &[1],
                &int64s(&[axis]),
            );
            self.node(
                op,
                &[input, &axes],
                output,
                &[Attribute::Int("keepdims", 1)],
            )
        } else {
            let attributes = [
                Attribute::Ints("axes", &[axis]),
                Attribute::Int("keepdims", 1),
            ];
            self.node(op, &[input], output, &attributes)
        }
    }

    fn cast_to_float(&mut self, input: &str, output: &str) -> String {
        self.node(
            "Cast",
            &[input],
            output,
            &[Attribute::Int("to", TYPE_FLOAT)],
        )
    }

    fn reshape(&mut self, input: &str, shape: &[i64], output: &str) -> String {
        let shape_name = self.initializer(
            &format!("{output}.shape"),
            TYPE_INT64,
            &[shape.len()],
            &int64s(shape),
        );
        self.node("Reshape", &[input, &shape_name], output, &[])
    }

    /// Appends a node named and producing `output`; returns `output`.
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attributes: &[Attribute],
    ) -> String {
        let mut node = Vec::new();
        for input in inputs {
            put_bytes(&mut node, NODE_INPUT, input.as_bytes());
        }
        put_bytes(&mut node, NODE_OUTPUT, output.as_bytes());
        put_bytes(&mut node, NODE_NAME, output.as_bytes());
        put_bytes(&mut node, NODE_OP_TYPE, op.as_bytes());
        for attribute in attributes {
            put_bytes(&mut node, NODE_ATTRIBUTE, &encode_attribute(attribute));
        }
        put_bytes(&mut self.graph, GRAPH_NODE, &node);
        output.to_owned()
    }

    /// Appends a constant tensor; returns its name.
    fn initializer(&mut self, name: &str, data_type: i64, dims: &[usize], raw: &[u8]) -> String {
        let mut tensor = Vec::new();
        for &d in dims {
            put_int(&mut tensor, TENSOR_DIMS, d as i64);
        }
        put_int(&mut tensor, TENSOR_DATA_TYPE, data_type);
        put_bytes(&mut tensor, TENSOR_NAME, name.as_bytes());
        put_bytes(&mut tensor, TENSOR_RAW_DATA, raw);
        put_bytes(&mut self.graph, GRAPH_INITIALIZER, &tensor);
        name.to_owned()
    }
}

fn encode_attribute(attribute: &Attribute) -> Vec<u8> {
    let mut out = Vec::new();
    match attribute {
        Attribute::Int(name, v) => {
            put_bytes(&mut out, ATTRIBUTE_NAME, name.as_bytes());
            put_int(&mut out, ATTRIBUTE_I, *v);
            put_int(&mut out, ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INT as i64);
        }
        Attribute::Ints(name, values) => {
            put_bytes(&mut out, ATTRIBUTE_NAME, name.as_bytes());
            for &v in values.iter() {
                put_int(&mut out, ATTRIBUTE_INTS, v);
            }
            put_int(&mut out, ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INTS as i64);
        }
    }
    out
}

/// A varint field (negative values as ten bytes of two's complement, as protobuf does).
fn put_int(out: &mut Vec<u8>, number: u32, v: i64) {
    put_varint(out, u64::from(number) << 3);
    put_varint(out, v as u64);
}

fn int64s(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(maps: GraphMaps<'_>) -> LayerGraph<'_> {
        LayerGraph {
            tensor: "conv",
            rank: 4,
            batch_axis: 0,
            channel_axis: 1,
            prefix: 0,
            gathered_prefix: 0,
            sampled: 0,
            channels: 8,
            height: 5,
            width: 5,
            maps,
            pool: 2,
        }
    }

    #[test]
    fn old_opsets_and_huge_maps_are_refused_with_what_to_do() {
        let err = append(&[layer(GraphMaps::None)], Some(9)).unwrap_err();
        assert_eq!(
            err,
            "`[run] reduce = \"graph\"` needs a model of ONNX opset 10 or later, and this one \
             imports opset 9; set `reduce = \"host\"` (or re-export it with a newer opset)"
        );
        let huge = LayerGraph {
            height: 8192,
            width: 4096,
            ..layer(GraphMaps::None)
        };
        let err = append(&[huge], Some(17)).unwrap_err();
        assert!(err.contains("maps of 8192 x 4096 values"), "{err}");
    }

    #[test]
    fn each_layer_names_its_outputs_and_only_they_are_added() {
        let keep = [3, 1];
        let sampling = LayerGraph {
            sampled: 4,
            ..layer(GraphMaps::None)
        };
        let layers = [
            layer(GraphMaps::Channels(&keep)),
            layer(GraphMaps::None),
            sampling,
        ];
        let appended = append(&layers, Some(17)).unwrap();
        let stats = |i: usize| format!("layerwise.reduce.{i}.stats");
        assert_eq!(
            appended.outputs,
            [
                LayerOutputs {
                    stats: stats(0),
                    maps: Some("layerwise.reduce.0.stored".into()),
                    prefix: None,
                    sampled: None,
                },
                LayerOutputs {
                    stats: stats(1),
                    maps: None,
                    prefix: None,
                    sampled: None,
                },
                LayerOutputs {
                    stats: stats(2),
                    maps: None,
                    prefix: None,
                    sampled: Some(Sampled {
                        input: "layerwise.reduce.2.at".into(),
                        count: 4,
                        output: "layerwise.reduce.2.sampled".into(),
                    }),
                },
            ]
        );
        let err = append(&[sampling], Some(10)).unwrap_err();
        assert_eq!(
            err,
            "`[run] reduce = \"graph\"` gathers sampled positions with an operator of ONNX opset \
             11, and this model imports opset 10; set `reduce = \"host\"` (or re-export it with a \
             newer opset)"
        );
        // The graph's bytes parse as a model's graph whose nodes produce those outputs.
        let mut model = Vec::new();
        put_bytes(&mut model, 7, &appended.graph);
        let graph = super::super::decode_model(&model).unwrap();
        assert!(graph.nodes.iter().all(|n| n.name.starts_with(PREFIX)));
        for output in [
            "layerwise.reduce.0.stats",
            "layerwise.reduce.0.stored",
            "layerwise.reduce.1.stats",
            "layerwise.reduce.2.sampled",
        ] {
            assert!(graph.produces(output), "{output}");
        }
        assert!(graph.nodes.iter().any(|n| n.op_type == "AveragePool"));
    }
}
