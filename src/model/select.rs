//! Layer selectors: how a `[[layers]] tensor = ...` entry picks tensors of the graph.
//!
//! - an exact tensor name;
//! - `op:Conv#0`, `op:Relu#-1`: the first (or, counting from the end, the last) output of a
//!   node of that operator type, in graph order;
//! - a glob such as `block*_conv*`, which picks every matching tensor.

use crate::model::Extractable;

/// A parsed selector.
#[derive(Debug, Clone)]
pub enum Selector {
    /// One tensor, by its name.
    Exact(String),
    /// The `nth` tensor produced by a node of type `op` (negative: from the end).
    Op {
        /// Operator type, e.g. `Conv`.
        op: String,
        /// Position among that operator's outputs.
        nth: i64,
    },
    /// Every tensor whose name matches.
    Glob(glob::Pattern),
}

impl Selector {
    /// Parses a selector; the error says how a selector is written.
    pub fn parse(text: &str) -> Result<Selector, String> {
        if let Some(rest) = text.strip_prefix("op:") {
            let (op, nth) = rest.split_once('#').ok_or_else(|| {
                format!("`{text}` needs a position: `op:{rest}#0` (the first) or `op:{rest}#-1` (the last)")
            })?;
            let nth = nth.parse().map_err(|_| {
                format!("`{text}`: the position after `#` must be a whole number such as 0 or -1")
            })?;
            if op.is_empty() {
                return Err(format!("`{text}`: name an operator type, e.g. `op:Conv#0`"));
            }
            return Ok(Selector::Op {
                op: op.to_owned(),
                nth,
            });
        }
        if text.contains(['*', '?', '[']) {
            return glob::Pattern::new(text)
                .map(Selector::Glob)
                .map_err(|e| format!("`{text}` is not a valid glob: {e}"));
        }
        Ok(Selector::Exact(text.to_owned()))
    }

    /// Whether the selector may pick several tensors.
    pub fn is_glob(&self) -> bool {
        matches!(self, Selector::Glob(_))
    }

    /// The tensors picked, in graph order.
    pub fn select<'g>(&self, tensors: &[Extractable<'g>]) -> Vec<Extractable<'g>> {
        match self {
            Selector::Exact(name) => tensors.iter().filter(|t| t.name == name).copied().collect(),
            Selector::Glob(pattern) => tensors
                .iter()
                .filter(|t| pattern.matches(t.name))
                .copied()
                .collect(),
            Selector::Op { op, nth } => {
                // A node's first output is "its" output (MaxPool's indices, Dropout's mask are not).
                let of_op: Vec<Extractable<'g>> = tensors
                    .iter()
                    .filter(|t| {
                        &t.node.op_type == op
                            && t.node.outputs.first().map(String::as_str) == Some(t.name)
                    })
                    .copied()
                    .collect();
                let index = if *nth < 0 {
                    of_op.len() as i64 + nth
                } else {
                    *nth
                };
                usize::try_from(index)
                    .ok()
                    .and_then(|i| of_op.get(i))
                    .map(|t| vec![*t])
                    .unwrap_or_default()
            }
        }
    }
}

/// The name of a layer picked by a selector: `name` with `{tensor}` and `{index}` filled in,
/// the plain `name`, or the tensor's own name when no `name` is given.
pub fn layer_name(name: Option<&str>, tensor: &Extractable) -> String {
    match name {
        Some(template) => template
            .replace("{tensor}", tensor.name)
            .replace("{index}", &tensor.index.to_string()),
        None => tensor.name.to_owned(),
    }
}

/// Whether a layer name is a template (it names each tensor of a glob differently).
pub fn is_template(name: &str) -> bool {
    name.contains("{tensor}") || name.contains("{index}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Graph, Node};

    fn graph() -> Graph {
        let node = |name: &str, op: &str, outputs: &[&str]| Node {
            name: name.into(),
            op_type: op.into(),
            inputs: Vec::new(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            ints: Vec::new(),
        };
        Graph {
            nodes: vec![
                node("c0", "Constant", &["shape"]),
                node("b1c1", "Conv", &["block1_conv1/conv"]),
                node("b1r1", "Relu", &["block1_conv1"]),
                node("pool", "MaxPool", &["block1_pool", "block1_pool_indices"]),
                node("b2c1", "Conv", &["block2_conv1/conv"]),
                node("b2r1", "Relu", &["block2_conv1"]),
                node("fc", "MatMul", &["logits"]),
            ],
            ..Graph::default()
        }
    }

    fn names(selector: &str) -> Vec<String> {
        let g = graph();
        let tensors = g.extractable();
        Selector::parse(selector)
            .unwrap()
            .select(&tensors)
            .iter()
            .map(|t| format!("{}:{}", t.index, t.name))
            .collect()
    }

    #[test]
    fn constants_are_not_extractable_and_indices_count_the_rest() {
        assert_eq!(
            names("*"),
            [
                "0:block1_conv1/conv",
                "1:block1_conv1",
                "2:block1_pool",
                "3:block1_pool_indices",
                "4:block2_conv1/conv",
                "5:block2_conv1",
                "6:logits"
            ]
        );
    }

    #[test]
    fn op_selectors_count_from_either_end() {
        assert_eq!(names("op:Relu#0"), ["1:block1_conv1"]);
        assert_eq!(names("op:Relu#-1"), ["5:block2_conv1"]);
        assert_eq!(names("op:Conv#1"), ["4:block2_conv1/conv"]);
        assert_eq!(
            names("op:MaxPool#-1"),
            ["2:block1_pool"],
            "a node's first output only"
        );
        assert!(names("op:Relu#2").is_empty());
        assert!(names("op:Relu#-3").is_empty());
        assert!(names("op:Gemm#0").is_empty());
    }

    #[test]
    fn globs_and_exact_names() {
        assert_eq!(names("block*_conv1"), ["1:block1_conv1", "5:block2_conv1"]);
        assert_eq!(names("block?_pool"), ["2:block1_pool"]);
        assert_eq!(names("logits"), ["6:logits"]);
        assert!(names("shape").is_empty(), "constants cannot be selected");
    }

    #[test]
    fn malformed_selectors_say_how_to_write_them() {
        let err = Selector::parse("op:Relu").unwrap_err();
        assert_eq!(
            err,
            "`op:Relu` needs a position: `op:Relu#0` (the first) or `op:Relu#-1` (the last)"
        );
        let err = Selector::parse("op:Relu#last").unwrap_err();
        assert!(
            err.contains("must be a whole number such as 0 or -1"),
            "{err}"
        );
        let err = Selector::parse("block[1").unwrap_err();
        assert!(err.starts_with("`block[1` is not a valid glob"), "{err}");
    }

    #[test]
    fn names_fill_templates() {
        let g = graph();
        let tensors = g.extractable();
        let t = &tensors[5];
        assert_eq!(layer_name(Some("{index}-{tensor}"), t), "5-block2_conv1");
        assert_eq!(layer_name(Some("last"), t), "last");
        assert_eq!(layer_name(None, t), "block2_conv1");
        assert!(is_template("{tensor}") && !is_template("last"));
    }
}
