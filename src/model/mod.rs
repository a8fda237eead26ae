//! The model: reading an ONNX model's graph (here), picking tensors from it ([`select`]),
//! loading ONNX Runtime ([`runtime`]), opening a session that exposes them ([`session`]) and
//! listing what can be extracted ([`inspect`]); [`reduction`] appends the nodes that reduce
//! tensors inside the session.
//!
//! To read the graph, only the few protobuf fields needed are decoded (nodes, graph inputs and outputs, initializer
//! names); weights are skipped without being parsed. To expose tensors, a second serialized
//! `ModelProto` holding only `graph.output` entries is appended to the file's bytes: protobuf
//! parses concatenated messages as their merge, and repeated fields concatenate, so the result
//! is the original model with more outputs, and no full rewrite is needed.

pub mod inspect;
pub mod reduction;
pub mod runtime;
pub mod select;
pub mod session;
pub mod statistics;
pub mod tokens;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// An element type of an ONNX tensor (`TensorProto.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementType(pub i32);

impl ElementType {
    /// 32-bit float.
    pub const FLOAT: ElementType = ElementType(1);
    /// Unsigned byte.
    pub const UINT8: ElementType = ElementType(2);

    /// The ONNX name of the type, e.g. `float32`.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "float32",
            2 => "uint8",
            3 => "int8",
            4 => "uint16",
            5 => "int16",
            6 => "int32",
            7 => "int64",
            8 => "string",
            9 => "bool",
            10 => "float16",
            11 => "float64",
            12 => "uint32",
            13 => "uint64",
            16 => "bfloat16",
            _ => "other",
        }
    }
}

/// One dimension of a tensor shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A named, symbolic size such as `batch`.
    Symbolic(String),
    /// No information.
    Unknown,
}

impl Dim {
    /// The size when it is fixed and positive.
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) if *n > 0 => Some(*n as usize),
            _ => None,
        }
    }
}

/// A named tensor with its type, as declared in the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Element type, when declared.
    pub element_type: Option<ElementType>,
    /// Shape, when declared.
    pub shape: Option<Vec<Dim>>,
}

/// A node of the graph: what it computes and the tensors it produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node name (may be empty).
    pub name: String,
    /// Operator, e.g. `Conv`.
    pub op_type: String,
    /// Names of the tensors it takes (an empty name is an omitted optional input).
    pub inputs: Vec<String>,
    /// Names of the tensors it produces.
    pub outputs: Vec<String>,
    /// Its attributes that are lists of integers (`kernel_shape`, `strides`, ...), by name.
    pub ints: Vec<(String, Vec<i64>)>,
}

impl Node {
    /// The integer-list attribute `name`, if the node has it.
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        self.ints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The top-level graph of a model, as far as layerwise needs it.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Graph inputs that are fed at run time (initializers excluded).
    pub inputs: Vec<TensorInfo>,
    /// Graph outputs.
    pub outputs: Vec<TensorInfo>,
    /// Nodes in graph order.
    pub nodes: Vec<Node>,
    /// Types and shapes the exporter recorded for intermediate tensors (`graph.value_info`).
    pub value_info: Vec<TensorInfo>,
    /// Files holding external initializer data, relative to the model's folder.
    pub external_files: BTreeSet<String>,
    /// The version of the default (`ai.onnx`) operator set the model imports.
    pub opset: Option<i64>,
}

/// A tensor that can be extracted: the output of a node (constants excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extractable<'g> {
    /// Position among the extractable tensors, in graph order.
    pub index: usize,
    /// Tensor name.
    pub name: &'g str,
    /// The producing node.
    pub node: &'g Node,
}

impl Graph {
    /// The patch size of a vision transformer, [height, width]: that of the first 2-D `Conv`
    /// whose kernel equals its strides and is larger than 1 (the patch embedding). `None` for
    /// a model without one.
    pub fn patch_size(&self) -> Option<[usize; 2]> {
        self.nodes
            .iter()
            .filter(|n| n.op_type == "Conv")
            .find_map(|n| match (n.ints("kernel_shape")?, n.ints("strides")?) {
                (&[h, w], &[sh, sw]) if [h, w] == [sh, sw] && h.max(w) > 1 && h.min(w) > 0 => {
                    Some([h as usize, w as usize])
                }
                _ => None,
            })
    }

    /// Every tensor a node other than `Constant` produces, in graph order, numbered.
    pub fn extractable(&self) -> Vec<Extractable<'_>> {
        self.nodes
            .iter()
            .filter(|n| n.op_type != "Constant")
            .flat_map(|n| n.outputs.iter().map(move |o| (n, o.as_str())))
            .filter(|(_, o)| !o.is_empty())
            .enumerate()
            .map(|(index, (node, name))| Extractable { index, name, node })
            .collect()
    }

    /// Whether this tensor can be extracted.
    pub fn produces(&self, tensor: &str) -> bool {
        self.extractable().iter().any(|t| t.name == tensor)
    }

    /// The declared type and shape of a tensor, if the file records them.
    pub fn declared(&self, tensor: &str) -> Option<&TensorInfo> {
        self.outputs
            .iter()
            .chain(&self.value_info)
            .chain(&self.inputs)
            .find(|t| t.name == tensor)
    }

    /// Whether the tensor is already a graph output.
    pub fn is_output(&self, tensor: &str) -> bool {
        self.outputs.iter().any(|o| o.name == tensor)
    }

    /// Up to `n` tensor names closest to `wanted` (edit distance), best first.
    pub fn closest_tensors(&self, wanted: &str, n: usize) -> Vec<String> {
        let mut scored: Vec<(usize, &str)> = self
            .extractable()
            .into_iter()
            .map(|t| (strsim::levenshtein(wanted, t.name), t.name))
            .collect();
        scored.sort();
        scored.dedup();
        scored
            .into_iter()
            .take(n)
            .map(|(_, o)| o.to_owned())
            .collect()
    }
}

/// An ONNX file in memory: its bytes, its decoded graph and its SHA-256.
pub struct ModelFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The serialized `ModelProto`.
    pub bytes: Vec<u8>,
    /// The decoded top-level graph.
    pub graph: Graph,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

impl ModelFile {
    /// Reads and decodes an ONNX file.
    pub fn read(path: &Path) -> Result<ModelFile, String> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "there is no such file; check `model.path` (a \
                 relative path is taken from the config file's folder)"
                .to_owned(),
            _ => format!("cannot read the file: {e}"),
        })?;
        let graph = decode_model(&bytes).map_err(|e| {
            format!("not a readable ONNX model ({e}); is the file complete, and an .onnx export?")
        })?;
        let sha256 = crate::digest::sha256_hex(&bytes);
        Ok(ModelFile {
            path: path.to_owned(),
            bytes,
            graph,
            sha256,
        })
    }

    /// Calls `use_bytes` with the model's bytes extended by `appended` (serialized
    /// `GraphProto` fields, such as [`reduction::Appended::graph`]) and with `tensors` added as
    /// graph outputs (those already outputs are skipped); the bytes are extended in place and
    /// cut back after, so a large model is never copied.
    pub fn exposing<'a, R>(
        &mut self,
        tensors: impl IntoIterator<Item = &'a str>,
        appended: &[u8],
        use_bytes: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let mut graph = appended.to_vec();
        let mut seen = HashSet::new();
        for t in tensors {
            if !self.graph.is_output(t) && seen.insert(t) {
                let mut value_info = Vec::new();
                put_bytes(&mut value_info, 1, t.as_bytes());
                put_bytes(&mut graph, GRAPH_OUTPUT, &value_info);
            }
        }
        let len = self.bytes.len();
        if !graph.is_empty() {
            put_bytes(&mut self.bytes, MODEL_GRAPH, &graph);
        }
        let out = use_bytes(&self.bytes);
        self.bytes.truncate(len);
        out
    }
}

// Field numbers of onnx.proto3.
const MODEL_GRAPH: u32 = 7;
const MODEL_OPSET_IMPORT: u32 = 8;
const OPSET_DOMAIN: u32 = 1;
const OPSET_VERSION: u32 = 2;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const GRAPH_VALUE_INFO: u32 = 13;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const ATTRIBUTE_NAME: u32 = 1;
const ATTRIBUTE_INTS: u32 = 8;
const TENSOR_NAME: u32 = 8;
const TENSOR_EXTERNAL_DATA: u32 = 13;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;
const VALUE_INFO_NAME: u32 = 1;
const VALUE_INFO_TYPE: u32 = 2;
const TYPE_TENSOR: u32 = 1;
const TENSOR_TYPE_ELEM: u32 = 1;
const TENSOR_TYPE_SHAPE: u32 = 2;
const SHAPE_DIM: u32 = 1;
const DIM_VALUE: u32 = 1;
const DIM_PARAM: u32 = 2;

/// Decodes the top-level graph of a serialized `ModelProto`.
pub fn decode_model(bytes: &[u8]) -> Result<Graph, String> {
    let mut graph_bytes = Vec::new();
    let mut opset = None;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            MODEL_GRAPH => graph_bytes.push(value.bytes()?),
            MODEL_OPSET_IMPORT => opset = decode_opset(value.bytes()?)?.or(opset),
            _ => {}
        }
    }
    if graph_bytes.is_empty() {
        return Err("it has no graph".into());
    }
    let mut graph = Graph::default();
    let mut inputs = Vec::new();
    let mut initializers = HashSet::new();
    // A message split over several occurrences is their merge.
    for part in graph_bytes {
        for field in Fields::new(part) {
            let (number, value) = field?;
            match number {
                GRAPH_NODE => graph.nodes.push(decode_node(value.bytes()?)?),
                GRAPH_INITIALIZER => {
                    let (name, location) = decode_initializer(value.bytes()?)?;
                    initializers.insert(name);
                    graph.external_files.extend(location);
                }
                GRAPH_INPUT => inputs.push(decode_value_info(value.bytes()?)?),
                GRAPH_OUTPUT => graph.outputs.push(decode_value_info(value.bytes()?)?),
                GRAPH_VALUE_INFO => graph.value_info.push(decode_value_info(value.bytes()?)?),
                _ => {}
            }
        }
    }
    graph.inputs = inputs
        .into_iter()
        .filter(|i| !initializers.contains(&i.name))
        .collect();
    graph.opset = opset;
    Ok(graph)
}

/// The version of an `OperatorSetIdProto` when it is the default domain's.
fn decode_opset(bytes: &[u8]) -> Result<Option<i64>, String> {
    let (mut domain, mut version) = (String::new(), None);
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            OPSET_DOMAIN => domain = value.string()?,
            OPSET_VERSION => version = Some(value.varint()? as i64),
            _ => {}
        }
    }
    Ok(version.filter(|_| domain.is_empty() || domain == "ai.onnx"))
}

fn decode_node(bytes: &[u8]) -> Result<Node, String> {
    let mut node = Node {
        name: String::new(),
        op_type: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        ints: Vec::new(),
    };
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            NODE_INPUT => node.inputs.push(value.string()?),
            NODE_OUTPUT => node.outputs.push(value.string()?),
            NODE_NAME => node.name = value.string()?,
            NODE_OP_TYPE => node.op_type = value.string()?,
            NODE_ATTRIBUTE => {
                let (name, ints) = decode_ints_attribute(value.bytes()?)?;
                if !ints.is_empty() {
                    node.ints.push((name, ints));
                }
            }
            _ => {}
        }
    }
    Ok(node)
}

/// An attribute's name and its integer list (packed or not; empty for other attributes).
fn decode_ints_attribute(bytes: &[u8]) -> Result<(String, Vec<i64>), String> {
    let (mut name, mut ints) = (String::new(), Vec::new());
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match (number, value) {
            (ATTRIBUTE_NAME, value) => name = value.string()?,
            (ATTRIBUTE_INTS, Value::Varint(v)) => ints.push(v as i64),
            (ATTRIBUTE_INTS, Value::Bytes(packed)) => {
                let mut reader = Fields::new(packed);
                while reader.pos < packed.len() {
                    ints.push(reader.varint()? as i64);
                }
            }
            _ => {}
        }
    }
    Ok((name, ints))
}

/// An initializer's name, and the file holding its data when that is external.
fn decode_initializer(bytes: &[u8]) -> Result<(String, Option<String>), String> {
    let mut name = String::new();
    let mut location = None;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            TENSOR_NAME => name = value.string()?,
            TENSOR_EXTERNAL_DATA => {
                let (mut key, mut entry) = (String::new(), String::new());
                for field in Fields::new(value.bytes()?) {
                    let (number, value) = field?;
                    match number {
                        ENTRY_KEY => key = value.string()?,
                        ENTRY_VALUE => entry = value.string()?,
                        _ => {}
                    }
                }
                if key == "location" {
                    location = Some(entry);
                }
            }
            _ => {}
        }
    }
    Ok((name, location))
}

fn decode_value_info(bytes: &[u8]) -> Result<TensorInfo, String> {
    let mut info = TensorInfo {
        name: String::new(),
        element_type: None,
        shape: None,
    };
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            VALUE_INFO_NAME => info.name = value.string()?,
            VALUE_INFO_TYPE => {
                for field in Fields::new(value.bytes()?) {
                    let (number, value) = field?;
                    if number == TYPE_TENSOR {
                        decode_tensor_type(value.bytes()?, &mut info)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

fn decode_tensor_type(bytes: &[u8], info: &mut TensorInfo) -> Result<(), String> {
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            TENSOR_TYPE_ELEM => info.element_type = Some(ElementType(value.varint()? as i32)),
            TENSOR_TYPE_SHAPE => {
                let mut dims = Vec::new();
                for field in Fields::new(value.bytes()?) {
                    let (number, value) = field?;
                    if number == SHAPE_DIM {
                        dims.push(decode_dim(value.bytes()?)?);
                    }
                }
                info.shape = Some(dims);
            }
            _ => {}
        }
    }
    Ok(())
}

fn decode_dim(bytes: &[u8]) -> Result<Dim, String> {
    let mut dim = Dim::Unknown;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            DIM_VALUE => dim = Dim::Fixed(value.varint()? as i64),
            DIM_PARAM => dim = Dim::Symbolic(value.string()?),
            _ => {}
        }
    }
    Ok(dim)
}

/// A field's value on the wire.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Value<'a> {
    fn bytes(self) -> Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err("a message field has the wrong wire type".into()),
        }
    }

    fn string(self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "a name is not UTF-8".into())
    }

    fn varint(self) -> Result<u64, String> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err("an integer field has the wrong wire type".into()),
        }
    }
}

/// Iterates over the fields of one protobuf message.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or("the data ends inside a number")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number is too long".into())
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or("the data ends inside a field (truncated file?)")?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), String> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| "a field number is too large")?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.take(8).map(|_| Value::Fixed)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "a length is too large")?;
                Value::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Value::Fixed)?,
            wire => return Err(format!("unexpected wire type {wire}")),
        };
        if number == 0 {
            return Err("field number 0".into());
        }
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let item = self.field();
        if item.is_err() {
            self.pos = self.buf.len();
        }
        Some(item)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-encoded model: input `x` [batch, 3], one Relu node `act` -> `y`, output `y`,
    /// and an initializer `w` that is also listed as an input (as older exporters do).
    fn tiny_model() -> Vec<u8> {
        let value_info = |name: &str, dims: &[Dim]| {
            let mut shape = Vec::new();
            for d in dims {
                let mut dim = Vec::new();
                match d {
                    Dim::Fixed(n) => {
                        put_varint(&mut dim, u64::from(DIM_VALUE) << 3);
                        put_varint(&mut dim, *n as u64);
                    }
                    Dim::Symbolic(s) => put_bytes(&mut dim, DIM_PARAM, s.as_bytes()),
                    Dim::Unknown => {}
                }
                put_bytes(&mut shape, SHAPE_DIM, &dim);
            }
            let mut tensor = Vec::new();
            put_varint(&mut tensor, u64::from(TENSOR_TYPE_ELEM) << 3);
            put_varint(&mut tensor, 1);
            put_bytes(&mut tensor, TENSOR_TYPE_SHAPE, &shape);
            let mut ty = Vec::new();
            put_bytes(&mut ty, TYPE_TENSOR, &tensor);
            let mut vi = Vec::new();
            put_bytes(&mut vi, VALUE_INFO_NAME, name.as_bytes());
            put_bytes(&mut vi, VALUE_INFO_TYPE, &ty);
            vi
        };
        let mut node = Vec::new();
        put_bytes(&mut node, 1, b"x");
        put_bytes(&mut node, NODE_OUTPUT, b"y");
        put_bytes(&mut node, NODE_NAME, b"act");
        put_bytes(&mut node, NODE_OP_TYPE, b"Relu");
        let mut init = Vec::new();
        put_bytes(&mut init, TENSOR_NAME, b"w");
        let mut graph = Vec::new();
        put_bytes(&mut graph, GRAPH_NODE, &node);
        put_bytes(&mut graph, GRAPH_INITIALIZER, &init);
        let batch = Dim::Symbolic("batch".into());
        put_bytes(
            &mut graph,
            GRAPH_INPUT,
            &value_info("x", &[batch.clone(), Dim::Fixed(3)]),
        );
        put_bytes(&mut graph, GRAPH_INPUT, &value_info("w", &[Dim::Fixed(3)]));
        put_bytes(
            &mut graph,
            GRAPH_OUTPUT,
            &value_info("y", &[batch, Dim::Fixed(3)]),
        );
        let mut model = Vec::new();
        put_varint(&mut model, 1 << 3); // ir_version
        put_varint(&mut model, 8);
        put_bytes(&mut model, MODEL_GRAPH, &graph);
        model
    }

    #[test]
    fn decodes_nodes_inputs_and_outputs() {
        let g = decode_model(&tiny_model()).unwrap();
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.nodes[0].op_type, "Relu");
        assert_eq!(g.nodes[0].outputs, vec!["y"]);
        assert_eq!(g.inputs.len(), 1, "the initializer is not an input");
        assert_eq!(g.inputs[0].name, "x");
        assert_eq!(g.inputs[0].element_type, Some(ElementType::FLOAT));
        assert_eq!(
            g.inputs[0].shape,
            Some(vec![Dim::Symbolic("batch".into()), Dim::Fixed(3)])
        );
        assert!(g.is_output("y"));
    }

    #[test]
    fn appended_outputs_merge_into_the_graph() {
        let mut model = ModelFile {
            path: PathBuf::from("tiny.onnx"),
            bytes: tiny_model(),
            graph: decode_model(&tiny_model()).unwrap(),
            sha256: String::new(),
        };
        let g = model.exposing(["x", "y", "x"], &[], |bytes| decode_model(bytes).unwrap());
        assert_eq!(model.bytes, tiny_model(), "the bytes are cut back");
        let names: Vec<_> = g.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["y", "x"],
            "y was already an output; x is added once"
        );
        assert_eq!(g.nodes.len(), 1);
    }

    #[test]
    fn truncated_and_garbage_bytes_are_errors() {
        let model = tiny_model();
        let err = decode_model(&model[..model.len() - 5]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let err = decode_model(b"<html><body>404</body></html>").unwrap_err();
        assert!(!err.is_empty());
        assert_eq!(decode_model(&[]).unwrap_err(), "it has no graph");
    }

    #[test]
    fn closest_names_rank_by_edit_distance() {
        let g = Graph {
            nodes: ["block1_conv1", "block1_conv2", "block5_conv3"]
                .iter()
                .map(|n| Node {
                    name: String::new(),
                    op_type: "Relu".into(),
                    inputs: Vec::new(),
                    outputs: vec![n.to_string()],
                    ints: Vec::new(),
                })
                .collect(),
            ..Graph::default()
        };
        assert_eq!(
            g.closest_tensors("block1_conv", 2),
            ["block1_conv1", "block1_conv2"]
        );
    }
}
