//! One pass over the compared images: each pair's features (the first run's layers, then the
//! second's) into the CKA sums, and the RSA sample's features kept aside. Memory: the sums,
//! the sample, one part's features of each run and a batch of 1,024 images.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};
use ndarray::ArrayView2;

use crate::compare::cka::CkaSums;
use crate::compare::features::{Block, RunFeatures};
use crate::compare::matching::{Matching, Pair, Pairs, RunIndex};
use crate::shard::Shard;

/// Images gathered before their features are added to the sums (large enough that the
/// products run at the matrix kernel's speed).
const BATCH: usize = 1024;

/// A run's features and its index.
pub struct Side<'r> {
    /// The chosen layers' features.
    pub features: RunFeatures<'r>,
    /// Its images, part by part.
    pub index: &'r RunIndex,
}

impl Side<'_> {
    fn block(&self, part: usize) -> Result<Block> {
        let name = &self.index.parts[part];
        self.features.part(name, self.index.ok_ids(part))
    }
}

/// What one pass gathered.
#[derive(Debug, Clone, PartialEq)]
pub struct Accumulator {
    /// The CKA sums of every layer of both runs.
    pub sums: CkaSums,
    /// The sampled pairs met (their index in the matching) and their features.
    pub sample: Vec<(usize, Vec<f64>)>,
}

impl Accumulator {
    /// Adds another shard's.
    pub fn merge(&mut self, other: Accumulator) {
        self.sums.merge(&other.sums);
        self.sample.extend(other.sample);
        self.sample.sort_by_key(|s| s.0);
    }
}

/// The pass over the images of `shard` (the first run's parts `p` with `p % n == i`); the
/// features of the matching's RSA sample are kept aside. `b` is `None` within a run. A second
/// run whose images come in another order is first copied, in the first run's order, into a
/// temporary file in `scratch`.
pub fn accumulate(
    a: &Side,
    b: Option<&Side>,
    matching: &Matching,
    shard: Shard,
    scratch: &Path,
) -> Result<Accumulator> {
    let mine = |part: usize| part % shard.count == shard.index;
    let mut widths = a.features.widths();
    if let Some(b) = b {
        widths.extend(b.features.widths());
    }
    let width = widths.iter().sum::<usize>();
    let mut gather = Gather {
        sums: CkaSums::new(&widths),
        rows: Vec::with_capacity(BATCH * width),
        width,
        sample: Vec::new(),
        sampled: matching.sample.clone().into_iter().peekable(),
    };
    match (&matching.pairs, b) {
        (Pairs::Within, _) => {
            let mut place = 0;
            for part in 0..a.index.parts.len() {
                let count = a.index.ok_ids(part).len();
                if mine(part) {
                    let block = a.block(part)?;
                    for i in 0..count {
                        gather.push(place + i, block.row(i), None);
                    }
                }
                place += count;
            }
        }
        (Pairs::Across(pairs), Some(b)) => {
            let places: Vec<usize> = (0..pairs.len()).filter(|&k| mine(pairs[k].a.0)).collect();
            let mut second = Second::new(b, pairs, &places, scratch)?;
            let mut current: Option<(usize, Block)> = None;
            for k in places {
                let pair = pairs[k];
                if current.as_ref().is_none_or(|c| c.0 != pair.a.0) {
                    current = Some((pair.a.0, a.block(pair.a.0)?));
                }
                let block = &current.as_ref().expect("loaded").1;
                let row_a = block
                    .features(pair.a.1)
                    .context("an ok image without features")?;
                gather.push(k, row_a, Some(second.next(pair)?));
            }
        }
        (Pairs::Across(_), None) => {
            crate::mistake!("a comparison across runs needs the second run")
        }
    }
    gather.flush();
    Ok(Accumulator {
        sums: gather.sums,
        sample: gather.sample,
    })
}

/// Rows of features waiting to be added to the sums.
struct Gather {
    sums: CkaSums,
    rows: Vec<f64>,
    width: usize,
    sample: Vec<(usize, Vec<f64>)>,
    /// The places of the RSA sample not met yet.
    sampled: std::iter::Peekable<std::vec::IntoIter<usize>>,
}

impl Gather {
    /// Adds the compared image at `place`: the first run's features, then the second's.
    fn push(&mut self, place: usize, a: &[f32], b: Option<&[f32]>) {
        let start = self.rows.len();
        self.rows
            .extend(a.iter().chain(b.unwrap_or(&[])).map(|&v| v as f64));
        while self.sampled.next_if(|&s| s < place).is_some() {}
        if self.sampled.next_if(|&s| s == place).is_some() {
            self.sample.push((place, self.rows[start..].to_vec()));
        }
        if self.rows.len() >= BATCH * self.width {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.width > 0 && !self.rows.is_empty() {
            let n = self.rows.len() / self.width;
            let batch = ArrayView2::from_shape((n, self.width), &self.rows).expect("whole rows");
            self.sums.add(batch);
            self.rows.clear();
        }
    }
}

/// The second run's features of the pairs, in the first run's order.
struct Second<'s, 'r> {
    side: &'s Side<'r>,
    how: Order,
}

/// How the second run's features are reached.
enum Order {
    /// Its parts in order: one part's block at a time.
    InOrder(Option<(usize, Block)>),
    /// Copied into a file in the first run's order, read back row by row.
    Copied {
        file: BufReader<File>,
        row: Vec<f32>,
        bytes: Vec<u8>,
    },
}

impl<'s, 'r> Second<'s, 'r> {
    fn new(
        side: &'s Side<'r>,
        pairs: &[Pair],
        mine: &[usize],
        scratch: &Path,
    ) -> Result<Second<'s, 'r>> {
        let width = side.features.width();
        // In order when its parts come one after the other: each is then read once.
        let in_order = (mine.windows(2)).all(|w| pairs[w[0]].b.0 <= pairs[w[1]].b.0);
        let how = match in_order {
            true => Order::InOrder(None),
            false => Order::Copied {
                file: copy_in_order(side, pairs, mine, scratch)?,
                row: vec![0.0; width],
                bytes: vec![0; width * 4],
            },
        };
        Ok(Second { side, how })
    }

    /// The features of the next pair's image.
    fn next(&mut self, pair: Pair) -> Result<&[f32]> {
        match &mut self.how {
            Order::InOrder(current) => {
                if current.as_ref().is_none_or(|c| c.0 != pair.b.0) {
                    *current = Some((pair.b.0, self.side.block(pair.b.0)?));
                }
                let block = &current.as_ref().expect("loaded").1;
                block
                    .features(pair.b.1)
                    .context("an ok image without features")
            }
            Order::Copied { file, row, bytes } => {
                file.read_exact(bytes)?;
                for (v, b) in row.iter_mut().zip(bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
                }
                Ok(row)
            }
        }
    }
}

/// Writes the second run's features of the pairs `mine`, each at its place in that order,
/// reading the run's parts once each, to an unnamed temporary file in `scratch`.
fn copy_in_order(
    side: &Side,
    pairs: &[Pair],
    mine: &[usize],
    scratch: &Path,
) -> Result<BufReader<File>> {
    let width = side.features.width();
    let file = tempfile::tempfile_in(scratch)
        .with_context(|| format!("cannot make a temporary file in {}", scratch.display()))?;
    let mut wanted: Vec<(usize, u64, usize)> = (mine.iter().enumerate())
        .map(|(place, &k)| (pairs[k].b.0, pairs[k].b.1, place))
        .collect();
    wanted.sort_unstable();
    let mut bytes = Vec::with_capacity(width * 4);
    for part in wanted.chunk_by(|x, y| x.0 == y.0) {
        let block = side.block(part[0].0)?;
        for &(_, id, place) in part {
            let row = block.features(id).context("an ok image without features")?;
            bytes.clear();
            bytes.extend(row.iter().flat_map(|v| v.to_le_bytes()));
            file.write_all_at(&bytes, (place * width * 4) as u64)?;
        }
    }
    Ok(BufReader::with_capacity(1 << 20, file))
}
