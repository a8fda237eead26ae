//! Model introspection for `layerwise layers`: every tensor a user can extract, in graph order,
//! with its producing operator, element type and shape (declared, or real from a probe run).

use std::path::Path;

use serde::Serialize;

use crate::error::PlanError;
use crate::model::runtime::{self, Runtime, SearchPath};
use crate::model::session::{self, element_name};
use crate::model::tokens::{self, Inference};
use crate::model::{ModelFile, TensorInfo};
use crate::plan::InputType;
use crate::plan::{self, GridHints, ModelSpec};

/// One row of the listing.
#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    /// Position among the extractable tensors (what `{index}` and `op:X#n` count); none for
    /// graph inputs.
    pub index: Option<usize>,
    /// Tensor name.
    pub name: String,
    /// Producing operator, or `input` for a graph input.
    pub op: String,
    /// Producing node's name.
    pub node: String,
    /// Element type, e.g. `float32` (`?` when unknown).
    pub element_type: String,
    /// Shape, e.g. `[1, 64, 224, 224]`; real when probed, as declared otherwise.
    pub shape: String,
    /// For a probed transformer tensor whose tokens lie as a grid over the image, how: "384
    /// channels over 16 x 16 patches + 1 prefix token".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<String>,
    /// Whether it is a graph output.
    pub output: bool,
}

/// What `layerwise layers` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The model file.
    pub model: String,
    /// The probe input's shape, when shapes come from a probe run.
    pub probe_input: Option<Vec<usize>>,
    /// Graph inputs.
    pub inputs: Vec<TensorRow>,
    /// Extractable tensors, in graph order.
    pub tensors: Vec<TensorRow>,
}

/// How to make the probe input.
#[derive(Debug, Clone)]
pub struct ProbeInput {
    /// The graph input fed.
    pub name: String,
    /// Its shape, batch included.
    pub shape: Vec<usize>,
    /// Its element type.
    pub input_type: InputType,
}

impl ProbeInput {
    /// The probe input of a model's single input with a static shape (a symbolic batch is 1).
    pub fn from_model(model: &ModelFile) -> Result<ProbeInput, PlanError> {
        let error = |problem: String| PlanError::Model {
            path: model.path.clone(),
            problem,
        };
        let [input] = model.graph.inputs.as_slice() else {
            return Err(error(format!(
                "has {} inputs; to probe shapes, give a config instead (layerwise layers \
                 CONFIG.toml), whose `model.input` names the image input",
                model.graph.inputs.len()
            )));
        };
        let shape = input.shape.as_deref().unwrap_or_default();
        let mut dims = Vec::with_capacity(shape.len());
        for (axis, dim) in shape.iter().enumerate() {
            match (axis, dim.fixed()) {
                (_, Some(n)) => dims.push(n),
                (0, None) => dims.push(1),
                _ => {
                    return Err(error(format!(
                        "input `{}` has shape {}, which is not fixed; to probe shapes, give a \
                         config (layerwise layers CONFIG.toml) whose `preprocess.size` sets it",
                        input.name,
                        plan::shape_text(input.shape.as_deref())
                    )))
                }
            }
        }
        let input_type = match input.element_type {
            Some(crate::model::ElementType::UINT8) => InputType::Uint8,
            _ => InputType::Float32,
        };
        Ok(ProbeInput {
            name: input.name.clone(),
            shape: dims,
            input_type,
        })
    }
}

/// Lists the tensors of `path`: an ONNX model (probed when `shapes`), or a pipeline config,
/// always probed with an input built from its preprocessing.
pub fn for_path(path: &Path, shapes: bool) -> Result<Listing, PlanError> {
    let is_config = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if is_config {
        let config = plan::read_config(path)?;
        let model = plan::read_model(&config).map_err(|e| e.in_file(path))?;
        let (spec, preprocess) =
            ModelSpec::resolve(&config, &model).map_err(|e| e.in_file(path))?;
        let probe = ProbeInput {
            name: spec.input,
            shape: preprocess
                .tensor_shape(spec.fixed_batch.unwrap_or(1))
                .to_vec(),
            input_type: preprocess.input_type,
        };
        let runtime = runtime::load(&SearchPath::standard(config.run.onnxruntime.clone()))?;
        return list(model, Some((runtime, probe)), config.run.threads);
    }
    let model = ModelFile::read(path).map_err(|problem| PlanError::Model {
        path: path.to_owned(),
        problem,
    })?;
    if !shapes {
        return list(model, None, 0);
    }
    let probe = ProbeInput::from_model(&model)?;
    let runtime = runtime::load(&SearchPath::standard(None))?;
    list(model, Some((runtime, probe)), 0)
}

/// Lists a model's tensors; with a probe input, runs the model once on zeros with every
/// tensor exposed so the shapes and types are the real ones.
pub fn list(
    mut model: ModelFile,
    probe: Option<(&Runtime, ProbeInput)>,
    threads: usize,
) -> Result<Listing, PlanError> {
    let inputs: Vec<TensorRow> = model
        .graph
        .inputs
        .iter()
        .map(|i| declared_row(None, i, "input", ""))
        .collect();
    let mut tensors: Vec<TensorRow> = model
        .graph
        .extractable()
        .iter()
        .map(|t| {
            let declared = model.graph.declared(t.name).cloned().unwrap_or(TensorInfo {
                name: t.name.to_owned(),
                element_type: None,
                shape: None,
            });
            let mut row = declared_row(Some(t.index), &declared, &t.node.op_type, &t.node.name);
            row.output = model.graph.is_output(t.name);
            row
        })
        .collect();
    let path = model.path.display().to_string();
    let Some((runtime, probe)) = probe else {
        return Ok(Listing {
            model: path,
            probe_input: None,
            inputs,
            tensors,
        });
    };
    let names: Vec<String> = tensors.iter().map(|t| t.name.clone()).collect();
    let model_path = model.path.clone();
    let mut session = session::open_session(
        runtime,
        &mut model,
        &session::Exposure::tensors(names.iter().cloned()),
        session::Execution {
            threads,
            ..Default::default()
        },
    )?;
    let probed = session::zero_input_run(
        &mut session,
        &names,
        (&probe.name, &[]),
        probe.shape.clone(),
        probe.input_type,
        |outputs| {
            names
                .iter()
                .map(|n| {
                    let dtype = outputs[n.as_str()].dtype();
                    let element = dtype
                        .tensor_type()
                        .map_or("non-tensor".into(), element_name);
                    let dims: Option<Vec<i64>> = dtype.tensor_shape().map(|s| s.to_vec());
                    (element, dims)
                })
                .collect::<Vec<_>>()
        },
    )
    .map_err(|e| PlanError::Model {
        path: model_path,
        problem: format!("the probe run on a zero input failed: {e}"),
    })?;
    let hints = grid_hints(&probe.shape, model.graph.patch_size());
    for (row, (element, dims)) in tensors.iter_mut().zip(probed) {
        row.element_type = element;
        let Some(dims) = dims else {
            row.shape = "[?]".into();
            continue;
        };
        let text: Vec<String> = dims.iter().map(i64::to_string).collect();
        row.shape = format!("[{}]", text.join(", "));
        row.tokens = hints.and_then(|hints| token_grid(&dims, probe.shape[0], hints));
    }
    Ok(Listing {
        model: path,
        probe_input: Some(probe.shape),
        inputs,
        tensors,
    })
}

/// A row's shape, its role (`input`, `output`) and how its tokens lie, if they do.
fn shape_cell(row: &TensorRow, role: &str) -> String {
    let shape = format!("{} {role}", row.shape).trim_end().to_owned();
    match &row.tokens {
        Some(tokens) => format!("{shape}  ({tokens})"),
        None => shape,
    }
}

/// What token layouts are inferred from, for a probe input `[N, 3, H, W]` or `[N, H, W, 3]`.
fn grid_hints(input: &[usize], patch: Option<[usize; 2]>) -> Option<GridHints> {
    let input = match input {
        [_, 3, h, w] => [*h, *w],
        [_, h, w, 3] => [*h, *w],
        _ => return None,
    };
    Some(GridHints { input, patch })
}

/// How a probed rank-3 tensor of shape `dims` on a batch of `batch` lies over the image, when
/// its tokens form a grid: batch first, or sequence first.
fn token_grid(dims: &[i64], batch: usize, hints: GridHints) -> Option<String> {
    let dims: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
    let (count, channels) = match dims.as_slice() {
        [b, count, channels] if *b == batch => (*count, *channels),
        [count, b, channels] if *b == batch => (*count, *channels),
        _ => return None,
    };
    match tokens::infer(count, hints) {
        Inference::Grid(tokens) => Some(format!("{channels} channels over {tokens}")),
        _ => None,
    }
}

fn declared_row(index: Option<usize>, info: &TensorInfo, op: &str, node: &str) -> TensorRow {
    TensorRow {
        index,
        name: info.name.clone(),
        op: op.to_owned(),
        node: node.to_owned(),
        element_type: info
            .element_type
            .map_or("?".into(), |t| t.name().to_owned()),
        shape: match &info.shape {
            Some(_) => plan::shape_text(info.shape.as_deref()),
            None => "?".into(),
        },
        output: false,
        tokens: None,
    }
}

impl Listing {
    /// Keeps the tensors whose names (or, `by_op`, producing operators) match a glob.
    pub fn retain_matching(&mut self, pattern: &glob::Pattern, by_op: bool) {
        self.tensors.retain(|t| match by_op {
            true => pattern.matches(&t.op),
            false => pattern.matches(&t.name),
        });
    }

    /// The listing as an aligned text table.
    pub fn to_table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .inputs
            .iter()
            .chain(&self.tensors)
            .map(|t| {
                let role = if t.index.is_none() {
                    "input"
                } else if t.output {
                    "output"
                } else {
                    ""
                };
                [
                    t.index.map_or(String::new(), |i| i.to_string()),
                    t.name.clone(),
                    t.op.clone(),
                    t.element_type.clone(),
                    shape_cell(t, role),
                ]
            })
            .collect();
        let header = ["#", "tensor", "op", "type", "shape"].map(String::from);
        let widths: Vec<usize> = (0..5)
            .map(|c| {
                rows.iter()
                    .chain([&header])
                    .map(|r| r[c].len())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in [&header].into_iter().chain(&rows) {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| match c {
                    0 => format!("{cell:>w$}", w = widths[0]),
                    4 => cell.clone(),
                    _ => format!("{cell:<w$}", w = widths[c]),
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        match &self.probe_input {
            Some(shape) => out.push_str(&format!(
                "shapes from a probe run on a zero input of shape {shape:?}\n"
            )),
            None => {
                out.push_str("shapes as declared in the file (--shapes probes the real ones)\n")
            }
        }
        out
    }
}
