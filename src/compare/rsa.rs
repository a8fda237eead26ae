//! Representational similarity analysis on a sample of images: per layer the representational
//! dissimilarity matrix (1 - the Pearson correlation of two images' features), and between
//! layers the Spearman correlation of their matrices' upper triangles.

use std::collections::BinaryHeap;

use ndarray::{s, ArrayView2};
use sha2::{Digest, Sha256};

/// Draws the RSA sample while the images stream by: the `n` whose (`source`, `path`) hash
/// lowest under the seed, so that the sample depends on the images alone (not on their order,
/// the runs or the shards). Holds `n` images.
#[derive(Debug, Clone)]
pub struct Sampler {
    n: usize,
    seed: u64,
    /// The lowest hashes so far, the highest on top: (hash, place, key).
    kept: BinaryHeap<(u64, usize, (String, String))>,
}

impl Sampler {
    /// A sample of `n` images drawn by `seed`.
    pub fn new(n: usize, seed: u64) -> Sampler {
        Sampler {
            n,
            seed,
            kept: BinaryHeap::with_capacity(n + 1),
        }
    }

    /// Offers the compared image at `place` (its order among the compared images).
    pub fn offer(&mut self, place: usize, source: &str, path: &str) {
        let mut hash = Sha256::new();
        hash.update(self.seed.to_le_bytes());
        hash.update((source.len() as u64).to_le_bytes());
        hash.update(source.as_bytes());
        hash.update(path.as_bytes());
        let digest = hash.finalize();
        let drawn = u64::from_le_bytes(digest[..8].try_into().expect("32 bytes"));
        if self.kept.len() < self.n || self.kept.peek().is_some_and(|top| drawn < top.0) {
            self.kept
                .push((drawn, place, (source.to_owned(), path.to_owned())));
            if self.kept.len() > self.n {
                self.kept.pop();
            }
        }
    }

    /// The sample's places, ascending, and their keys.
    pub fn finish(self) -> (Vec<usize>, Vec<(String, String)>) {
        let mut chosen: Vec<(usize, (String, String))> = self
            .kept
            .into_iter()
            .map(|(_, place, key)| (place, key))
            .collect();
        chosen.sort_by_key(|c| c.0);
        chosen.into_iter().unzip()
    }
}

/// The upper triangle (row by row, above the diagonal) of the dissimilarity matrix of the
/// rows of `x` (images x features): 1 - their Pearson correlation; NaN for an image whose
/// features do not vary.
pub fn rdm(x: ArrayView2<'_, f64>) -> Vec<f64> {
    let mut z = x.to_owned();
    for mut row in z.rows_mut() {
        if row.iter().all(|v| *v == row[0]) {
            // Its correlation with anything is undefined (the rounding of its mean would
            // otherwise make one up).
            row.fill(f64::NAN);
            continue;
        }
        let mean = row.mean().unwrap_or(0.0);
        row -= mean;
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
    let corr = z.dot(&z.t());
    let n = x.nrows();
    let mut upper = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        upper.extend(corr.slice(s![i, i + 1..]).iter().map(|c| 1.0 - c));
    }
    upper
}

/// The ranks of `values` (1 for the smallest), ties given their mean rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// The Pearson correlation of two equally long series; NaN where either does not vary or
/// holds a NaN.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    ab / (aa * bb).sqrt()
}

/// Dissimilarities are ranked at this resolution, so that values equal but for the rounding of
/// their computation tie (a layer of 2 features has every correlation ±1: without it, noise of
/// 1e-16 would order its zeros). Features are f32, good to about 1e-7.
pub const RESOLUTION: f64 = 1e-9;

/// A layer's dissimilarities, ranked once for every Spearman correlation it takes part in.
#[derive(Debug, Clone)]
pub struct Ranked {
    ranks: Vec<f64>,
    /// Whether its matrix holds a NaN (an image whose features do not vary).
    undefined: bool,
}

impl Ranked {
    /// Ranks the dissimilarity matrix of a layer's sampled features (images x features),
    /// its values rounded to [`RESOLUTION`] first.
    pub fn of(x: ArrayView2<'_, f64>) -> Ranked {
        let upper: Vec<f64> = (rdm(x).into_iter())
            .map(|v| (v / RESOLUTION).round() * RESOLUTION)
            .collect();
        Ranked {
            undefined: upper.iter().any(|v| v.is_nan()),
            ranks: ranks(&upper),
        }
    }

    /// The Spearman correlation of two layers' matrices; NaN when either is undefined.
    pub fn spearman(&self, other: &Ranked) -> f64 {
        match self.undefined || other.undefined {
            true => f64::NAN,
            false => pearson(&self.ranks, &other.ranks),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn ranks_give_ties_their_mean_rank() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn the_rdm_is_one_minus_the_correlation() {
        let x = array![[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0]];
        let upper = rdm(x.view());
        let expected = [0.0, 2.0, 2.0];
        for (u, e) in upper.iter().zip(expected) {
            assert!((u - e).abs() < 1e-12, "{upper:?}");
        }
    }

    #[test]
    fn spearman_is_the_correlation_of_ranks_and_nan_when_undefined() {
        let a = Ranked::of(array![[1.0, 2.0, 3.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0]].view());
        assert!((a.spearman(&a) - 1.0).abs() < 1e-12);
        let flat = Ranked::of(array![[0.1, 0.1, 0.1], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0]].view());
        assert!(flat.spearman(&a).is_nan());
    }

    #[test]
    fn the_sample_depends_on_the_keys_not_their_order() {
        let draw = |n: usize, seed: u64, reversed: bool| {
            let mut sampler = Sampler::new(n, seed);
            for i in 0..100 {
                let i = if reversed { 99 - i } else { i };
                sampler.offer(i, "", &format!("{i}.jpg"));
            }
            sampler.finish()
        };
        let (chosen, keys) = draw(10, 7, false);
        assert_eq!(chosen.len(), 10);
        assert_eq!(keys[0].1, format!("{}.jpg", chosen[0]));
        assert_eq!(
            draw(10, 7, true).0,
            chosen,
            "the same images in another order"
        );
        assert_ne!(draw(10, 8, false).0, chosen, "another seed, another sample");
        assert_eq!(draw(1000, 7, false).0.len(), 100);
    }
}
