//! Linear centered kernel alignment (Kornblith et al. 2019) between every pair of layers,
//! streamed: from a few sums over the images, kept in f64, both the standard (biased) estimator
//! and the debiased one (the unbiased HSIC estimator of Song et al. 2012, as Nguyen et al. 2021
//! use it) are exact, without the images x images Gram matrices. Memory is fixed by the
//! layers' widths ([`CkaSums::bytes`]), not by the number of images, and the sums of parts of a
//! run add up ([`CkaSums::merge`]).
//!
//! With `X` (n x p) and `Y` (n x q) the features of two layers, `K = X Xᵀ`, `L = Y Yᵀ`:
//! - standard: `‖Xcᵀ Yc‖² / (‖Xcᵀ Xc‖ ‖Ycᵀ Yc‖)` with `Xcᵀ Yc = Σ x yᵀ - (Σ x)(Σ y)ᵀ / n`;
//! - debiased: `HSICᵤ(K, L) / √(HSICᵤ(K, K) HSICᵤ(L, L))`, where `HSICᵤ` takes `tr(K̃ L̃)`,
//!   `1ᵀK̃1` and `1ᵀK̃L̃1` of the kernels with their diagonals zeroed, each a sum of the
//!   products `Σ x yᵀ`, the sums `Σ x`, the squared norms `‖xᵢ‖²` and `Σ x ‖y‖²`.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView2, Axis};

/// The sums over images from which the CKA of every pair of layers follows.
#[derive(Debug, Clone, PartialEq)]
pub struct CkaSums {
    /// Where each layer's features start among the concatenated ones, and one past the last.
    offsets: Vec<usize>,
    /// Images added.
    images: u64,
    /// `Σ f` over images of the concatenated features `f` (width P).
    sum: Array1<f64>,
    /// `Σ f fᵀ` (P x P), its blocks above the diagonal blocks and those (each layer with a
    /// later one or itself); the rest stays 0.
    cross: Array2<f64>,
    /// `Σ f qᵀ` (P x layers), `q` the squared norms of an image's features per layer.
    by_norm: Array2<f64>,
    /// `Σ q qᵀ` (layers x layers).
    norms: Array2<f64>,
}

impl CkaSums {
    /// Empty sums for layers of these feature widths.
    pub fn new(widths: &[usize]) -> CkaSums {
        let mut offsets = vec![0];
        for w in widths {
            offsets.push(offsets.last().copied().unwrap_or(0) + w);
        }
        let (p, layers) = (offsets[widths.len()], widths.len());
        CkaSums {
            offsets,
            images: 0,
            sum: Array1::zeros(p),
            cross: Array2::zeros((p, p)),
            by_norm: Array2::zeros((p, layers)),
            norms: Array2::zeros((layers, layers)),
        }
    }

    /// The bytes the sums of layers of these widths take: `8 (P² + P (layers + 1) +
    /// layers²)`, P the sum of the widths (VGG16's 13 conv layers, 4,224 channels: 143 MB).
    pub fn bytes(widths: &[usize]) -> usize {
        let (p, l) = (widths.iter().sum::<usize>(), widths.len());
        8 * (p * p + p * (l + 1) + l * l)
    }

    /// The number of layers.
    pub fn layers(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Images added so far.
    pub fn images(&self) -> u64 {
        self.images
    }

    /// Adds a batch of images: one row each, the layers' features side by side.
    pub fn add(&mut self, batch: ArrayView2<'_, f64>) {
        assert_eq!(
            batch.ncols(),
            self.sum.len(),
            "the layers' features side by side"
        );
        let layers = self.layers();
        let mut q = Array2::<f64>::zeros((batch.nrows(), layers));
        for l in 0..layers {
            let block = batch.slice(s![.., self.offsets[l]..self.offsets[l + 1]]);
            let norms = block.map_axis(Axis(1), |row| row.dot(&row));
            q.column_mut(l).assign(&norms);
        }
        self.images += batch.nrows() as u64;
        self.sum += &batch.sum_axis(Axis(0));
        // Added in place (C = 1·AᵀB + 1·C): no P x P product allocated per batch.
        // Only the blocks of the upper triangle (layer a with layer b >= a): the lower ones
        // are their transposes (`block`), so half the products.
        for a in 0..layers {
            let left = batch.slice(s![.., self.range(a)]);
            for b in a..layers {
                let (ra, rb) = (self.range(a), self.range(b));
                let right = batch.slice(s![.., rb.clone()]);
                let mut block = self.cross.slice_mut(s![ra, rb]);
                general_mat_mul(1.0, &left.t(), &right, 1.0, &mut block);
            }
        }
        general_mat_mul(1.0, &batch.t(), &q, 1.0, &mut self.by_norm);
        general_mat_mul(1.0, &q.t(), &q, 1.0, &mut self.norms);
    }

    /// Adds the sums of other images of the same layers (another part of a run).
    pub fn merge(&mut self, other: &CkaSums) {
        assert_eq!(self.offsets, other.offsets, "sums of the same layers");
        self.images += other.images;
        self.sum += &other.sum;
        self.cross += &other.cross;
        self.by_norm += &other.by_norm;
        self.norms += &other.norms;
    }

    /// The sums' values, to store them: `Σf`, `Σffᵀ`, `Σfqᵀ` and `Σqqᵀ`, row-major, one after
    /// the other.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        (self.sum.iter().chain(self.cross.iter()))
            .chain(self.by_norm.iter())
            .chain(self.norms.iter())
            .copied()
    }

    /// Sums of layers of these widths over `images` from their [`values`](Self::values);
    /// `None` when there are not as many values as the widths need.
    pub fn from_values(widths: &[usize], images: u64, values: &[f64]) -> Option<CkaSums> {
        let mut sums = CkaSums::new(widths);
        let (p, l) = (sums.sum.len(), sums.layers());
        if values.len() != p + p * p + p * l + l * l {
            return None;
        }
        let (sum, rest) = values.split_at(p);
        let (cross, rest) = rest.split_at(p * p);
        let (by_norm, norms) = rest.split_at(p * l);
        sums.sum.assign(&ndarray::aview1(sum));
        sums.cross
            .assign(&ArrayView2::from_shape((p, p), cross).ok()?);
        sums.by_norm
            .assign(&ArrayView2::from_shape((p, l), by_norm).ok()?);
        sums.norms
            .assign(&ArrayView2::from_shape((l, l), norms).ok()?);
        sums.images = images;
        Some(sums)
    }

    /// The standard (biased) linear CKA of layers `a` and `b`; NaN for a layer whose features
    /// do not vary.
    pub fn cka(&self, a: usize, b: usize) -> f64 {
        let centered = |a: usize, b: usize| -> f64 {
            let (ra, rb) = (self.range(a), self.range(b));
            let n = self.images as f64;
            let (sa, sb) = (
                self.sum.slice(s![ra.clone()]),
                self.sum.slice(s![rb.clone()]),
            );
            let mut total = 0.0;
            for (i, row) in self.block(a, b).outer_iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    let c = v - sa[i] * sb[j] / n;
                    total += c * c;
                }
            }
            total
        };
        centered(a, b) / (centered(a, a) * centered(b, b)).sqrt()
    }

    /// The debiased linear CKA of layers `a` and `b` (needs more than 3 images); NaN for a
    /// layer whose features do not vary.
    pub fn cka_debiased(&self, a: usize, b: usize) -> f64 {
        self.hsic_unbiased(a, b) / (self.hsic_unbiased(a, a) * self.hsic_unbiased(b, b)).sqrt()
    }

    /// The unbiased HSIC estimator of the linear kernels of layers `a` and `b`.
    fn hsic_unbiased(&self, a: usize, b: usize) -> f64 {
        let n = self.images as f64;
        let (ra, rb) = (self.range(a), self.range(b));
        let (sa, sb) = (
            self.sum.slice(s![ra.clone()]),
            self.sum.slice(s![rb.clone()]),
        );
        let cross = self.block(a, b);
        let qq = self.norms[[a, b]];
        let tr_kl = cross.iter().map(|v| v * v).sum::<f64>() - qq;
        let k_sum = sa.dot(&sa) - self.trace(a);
        let l_sum = sb.dot(&sb) - self.trace(b);
        let k_l = sa.dot(&cross.dot(&sb))
            - sa.dot(&self.by_norm.slice(s![ra, b]))
            - sb.dot(&self.by_norm.slice(s![rb, a]))
            + qq;
        (tr_kl + k_sum * l_sum / ((n - 1.0) * (n - 2.0)) - 2.0 / (n - 2.0) * k_l) / (n * (n - 3.0))
    }

    /// `Σᵢ ‖xᵢ‖²` of layer `a`: the trace of its kernel.
    fn trace(&self, a: usize) -> f64 {
        self.range(a).map(|i| self.cross[[i, i]]).sum()
    }

    /// `Σ x yᵀ` of layers `a` and `b`: stored for `a <= b`, the transpose of `(b, a)` else.
    fn block(&self, a: usize, b: usize) -> ArrayView2<'_, f64> {
        match a <= b {
            true => self.cross.slice(s![self.range(a), self.range(b)]),
            false => (self.cross.slice(s![self.range(b), self.range(a)])).reversed_axes(),
        }
    }

    fn range(&self, layer: usize) -> std::ops::Range<usize> {
        self.offsets[layer]..self.offsets[layer + 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Features from a fixed linear congruential generator, with a shared part so that the
    /// layers are related.
    fn features(n: usize, widths: &[usize], seed: u64) -> Array2<f64> {
        let mut state = seed;
        let mut draw = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let p: usize = widths.iter().sum();
        let shared: Vec<f64> = (0..n).map(|_| draw()).collect();
        Array2::from_shape_fn((n, p), |(i, j)| shared[i] * (j % 3) as f64 + draw() + 2.0)
    }

    /// The Gram matrix of a layer's features.
    fn gram(x: ArrayView2<'_, f64>) -> Array2<f64> {
        x.dot(&x.t())
    }

    /// Standard CKA the textbook way: `tr(KHLH) / √(tr(KHKH) tr(LHLH))`.
    fn reference_cka(x: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>) -> f64 {
        let n = x.nrows();
        let h = Array2::<f64>::eye(n) - 1.0 / n as f64;
        let centered = |k: Array2<f64>| h.dot(&k).dot(&h);
        let (k, l) = (centered(gram(x)), centered(gram(y)));
        let hsic = |a: &Array2<f64>, b: &Array2<f64>| (a * b).sum();
        hsic(&k, &l) / (hsic(&k, &k) * hsic(&l, &l)).sqrt()
    }

    /// Song et al.'s unbiased HSIC from the Gram matrices with zeroed diagonals.
    fn reference_hsic_u(k: &Array2<f64>, l: &Array2<f64>) -> f64 {
        let n = k.nrows() as f64;
        let zero = |m: &Array2<f64>| {
            let mut m = m.clone();
            m.diag_mut().fill(0.0);
            m
        };
        let (k, l) = (zero(k), zero(l));
        let ones = Array1::<f64>::ones(k.nrows());
        let term = (&k * &l).sum() + k.sum() * l.sum() / ((n - 1.0) * (n - 2.0))
            - 2.0 / (n - 2.0) * ones.dot(&k.dot(&l)).dot(&ones);
        term / (n * (n - 3.0))
    }

    fn reference_debiased(x: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>) -> f64 {
        let (k, l) = (gram(x), gram(y));
        reference_hsic_u(&k, &l) / (reference_hsic_u(&k, &k) * reference_hsic_u(&l, &l)).sqrt()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
    }

    fn streamed(all: &Array2<f64>, widths: &[usize], batch: usize) -> CkaSums {
        let mut sums = CkaSums::new(widths);
        for chunk in all.axis_chunks_iter(Axis(0), batch) {
            sums.add(chunk);
        }
        sums
    }

    #[test]
    fn streamed_sums_give_the_gram_matrix_estimators() {
        let widths = [3, 5, 2];
        let all = features(40, &widths, 7);
        let sums = streamed(&all, &widths, 7);
        assert_eq!(sums.images(), 40);
        let layer = |l: usize| all.slice(s![.., sums.range(l)]);
        for a in 0..3 {
            for b in 0..3 {
                let (want, got) = (reference_cka(layer(a), layer(b)), sums.cka(a, b));
                assert!(close(got, want), "cka {a} {b}: {got} != {want}");
                let (want, got) = (
                    reference_debiased(layer(a), layer(b)),
                    sums.cka_debiased(a, b),
                );
                assert!(close(got, want), "debiased {a} {b}: {got} != {want}");
                assert!(close(sums.cka(a, b), sums.cka(b, a)));
                assert!(close(sums.cka_debiased(a, b), sums.cka_debiased(b, a)));
            }
            assert!(close(sums.cka(a, a), 1.0) && close(sums.cka_debiased(a, a), 1.0));
        }
    }

    #[test]
    fn parts_merged_equal_one_pass() {
        let widths = [4, 3];
        let all = features(30, &widths, 3);
        let whole = streamed(&all, &widths, 30);
        let mut merged = CkaSums::new(&widths);
        for part in [0..9, 9..21, 21..30] {
            merged.merge(&streamed(&all.slice(s![part, ..]).to_owned(), &widths, 4));
        }
        assert_eq!(merged.images(), 30);
        for (a, b) in [(0, 1), (0, 0), (1, 1)] {
            assert!(close(merged.cka(a, b), whole.cka(a, b)));
            assert!(close(merged.cka_debiased(a, b), whole.cka_debiased(a, b)));
        }
    }

    #[test]
    fn rotating_and_scaling_a_layer_changes_nothing() {
        let widths = [4, 4];
        let mut all = features(25, &widths, 11);
        let before = streamed(&all, &widths, 8);
        // A Householder reflection (orthogonal) of layer 1 and a scaling of layer 0.
        let v = Array1::from(vec![1.0, -2.0, 0.5, 3.0]);
        let outer: Array2<f64> = v
            .view()
            .insert_axis(Axis(1))
            .dot(&v.view().insert_axis(Axis(0)));
        let reflection: Array2<f64> = Array2::<f64>::eye(4) - 2.0 / v.dot(&v) * &outer;
        let rotated: Array2<f64> = all.slice(s![.., 4..8]).dot(&reflection);
        all.slice_mut(s![.., 4..8]).assign(&rotated);
        all.slice_mut(s![.., 0..4]).mapv_inplace(|x| 3.5 * x);
        let after = streamed(&all, &widths, 8);
        assert!(close(before.cka(0, 1), after.cka(0, 1)));
        assert!(close(before.cka_debiased(0, 1), after.cka_debiased(0, 1)));
    }

    #[test]
    fn the_memory_bound_is_the_sums() {
        let widths = [64, 128, 256, 512];
        let sums = CkaSums::new(&widths);
        let held = 8 * (sums.sum.len() + sums.cross.len() + sums.by_norm.len() + sums.norms.len());
        assert_eq!(CkaSums::bytes(&widths), held);
        let vgg: Vec<usize> = [
            64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
        ]
        .into();
        assert_eq!(vgg.iter().sum::<usize>(), 4224);
        assert_eq!(CkaSums::bytes(&vgg), 143_211_848);
    }
}
