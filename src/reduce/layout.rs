//! How a layer's tensor is cut into maps: its channel axis and, for a transformer's tokens, the
//! grid over the image they lie on. Decided once per layer from the tensor's real shape (the
//! probe run's), the config and what the plan found in the model.

use crate::config::Tokens;
use crate::error::PlanError;
use crate::plan::{GridHints, LayerSpec};

/// The most prefix tokens (class, registers, distillation) inference considers.
pub const MAX_PREFIX: usize = 8;

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
}

/// What inference found for a token count.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Inference {
    /// One grid.
    Grid(Tokens),
    /// Not a token grid (or the model has no patch convolution): the default layout.
    None,
    /// Several grids fit.
    Ambiguous(Vec<Tokens>),
}

/// The token layout of `count` tokens: only for a model with a patch convolution (a vision
/// transformer). Its own grid (input size / patch size) with up to [`MAX_PREFIX`] prefix tokens
/// wins; otherwise every grid of at least 2 x 2 whose cells divide the input evenly, with the
/// input's aspect, and a prefix of up to [`MAX_PREFIX`], is a candidate (after a patch merge,
/// as in Swin, the grid is coarser than the patches').
fn infer(count: usize, hints: GridHints) -> Inference {
    let Some(patch) = hints.patch else {
        return Inference::None;
    };
    let [height, width] = hints.input;
    let own = [height / patch[0], width / patch[1]];
    if let Some(prefix) = count.checked_sub(own[0] * own[1]) {
        if prefix <= MAX_PREFIX && own[0] * own[1] > 0 {
            return Inference::Grid(Tokens { prefix, grid: own });
        }
    }
    let found: Vec<Tokens> = (0..=MAX_PREFIX.min(count))
        .flat_map(|prefix| {
            grids(count - prefix, hints.input).map(move |grid| Tokens { prefix, grid })
        })
        .collect();
    match found.len() {
        0 => Inference::None,
        1 => Inference::Grid(found[0]),
        _ => Inference::Ambiguous(found),
    }
}

/// The grids of `cells` cells, at least 2 x 2, with the aspect of an input of `[height, width]`
/// and cells that divide it evenly.
fn grids(cells: usize, [height, width]: [usize; 2]) -> impl Iterator<Item = [usize; 2]> {
    (2..=height)
        .filter(move |gh| cells % gh == 0 && height % gh == 0)
        .map(move |gh| [gh, cells / gh])
        .filter(move |&[gh, gw]| gw >= 2 && width % gw == 0 && gh * width == gw * height)
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

fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(input: [usize; 2], patch: Option<[usize; 2]>) -> GridHints {
        GridHints { input, patch }
    }

    fn grid(prefix: usize, grid: [usize; 2]) -> Inference {
        Inference::Grid(Tokens { prefix, grid })
    }

    #[test]
    fn the_grids_of_real_vision_transformers_are_inferred() {
        // ViT-B/16 (class token), ViT-S/14 at 224, DINOv2 with 4 registers, SigLIP (no class
        // token), CLIP ViT-B/32, DINOv2 at 518, a non-square input.
        let cases = [
            (197, [224, 224], [16, 16], grid(1, [14, 14])),
            (257, [224, 224], [14, 14], grid(1, [16, 16])),
            (261, [224, 224], [14, 14], grid(5, [16, 16])),
            (196, [224, 224], [16, 16], grid(0, [14, 14])),
            (50, [224, 224], [32, 32], grid(1, [7, 7])),
            (1370, [518, 518], [14, 14], grid(1, [37, 37])),
            (1 + 12 * 20, [192, 320], [16, 16], grid(1, [12, 20])),
            // Swin's later stages: patches merged into a coarser grid.
            (784, [224, 224], [4, 4], grid(0, [28, 28])),
            (49, [224, 224], [4, 4], grid(0, [7, 7])),
        ];
        for (count, input, patch, want) in cases {
            assert_eq!(
                infer(count, hints(input, Some(patch))),
                want,
                "{count} {input:?}"
            );
        }
    }

    #[test]
    fn no_patch_convolution_or_no_grid_keeps_the_default_and_two_grids_are_ambiguous() {
        assert_eq!(infer(197, hints([224, 224], None)), Inference::None);
        // 7 tokens over 8 x 8: no grid of at least 2 x 2 with at most 8 prefix tokens but 2 x 2
        // + 3; 16 tokens over 12 x 12 with patches of 5 (no own grid): 4 x 4, or 3 x 3 + 7.
        assert_eq!(infer(7, hints([8, 8], Some([2, 2]))), grid(3, [2, 2]));
        assert_eq!(infer(3, hints([8, 8], Some([2, 2]))), Inference::None);
        assert_eq!(
            infer(16, hints([12, 12], Some([5, 5]))),
            Inference::Ambiguous(vec![
                Tokens {
                    prefix: 0,
                    grid: [4, 4]
                },
                Tokens {
                    prefix: 7,
                    grid: [3, 3]
                }
            ])
        );
    }
}
