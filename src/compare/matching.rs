//! Which images are compared: within a run, its ok images; across two runs, the images that
//! are `ok` in both, matched by (`source`, `path`). Keys are streamed from the `images`
//! tables, never all held: within a run memory is 8 bytes per image (its id); across two runs
//! the second run's keys and a place per matched image.

use std::collections::HashMap;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::Array;

use crate::compare::rsa::Sampler;
use crate::output::tables::Table;
use crate::view::read::{column, StoredRun};

/// A run's ok images, part by part.
#[derive(Debug, Clone)]
pub struct RunIndex {
    /// The committed part files' names, in order.
    pub parts: Vec<String>,
    /// Each part's ok images' ids, in its order.
    ids: Vec<Vec<u64>>,
    /// Images that failed.
    pub failed: u64,
}

impl RunIndex {
    /// Reads a run's `images` table (ids and status).
    pub fn read(run: &StoredRun) -> Result<RunIndex> {
        let parts = run.part_names()?;
        let mut index = RunIndex {
            ids: vec![Vec::new(); parts.len()],
            parts,
            failed: 0,
        };
        for part in 0..index.parts.len() {
            let columns = ["image_id", "status"];
            run.scan_part(Table::Images, &index.parts[part], &columns, None, |batch| {
                let ids = column(&batch, "image_id").as_primitive::<UInt64Type>();
                let status = column(&batch, "status").as_string::<i32>();
                for i in 0..batch.num_rows() {
                    match status.value(i) == "ok" {
                        true => index.ids[part].push(ids.value(i)),
                        false => index.failed += 1,
                    }
                }
            })?;
        }
        Ok(index)
    }

    /// The ok images' ids of a part, in its order.
    pub fn ok_ids(&self, part: usize) -> &[u64] {
        &self.ids[part]
    }

    /// The number of ok images.
    pub fn ok(&self) -> u64 {
        self.ids.iter().map(|p| p.len() as u64).sum()
    }
}

/// Hands `each` every image of a run's `images` table, part by part: its part, id, whether it
/// is ok, its `source` (empty when null) and `path`.
fn scan_keys(
    run: &StoredRun,
    index: &RunIndex,
    mut each: impl FnMut(usize, u64, bool, &str, &str),
) -> Result<()> {
    for (part, name) in index.parts.iter().enumerate() {
        let columns = ["image_id", "path", "source", "status"];
        run.scan_part(Table::Images, name, &columns, None, |batch| {
            let ids = column(&batch, "image_id").as_primitive::<UInt64Type>();
            let paths = column(&batch, "path").as_string::<i32>();
            let sources = column(&batch, "source").as_string::<i32>();
            let status = column(&batch, "status").as_string::<i32>();
            for i in 0..batch.num_rows() {
                let source = if sources.is_valid(i) {
                    sources.value(i)
                } else {
                    ""
                };
                let ok = status.value(i) == "ok";
                each(part, ids.value(i), ok, source, paths.value(i));
            }
        })?;
    }
    Ok(())
}

/// One compared image across two runs: its part and id in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Its part in the first run, and its id there.
    pub a: (usize, u64),
    /// Its part in the second run, and its id there.
    pub b: (usize, u64),
}

/// The images compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairs {
    /// Every ok image of the one run, in its order.
    Within,
    /// The matched images, in the first run's order.
    Across(Vec<Pair>),
}

/// The images compared, the RSA sample among them, and how many were left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    /// Which they are.
    pub pairs: Pairs,
    /// How many.
    pub images: u64,
    /// The RSA sample: the compared images' places (0 for the first compared), ascending.
    pub sample: Vec<usize>,
    /// Their (`source`, `path`).
    pub sample_keys: Vec<(String, String)>,
    /// The counts of images left out.
    pub left_out: LeftOut,
}

/// Images not compared, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeftOut {
    /// Images of the first run that the second does not have.
    pub only_a: u64,
    /// Images of the second run that the first does not have.
    pub only_b: u64,
    /// Images that failed (status not `ok`) in either run.
    pub failed: u64,
    /// A (`source`, `path`) listed again in a run: only its first row is compared.
    pub repeated: u64,
}

impl Matching {
    /// The ok images of one run; `rsa`: the sample's size and seed.
    pub fn within(
        run: &StoredRun,
        index: &RunIndex,
        rsa: Option<(usize, u64)>,
    ) -> Result<Matching> {
        let mut sampler = rsa.map(|(n, seed)| Sampler::new(n, seed));
        if let Some(sampler) = sampler.as_mut() {
            let mut place = 0;
            scan_keys(run, index, |_, _, ok, source, path| {
                if ok {
                    sampler.offer(place, source, path);
                    place += 1;
                }
            })?;
        }
        let (sample, sample_keys) = sampler.map(Sampler::finish).unwrap_or_default();
        Ok(Matching {
            pairs: Pairs::Within,
            images: index.ok(),
            sample,
            sample_keys,
            left_out: LeftOut {
                failed: index.failed,
                ..LeftOut::default()
            },
        })
    }

    /// The images of run `a` that run `b` has too, ok in both, matched by (`source`, `path`).
    pub fn across(
        (a, a_index): (&StoredRun, &RunIndex),
        (b, b_index): (&StoredRun, &RunIndex),
        rsa: Option<(usize, u64)>,
    ) -> Result<Matching> {
        let mut left_out = LeftOut::default();
        // The second run's images by key: (part, id, ok, matched yet).
        let mut in_b: HashMap<(String, String), (usize, u64, bool, bool)> = HashMap::new();
        scan_keys(b, b_index, |part, id, ok, source, path| {
            let key = (source.to_owned(), path.to_owned());
            match in_b.contains_key(&key) {
                true => left_out.repeated += 1,
                false => {
                    in_b.insert(key, (part, id, ok, false));
                }
            }
        })?;
        let mut pairs = Vec::new();
        let mut sampler = rsa.map(|(n, seed)| Sampler::new(n, seed));
        let mut key = (String::new(), String::new());
        scan_keys(a, a_index, |part, id, ok, source, path| {
            key.0.replace_range(.., source);
            key.1.replace_range(.., path);
            let Some(other) = in_b.get_mut(&key) else {
                left_out.only_a += 1;
                return;
            };
            if std::mem::replace(&mut other.3, true) {
                left_out.repeated += 1;
            } else if ok && other.2 {
                if let Some(sampler) = sampler.as_mut() {
                    sampler.offer(pairs.len(), source, path);
                }
                pairs.push(Pair {
                    a: (part, id),
                    b: (other.0, other.1),
                });
            } else {
                left_out.failed += 1;
            }
        })?;
        left_out.only_b = in_b.values().filter(|v| !v.3).count() as u64;
        let (sample, sample_keys) = sampler.map(Sampler::finish).unwrap_or_default();
        Ok(Matching {
            images: pairs.len() as u64,
            pairs: Pairs::Across(pairs),
            sample,
            sample_keys,
            left_out,
        })
    }
}
