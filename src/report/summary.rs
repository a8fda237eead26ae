//! The numbers of a report, from the tables: per channel of a layer, its means over the
//! dataset, per label, its class selectivity, its best images and its histograms. Two streaming
//! passes over one layer's rows of `stats` (or `vectors`), holding per channel only fixed-size
//! accumulators.

use std::collections::BTreeMap;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type, UInt64Type};
use arrow_array::RecordBatch;

use crate::output::provenance::LayerInfo;
use crate::output::tables::Table;
use crate::reduce::LayerKind;
use crate::view::read::{column, MapQuery, StoredImage, StoredRun};

/// Bars of each histogram.
pub const BINS: usize = 20;

/// The images of a run as the report needs them: the labels, in order, and each image's.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The distinct labels, sorted.
    pub names: Vec<String>,
    /// Per part of the image ids (`image_id >> 32`: a shard's, or 0 for a folder's files) and
    /// position in it, the index of the image's label in `names`, or [`NO_LABEL`]: ids are
    /// dense within a part, sparse across them.
    of_image: Vec<Vec<u32>>,
}

/// In [`Labels`], an image without a label (or not in the run).
const NO_LABEL: u32 = u32::MAX;

impl Labels {
    /// The labels of `images`.
    pub fn new(images: &[StoredImage]) -> Labels {
        let names: Vec<String> = images
            .iter()
            .filter_map(|i| i.label.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let index: BTreeMap<&str, u32> = names
            .iter()
            .zip(0..)
            .map(|(n, i)| (n.as_str(), i))
            .collect();
        let mut of_image: Vec<Vec<u32>> = Vec::new();
        for image in images {
            let Some(label) = &image.label else { continue };
            let (part, at) = Labels::split(image.image_id);
            if of_image.len() <= part {
                of_image.resize_with(part + 1, Vec::new);
            }
            let labels = &mut of_image[part];
            if labels.len() <= at {
                labels.resize(at + 1, NO_LABEL);
            }
            labels[at] = index[label.as_str()];
        }
        Labels { names, of_image }
    }

    /// An image id as its part and its position in the part.
    fn split(image_id: u64) -> (usize, usize) {
        let per_part = crate::input::MAX_SHARD_SAMPLES;
        (
            (image_id / per_part) as usize,
            (image_id % per_part) as usize,
        )
    }

    fn of(&self, image_id: u64) -> Option<usize> {
        let (part, at) = Labels::split(image_id);
        let label = *self.of_image.get(part)?.get(at)?;
        (label != NO_LABEL).then_some(label as usize)
    }
}

/// A histogram over `[lo, hi]` in [`BINS`] equal bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The left edge of the first bar.
    pub lo: f32,
    /// The right edge of the last bar.
    pub hi: f32,
    /// Values per bar.
    pub counts: Vec<u64>,
}

impl Histogram {
    fn over(lo: f32, hi: f32) -> Histogram {
        Histogram {
            lo,
            hi,
            counts: vec![0; BINS],
        }
    }

    /// The bar of `v` (the last bar holds `hi`), computed in float64 as the page's query does.
    pub fn bin(&self, v: f32) -> usize {
        let (v, lo, hi) = (f64::from(v), f64::from(self.lo), f64::from(self.hi));
        if hi > lo {
            (((v - lo) / (hi - lo) * BINS as f64).floor() as usize).min(BINS - 1)
        } else {
            0
        }
    }

    fn add(&mut self, v: f32) {
        let bin = self.bin(v);
        self.counts[bin] += 1;
    }
}

/// One channel over the dataset.
#[derive(Debug, Clone)]
pub struct ChannelSummary {
    /// The channel.
    pub channel: u32,
    /// Images with a value for it.
    pub images: u64,
    /// The mean over images of the map's mean.
    pub mean: f64,
    /// The mean over images of the map's max.
    pub mean_max: f64,
    /// The largest value over the dataset.
    pub peak: f32,
    /// The mean over images of the share of the map's values above 0.
    pub frac_positive: f64,
    /// Per label (in [`Labels::names`] order), the mean over its images of the map's mean.
    pub label_means: Vec<Option<f64>>,
    /// The class selectivity index over `label_means`, when there are two labels or more.
    pub selectivity: Option<f64>,
    /// The images with the largest max, best first (ties: the smaller `image_id`).
    pub best: Vec<(u64, f32)>,
    /// Of the per-image max.
    pub max_histogram: Histogram,
    /// Of the per-image mean.
    pub mean_histogram: Histogram,
}

/// Per image and channel: the map's mean, max and share of values above 0.
#[derive(Debug, Clone, Copy)]
struct Observation {
    image_id: u64,
    channel: u32,
    mean: f32,
    max: f32,
    frac_positive: f32,
}

/// The first pass's sums for one channel.
#[derive(Debug, Clone)]
struct Sums {
    images: u64,
    mean: f64,
    max: f64,
    frac: f64,
    mean_range: (f32, f32),
    max_range: (f32, f32),
    label_sums: Vec<(f64, u64)>,
    best: Vec<(u64, f32)>,
}

impl Sums {
    fn new(labels: usize) -> Sums {
        let empty = (f32::INFINITY, f32::NEG_INFINITY);
        Sums {
            images: 0,
            mean: 0.0,
            max: 0.0,
            frac: 0.0,
            mean_range: empty,
            max_range: empty,
            label_sums: vec![(0.0, 0); labels],
            best: Vec::new(),
        }
    }

    fn add(&mut self, o: &Observation, label: Option<usize>, k: usize) {
        self.images += 1;
        self.mean += f64::from(o.mean);
        self.max += f64::from(o.max);
        self.frac += f64::from(o.frac_positive);
        widen(&mut self.mean_range, o.mean);
        widen(&mut self.max_range, o.max);
        if let Some(l) = label {
            self.label_sums[l].0 += f64::from(o.mean);
            self.label_sums[l].1 += 1;
        }
        offer(&mut self.best, (o.image_id, o.max), k);
    }

    fn finish(self, channel: u32) -> ChannelSummary {
        let n = self.images.max(1) as f64;
        let label_means: Vec<Option<f64>> = self
            .label_sums
            .iter()
            .map(|&(sum, count)| (count > 0).then(|| sum / count as f64))
            .collect();
        let range = |r: (f32, f32)| if r.0 <= r.1 { r } else { (0.0, 0.0) };
        let (mean_lo, mean_hi) = range(self.mean_range);
        let (max_lo, max_hi) = range(self.max_range);
        ChannelSummary {
            channel,
            images: self.images,
            mean: self.mean / n,
            mean_max: self.max / n,
            peak: max_hi,
            frac_positive: self.frac / n,
            selectivity: selectivity(&label_means),
            label_means,
            best: self.best,
            max_histogram: Histogram::over(max_lo, max_hi),
            mean_histogram: Histogram::over(mean_lo, mean_hi),
        }
    }
}

fn widen(range: &mut (f32, f32), v: f32) {
    range.0 = range.0.min(v);
    range.1 = range.1.max(v);
}

/// Keeps `candidate` among the `k` best of `best` (highest score first, then smaller id).
fn offer(best: &mut Vec<(u64, f32)>, candidate: (u64, f32), k: usize) {
    let before = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let at = best.partition_point(|x| before(x, &candidate).is_lt());
    if at < k {
        best.insert(at, candidate);
        best.truncate(k);
    }
}

/// The class selectivity index of Morcos et al. (2018): `(mu_max - mu_rest) / (mu_max +
/// mu_rest)`, where `mu_max` is the largest label mean and `mu_rest` the mean of the others.
/// None with fewer than two labels, or when the denominator is zero.
pub fn selectivity(label_means: &[Option<f64>]) -> Option<f64> {
    let means: Vec<f64> = label_means.iter().flatten().copied().collect();
    if means.len() < 2 {
        return None;
    }
    let (top, _) = means.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let rest = means
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != top)
        .map(|(_, m)| m)
        .sum::<f64>()
        / (means.len() - 1) as f64;
    let denominator = means[top] + rest;
    (denominator != 0.0 && denominator.is_finite()).then(|| (means[top] - rest) / denominator)
}

/// Summarises every channel of `layer`: a first pass for the sums and best images, a second
/// for the histograms. `k` best images are kept per channel.
pub fn summarise(
    run: &StoredRun,
    layer: &LayerInfo,
    labels: &Labels,
    k: usize,
) -> Result<Vec<ChannelSummary>> {
    let mut sums = vec![Sums::new(labels.names.len()); layer.channels];
    observe(run, layer, |o| {
        if let Some(s) = sums.get_mut(o.channel as usize) {
            s.add(o, labels.of(o.image_id), k);
        }
    })?;
    let mut channels: Vec<ChannelSummary> = sums
        .into_iter()
        .enumerate()
        .map(|(c, s)| s.finish(c as u32))
        .collect();
    observe(run, layer, |o| {
        if let Some(c) = channels.get_mut(o.channel as usize) {
            c.max_histogram.add(o.max);
            c.mean_histogram.add(o.mean);
        }
    })?;
    Ok(channels)
}

/// Hands `each` every observation of `layer`: from `stats` for a layer of maps, from
/// `vectors` (one value per channel: mean = max = the value) for a vector layer.
fn observe(run: &StoredRun, layer: &LayerInfo, mut each: impl FnMut(&Observation)) -> Result<()> {
    if layer.kind == LayerKind::Vector {
        return run.scan(
            Table::Vectors,
            &["image_id", "layer", "values"],
            None,
            |batch| vector_observations(&batch, &layer.name, &mut each),
        );
    }
    let query = MapQuery {
        layer: layer.name.clone(),
        channels: None,
        images: None,
    };
    let columns = ["image_id", "channel", "mean", "max", "frac_positive"];
    run.scan(Table::Stats, &columns, Some(&query), |batch| {
        let f32s = |name: &str| column(&batch, name).as_primitive::<Float32Type>().clone();
        let ids = column(&batch, "image_id").as_primitive::<UInt64Type>();
        let channels = column(&batch, "channel").as_primitive::<UInt32Type>();
        let (mean, max, frac) = (f32s("mean"), f32s("max"), f32s("frac_positive"));
        for i in 0..batch.num_rows() {
            each(&Observation {
                image_id: ids.value(i),
                channel: channels.value(i),
                mean: mean.value(i),
                max: max.value(i),
                frac_positive: frac.value(i),
            });
        }
    })
}

fn vector_observations(batch: &RecordBatch, layer: &str, each: &mut impl FnMut(&Observation)) {
    let ids = column(batch, "image_id").as_primitive::<UInt64Type>();
    let layers = column(batch, "layer").as_string::<i32>();
    let values = column(batch, "values").as_list::<i32>();
    for i in (0..batch.num_rows()).filter(|&i| layers.value(i) == layer) {
        let list = values.value(i);
        for (c, &v) in list
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .enumerate()
        {
            each(&Observation {
                image_id: ids.value(i),
                channel: c as u32,
                mean: v,
                max: v,
                frac_positive: if v > 0.0 { 1.0 } else { 0.0 },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_shard_ids_are_found_by_part_and_position() {
        let image = |image_id: u64, label: Option<&str>| StoredImage {
            image_id,
            path: String::new(),
            source: None,
            label: label.map(String::from),
            ok: true,
            error: None,
        };
        let shard = |part: u64, at: u64| (part << 32) | at;
        let labels = Labels::new(&[
            image(shard(0, 1), Some("dog")),
            image(shard(3, 0), Some("cat")),
            image(shard(3, 2), None),
            image(shard(1000, 7), Some("dog")),
        ]);
        assert_eq!(labels.names, ["cat", "dog"]);
        assert_eq!(labels.of(shard(0, 1)), Some(1));
        assert_eq!(labels.of(shard(3, 0)), Some(0));
        assert_eq!(labels.of(shard(1000, 7)), Some(1));
        for unlabelled in [
            shard(0, 0),
            shard(3, 1),
            shard(3, 2),
            shard(2, 0),
            shard(1001, 0),
        ] {
            assert_eq!(labels.of(unlabelled), None, "{unlabelled}");
        }
        assert!(
            labels.of_image.iter().map(Vec::len).sum::<usize>() < 20,
            "dense per part"
        );
    }

    #[test]
    fn selectivity_follows_morcos() {
        // Label means 3, 1, 1: mu_max 3, mu_rest 1, (3 - 1) / (3 + 1).
        assert_eq!(selectivity(&[Some(3.0), Some(1.0), Some(1.0)]), Some(0.5));
        assert_eq!(selectivity(&[Some(2.0), Some(2.0)]), Some(0.0));
        assert_eq!(selectivity(&[Some(2.0), None]), None, "one label with data");
        assert_eq!(
            selectivity(&[Some(1.0), Some(-1.0)]),
            None,
            "zero denominator"
        );
    }

    #[test]
    fn the_best_are_kept_in_order_with_ties_by_image() {
        let mut best = Vec::new();
        for c in [(5, 1.0), (2, 3.0), (7, 3.0), (1, 0.5), (3, 2.0)] {
            offer(&mut best, c, 3);
        }
        assert_eq!(best, [(2, 3.0), (7, 3.0), (3, 2.0)]);
    }

    #[test]
    fn histograms_put_the_edges_in_the_first_and_last_bars() {
        let mut h = Histogram::over(0.0, 2.0);
        for v in [0.0, 0.05, 1.0, 2.0] {
            h.add(v);
        }
        assert_eq!((h.counts[0], h.counts[10], h.counts[BINS - 1]), (2, 1, 1));
        assert_eq!(Histogram::over(1.0, 1.0).bin(1.0), 0, "a flat channel");
    }
}
