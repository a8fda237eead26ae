//! Which images are compared: within a run, its ok images; across two runs, the images that
//! are `ok` in both, matched by (`source`, `path`).

use std::collections::HashMap;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::Array;

use crate::output::tables::Table;
use crate::view::read::{column, StoredRun};

/// A run's images, part by part.
#[derive(Debug, Clone)]
pub struct RunIndex {
    /// The committed part files' names, in order.
    pub parts: Vec<String>,
    /// Each part's images: id, whether ok, and its key (`source`, `path`).
    pub images: Vec<Vec<IndexedImage>>,
}

/// An image of a run's `images` table.
#[derive(Debug, Clone)]
pub struct IndexedImage {
    /// Its `image_id`.
    pub id: u64,
    /// Whether its status is `ok`.
    pub ok: bool,
    /// Its `source` (empty for a run's folders and lists without one) and `path`.
    pub key: (String, String),
}

impl RunIndex {
    /// Reads a run's `images` table.
    pub fn read(run: &StoredRun) -> Result<RunIndex> {
        let parts = run.part_names()?;
        let mut images = Vec::with_capacity(parts.len());
        for part in &parts {
            let mut those = Vec::new();
            let columns = ["image_id", "path", "source", "status"];
            run.scan_part(Table::Images, part, &columns, None, |batch| {
                let ids = column(&batch, "image_id").as_primitive::<UInt64Type>();
                let paths = column(&batch, "path").as_string::<i32>();
                let sources = column(&batch, "source").as_string::<i32>();
                let status = column(&batch, "status").as_string::<i32>();
                for i in 0..batch.num_rows() {
                    let source = match sources.is_valid(i) {
                        true => sources.value(i).to_owned(),
                        false => String::new(),
                    };
                    those.push(IndexedImage {
                        id: ids.value(i),
                        ok: status.value(i) == "ok",
                        key: (source, paths.value(i).to_owned()),
                    });
                }
            })?;
            images.push(those);
        }
        Ok(RunIndex { parts, images })
    }

    /// The ok images' ids of a part, in its order.
    pub fn ok_ids(&self, part: usize) -> Vec<u64> {
        self.images[part]
            .iter()
            .filter(|i| i.ok)
            .map(|i| i.id)
            .collect()
    }
}

/// One compared image: where it is in each run (for one run, both sides are the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Its part in the first run, and its id there.
    pub a: (usize, u64),
    /// Its part in the second run, and its id there.
    pub b: (usize, u64),
}

/// The images compared, in the first run's order, and how many were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matching {
    /// The pairs, in the first run's order.
    pub pairs: Vec<Pair>,
    /// Each pair's key (`source`, `path`), for the RSA sample.
    pub keys: Vec<(String, String)>,
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
    /// The ok images of one run.
    pub fn within(index: &RunIndex) -> Matching {
        let mut matching = Matching::default();
        for (part, images) in index.images.iter().enumerate() {
            for image in images {
                if image.ok {
                    matching.pairs.push(Pair {
                        a: (part, image.id),
                        b: (part, image.id),
                    });
                    matching.keys.push(image.key.clone());
                } else {
                    matching.left_out.failed += 1;
                }
            }
        }
        matching
    }

    /// The images of `a` that `b` has too, ok in both, matched by (`source`, `path`).
    pub fn across(a: &RunIndex, b: &RunIndex) -> Matching {
        let mut matching = Matching::default();
        let mut in_b: HashMap<&(String, String), (usize, &IndexedImage, bool)> = HashMap::new();
        for (part, images) in b.images.iter().enumerate() {
            for image in images {
                if in_b.contains_key(&image.key) {
                    matching.left_out.repeated += 1;
                } else {
                    in_b.insert(&image.key, (part, image, false));
                }
            }
        }
        for (part, images) in a.images.iter().enumerate() {
            for image in images {
                let Some(other) = in_b.get_mut(&image.key) else {
                    matching.left_out.only_a += 1;
                    continue;
                };
                if other.2 {
                    matching.left_out.repeated += 1;
                    continue;
                }
                other.2 = true;
                if image.ok && other.1.ok {
                    matching.pairs.push(Pair {
                        a: (part, image.id),
                        b: (other.0, other.1.id),
                    });
                    matching.keys.push(image.key.clone());
                } else {
                    matching.left_out.failed += 1;
                }
            }
        }
        matching.left_out.only_b = in_b.values().filter(|v| !v.2).count() as u64;
        matching
    }
}
