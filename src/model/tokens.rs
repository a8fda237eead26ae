//! The token layout of a vision transformer's tensors: how `[N, tokens, dim]` lies over the
//! image, inferred from the token count, the input's size and the patch convolution.

use crate::config::Tokens;
use crate::plan::GridHints;

/// The most prefix tokens (class, registers, distillation) inference considers.
pub const MAX_PREFIX: usize = 8;

/// What inference found for a token count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inference {
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
pub fn infer(count: usize, hints: GridHints) -> Inference {
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
pub fn grids(cells: usize, [height, width]: [usize; 2]) -> impl Iterator<Item = [usize; 2]> {
    (2..=height)
        .filter(move |&gh| cells.is_multiple_of(gh) && height.is_multiple_of(gh))
        .map(move |gh| [gh, cells / gh])
        .filter(move |&[gh, gw]| gw >= 2 && width.is_multiple_of(gw) && gh * width == gw * height)
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
        // Fewer tokens than the patches' own 4 x 4 grid: 7 fit one coarser grid (2 x 2 and 3
        // prefix tokens), 3 fit none of at least 2 x 2. 16 tokens over 12 x 12 with patches of
        // 5 (no own grid that fits): 4 x 4, or 3 x 3 and 7 prefix tokens.
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
