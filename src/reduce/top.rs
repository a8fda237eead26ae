//! Dataset examples: for every channel of a layer with `top_k`, the k images whose map scores
//! highest, kept with their maps while the run goes on. Memory is k maps per channel whatever
//! the dataset size; each part writes its own `top` rows and readers merge the parts.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::config::TopBy;
use crate::model::statistics::{MapStats, Stat};
use crate::output::tables::{TopRow, TopRows};

/// A candidate: its score, its image and its map.
#[derive(Debug, Clone)]
struct Ranked {
    score: f32,
    image_id: u64,
    values: Vec<f32>,
}

impl Ranked {
    /// Higher scores rank higher; on a tie, the earlier image.
    fn rank_cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.image_id.cmp(&self.image_id))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.rank_cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank_cmp(other)
    }
}

/// The best maps of every channel of one layer.
#[derive(Debug)]
pub struct LayerTop {
    k: usize,
    by: TopBy,
    height: u32,
    width: u32,
    /// Per channel, a min-heap of the best `k` so far (its root is the weakest).
    channels: Vec<BinaryHeap<Reverse<Ranked>>>,
}

impl LayerTop {
    /// Tracks the best `k` maps (`height` x `width`) of each of `channels` channels.
    pub fn new(k: usize, by: TopBy, channels: usize, height: usize, width: usize) -> LayerTop {
        LayerTop {
            k,
            by,
            height: height as u32,
            width: width as u32,
            channels: (0..channels)
                .map(|_| BinaryHeap::with_capacity(k + 1))
                .collect(),
        }
    }

    /// The score of a map under this layer's `top_by`.
    pub fn score(&self, stats: &MapStats) -> f32 {
        match self.by {
            TopBy::Max => stats[Stat::Max] as f32,
            TopBy::Mean => stats[Stat::Mean] as f32,
        }
    }

    /// Offers one image's map of `channel`; `values` is only called when the map makes the cut.
    pub fn offer(
        &mut self,
        channel: usize,
        image_id: u64,
        stats: &MapStats,
        values: impl FnOnce() -> Vec<f32>,
    ) {
        let score = self.score(stats);
        let heap = &mut self.channels[channel];
        let candidate = Ranked {
            score,
            image_id,
            values: Vec::new(),
        };
        if heap.len() == self.k {
            let weakest = &heap.peek().expect("k is at least 1").0;
            if candidate.rank_cmp(weakest) != Ordering::Greater {
                return;
            }
            heap.pop();
        }
        heap.push(Reverse(Ranked {
            values: values(),
            ..candidate
        }));
    }

    /// Moves the kept maps into `rows` (by channel, best first) and starts afresh.
    pub fn drain_into(&mut self, layer: &str, rows: &mut TopRows) {
        for (channel, heap) in self.channels.iter_mut().enumerate() {
            let mut best: Vec<Ranked> = std::mem::take(heap).into_iter().map(|r| r.0).collect();
            best.sort_by(|a, b| b.rank_cmp(a));
            for (rank, r) in best.iter().enumerate() {
                rows.push(TopRow {
                    layer,
                    channel: channel as u32,
                    rank: rank as u32,
                    image_id: r.image_id,
                    score: r.score,
                    height: self.height,
                    width: self.width,
                    values: &r.values,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, UInt32Type, UInt64Type};

    fn stats(max: f32, mean: f32) -> MapStats {
        let mut s = MapStats([0.0; Stat::COUNT]);
        s.0[Stat::Max as usize] = f64::from(max);
        s.0[Stat::Mean as usize] = f64::from(mean);
        s
    }

    /// The image ids, ranks and scores of the rows a tracker drains.
    fn drain(top: &mut LayerTop) -> (Vec<u64>, Vec<u32>, Vec<f32>) {
        let mut rows = TopRows::default();
        top.drain_into("l", &mut rows);
        let batch = rows.finish();
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        (
            column("image_id")
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec(),
            column("rank")
                .as_primitive::<UInt32Type>()
                .values()
                .to_vec(),
            column("score")
                .as_primitive::<Float32Type>()
                .values()
                .to_vec(),
        )
    }

    #[test]
    fn keeps_the_k_best_per_channel_and_copies_only_those() {
        let mut top = LayerTop::new(2, TopBy::Max, 2, 1, 1);
        let mut copied = Vec::new();
        for (id, max) in [(0u64, 1.0f32), (1, 5.0), (2, 3.0), (3, 5.0), (4, 0.5)] {
            top.offer(0, id, &stats(max, -max), || {
                copied.push(id);
                vec![max]
            });
            top.offer(1, id, &stats(-max, 0.0), Vec::new);
        }
        assert_eq!(
            copied,
            [0, 1, 2, 3],
            "image 4 never made the cut, so it was not copied"
        );
        let (ids, ranks, scores) = drain(&mut top);
        // Channel 0: 5.0 (image 1, earlier of the tie), 5.0 (image 3); channel 1: -0.5, -1.0.
        assert_eq!(ids, [1, 3, 4, 0]);
        assert_eq!(ranks, [0, 1, 0, 1]);
        assert_eq!(scores, [5.0, 5.0, -0.5, -1.0]);
        assert!(drain(&mut top).0.is_empty(), "drained");
    }

    #[test]
    fn top_by_mean_ranks_by_the_mean() {
        let mut top = LayerTop::new(1, TopBy::Mean, 1, 1, 1);
        top.offer(0, 0, &stats(9.0, 1.0), || vec![9.0]);
        top.offer(0, 1, &stats(2.0, 2.0), || vec![2.0]);
        assert_eq!(drain(&mut top).0, [1]);
    }
}
