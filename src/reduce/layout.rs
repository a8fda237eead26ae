//! How a layer's tensor is cut into maps: its channel axis and, for a transformer's tokens, the
//! grid over the image they lie on. Decided once per layer from the tensor's real shape (the
//! probe run's), the config and what the plan found in the model.

use crate::config::Tokens;
use crate::error::PlanError;
use crate::model::tokens::{infer, Inference};
use crate::plan::{GridHints, LayerSpec};
use crate::reduce::dims;

/// How a layer of rank 3 or more becomes maps, batch first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The channel axis of the batch-first tensor.
    pub channel_axis: usize,
    /// For a transformer's tokens: the prefix left out and the grid the rest lie on.
    pub tokens: Option<Tokens>,
    /// How the layout was decided.
    pub decided: Decided,
}

/// How a layer's layout was decided, as `run.json` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decided {
    /// As configured (`channel_axis` or `tokens`).
    Given,
    /// Inferred: a token grid from the token count, the input's size and the patch size.
    Inferred,
    /// The default channel axis, 1: no token grid was asked for or found.
    Default,
}

impl Layout {
    /// The layout of `layer`, whose tensor has per-image shape `shape` (batch removed, rank
    /// 2 or more with the batch), or the config error saying what to set.
    pub fn of(layer: &LayerSpec, shape: &[usize]) -> Result<Layout, PlanError> {
        let key = |field: &str| format!("layers[{}].{field}", layer.position);
        let plain = |channel_axis, decided| Layout {
            channel_axis,
            tokens: None,
            decided,
        };
        let grid = |tokens, decided| Layout {
            channel_axis: 2,
            tokens: Some(tokens),
            decided,
        };
        match (layer.tokens, layer.channel_axis, shape) {
            (Some(tokens), _, &[count, _]) if count == tokens.count() => {
                Ok(grid(tokens, Decided::Given))
            }
            (Some(tokens), _, _) => Err(PlanError::invalid(
                key("tokens"),
                format!(
                    "says {} tokens ({tokens}), but tensor `{}` has shape [N, {}]; {}",
                    tokens.count(),
                    layer.tensor,
                    dims(shape),
                    match shape {
                        [count, _] => override_hint(*count, layer.grid_hints),
                        _ => "`tokens` applies to a rank-3 tensor [N, tokens, dim]".to_owned(),
                    }
                ),
            )),
            (None, Some(axis), _) => Ok(plain(axis, Decided::Given)),
            (None, None, &[count, _]) => match infer(count, layer.grid_hints) {
                Inference::Grid(tokens) => Ok(grid(tokens, Decided::Inferred)),
                Inference::None => Ok(plain(1, Decided::Default)),
                Inference::Ambiguous(found) => Err(PlanError::invalid(
                    key("tokens"),
                    format!(
                        "cannot be inferred for tensor `{}` [N, {}]: its {count} tokens lie as \
                         {}; say which, e.g.\n  tokens = {{ prefix = {}, grid = [{}, {}] }}",
                        layer.tensor,
                        dims(shape),
                        found
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", or "),
                        found[0].prefix,
                        found[0].grid[0],
                        found[0].grid[1],
                    ),
                )),
            },
            (None, None, _) => Ok(plain(1, Decided::Default)),
        }
    }

    /// How its tokens lie, for messages: "4 x 4 patches + 1 prefix token", or "not a token
    /// grid".
    pub fn describe_tokens(&self) -> String {
        match self.tokens {
            Some(tokens) => tokens.to_string(),
            None => "not a token grid".to_owned(),
        }
    }
}

/// The override to write for `count` tokens, as far as the hints go.
fn override_hint(count: usize, hints: GridHints) -> String {
    match infer(count, hints) {
        Inference::Grid(t) => format!(
            "they lie as {t}: tokens = {{ prefix = {}, grid = [{}, {}] }}",
            t.prefix, t.grid[0], t.grid[1]
        ),
        _ => "set `prefix` and `grid` so that prefix + height x width is the token count".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Keep, MapDtype};

    fn layer(input: [usize; 2], patch: [usize; 2]) -> LayerSpec {
        LayerSpec {
            name: "b".into(),
            tensor: "b".into(),
            selector: "b".into(),
            position: 3,
            keep: Keep::default(),
            channel_axis: None,
            tokens: None,
            batch_axis: None,
            grid_hints: GridHints {
                input,
                patch: Some(patch),
            },
            positions: None,
            positions_dtype: MapDtype::Float16,
            top: None,
            pool: 1,
        }
    }

    #[test]
    fn an_ambiguous_token_count_is_refused_with_the_override_to_write() {
        // 16 tokens over 12 x 12 with patches of 5: 4 x 4, or 3 x 3 and 7 prefix tokens.
        let err = Layout::of(&layer([12, 12], [5, 5]), &[16, 8]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: `layers[3].tokens` cannot be inferred for tensor `b` [N, 16, 8]: its 16 \
             tokens lie as 4 x 4 patches, or 3 x 3 patches + 7 prefix tokens; \
             say which, e.g.\n  tokens = { prefix = 0, grid = [4, 4] }"
        );
        let inferred = Layout::of(&layer([8, 8], [2, 2]), &[17, 8]).unwrap();
        assert_eq!(inferred.decided, Decided::Inferred);
        let strips = Layout::of(&layer([8, 8], [2, 2]), &[3, 8]).unwrap();
        assert_eq!((strips.channel_axis, strips.decided), (1, Decided::Default));
    }
}
