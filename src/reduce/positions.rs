//! Positions: which places of a layer's maps (a transformer's tokens, a CNN map's pixels) go to
//! the `positions` table with their vectors across channels, and the seeded draw of N of them.

use crate::config::Positions;
use crate::config::Tokens;

/// The places of one layer's tensor that are written, and how each is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Places {
    /// Which.
    pub positions: Positions,
    /// The token layout, for a transformer's tokens.
    pub tokens: Option<Tokens>,
    /// The grid's (or map's) width.
    pub width: usize,
    /// The positions on the grid (or map): height x width.
    pub cells: usize,
}

impl Places {
    /// The positions of image `image_id` in layer `layer`, ascending: indices along the token
    /// axis (prefix tokens first), or `y * width + x` of a map.
    pub fn of(&self, image_id: u64, layer: &str) -> Vec<u32> {
        let prefix = self.tokens.map_or(0, |t| t.prefix);
        let range = |start: usize, end: usize| (start as u32..end as u32).collect();
        match self.positions {
            Positions::None => Vec::new(),
            Positions::Prefix => range(0, prefix),
            Positions::All => range(0, prefix + self.cells),
            Positions::Sample(n) => {
                let mut drawn = sample(self.cells, n as usize, image_id, layer);
                drawn.iter_mut().for_each(|p| *p += prefix as u32);
                drawn
            }
        }
    }

    /// The row and column of position `position` on the grid; `None` for a prefix token.
    pub fn yx(&self, position: u32) -> Option<(u32, u32)> {
        let prefix = self.tokens.map_or(0, |t| t.prefix) as u32;
        let cell = position.checked_sub(prefix)?;
        let width = self.width as u32;
        Some((cell / width, cell % width))
    }
}

/// `n` of `cells` positions drawn without replacement, ascending: a partial Fisher-Yates
/// shuffle driven by SplitMix64 seeded with [`seed`]`(image_id, layer)`, so any process draws
/// the same ones for the same image and layer. All of them when `n >= cells`.
pub fn sample(cells: usize, n: usize, image_id: u64, layer: &str) -> Vec<u32> {
    let mut order = shuffled(cells, n, seed(image_id, layer));
    order.sort_unstable();
    order
}

/// The first `n` of `0..len` after a Fisher-Yates shuffle driven by SplitMix64 from `state`
/// (all of them, in shuffled order, when `n >= len`).
pub fn shuffled(len: usize, n: usize, mut state: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    let n = n.min(len);
    for i in 0..n {
        let left = (len - i) as u64;
        let j = i + ((u128::from(splitmix64(&mut state)) * u128::from(left)) >> 64) as usize;
        order.swap(i, j);
    }
    order.truncate(n);
    order
}

/// The generator's seed: the FNV-1a hash of the layer's name (UTF-8), then of the image id's
/// 8 little-endian bytes.
pub fn seed(image_id: u64, layer: &str) -> u64 {
    layer
        .as_bytes()
        .iter()
        .chain(&image_id.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// The next value of SplitMix64.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_distinct_ascending_seeded_and_spread() {
        let a = sample(256, 16, 7, "block11");
        assert_eq!(a, sample(256, 16, 7, "block11"), "the same draw each time");
        assert_eq!(a.len(), 16);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a[15] < 256);
        assert_ne!(a, sample(256, 16, 8, "block11"), "another image");
        assert_ne!(a, sample(256, 16, 7, "block10"), "another layer");
        assert_eq!(sample(5, 9, 1, "l"), [0, 1, 2, 3, 4], "all of them");
        // Every cell is drawn about equally often over many images.
        let mut counts = [0u32; 16];
        for image in 0..4000 {
            sample(16, 4, image, "l")
                .iter()
                .for_each(|&c| counts[c as usize] += 1);
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn places_name_prefix_tokens_and_grid_cells() {
        let tokens = Some(Tokens {
            prefix: 1,
            grid: [2, 3],
        });
        let places = |positions| Places {
            positions,
            tokens,
            width: 3,
            cells: 6,
        };
        assert_eq!(places(Positions::Prefix).of(0, "l"), [0]);
        assert_eq!(places(Positions::All).of(0, "l"), [0, 1, 2, 3, 4, 5, 6]);
        let drawn = places(Positions::Sample(2)).of(3, "l");
        assert_eq!(
            drawn,
            sample(6, 2, 3, "l")
                .iter()
                .map(|p| p + 1)
                .collect::<Vec<_>>()
        );
        let p = places(Positions::All);
        assert_eq!(p.yx(0), None);
        assert_eq!((p.yx(1), p.yx(6)), (Some((0, 0)), Some((1, 2))));
    }
}
