//! The features of a run's layers per image, read from what the run stored (no model pass),
//! streamed into CKA sums.

use std::collections::HashMap;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type, UInt64Type};
use arrow_array::RecordBatch;
use ndarray::Array2;

use crate::compare::cka::CkaSums;
use crate::output::tables::Table;
use crate::reduce::LayerKind;
use crate::view::read::StoredRun;

/// What stands for a map layer's output on an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Features {
    /// Each channel's mean over its map (global average pooling): the `stats` table's `mean`.
    Mean,
    /// Each channel's maximum (global max pooling): the `stats` table's `max`.
    Max,
}

impl Features {
    /// The `stats` column it reads.
    pub fn column(self) -> &'static str {
        match self {
            Features::Mean => "mean",
            Features::Max => "max",
        }
    }
}

/// Images gathered before their features are added to the sums.
const BATCH: usize = 256;

/// The CKA sums of `layers` of a run (map layers, in that order), one row of features per ok
/// image, streamed over its `stats` table part by part: memory is the sums and one batch.
pub fn run_sums(run: &StoredRun, layers: &[&str], features: Features) -> Result<CkaSums> {
    let mut widths = Vec::new();
    let mut placed: HashMap<&str, usize> = HashMap::new();
    let mut offset = 0;
    for &name in layers {
        let layer = run.layer(name)?;
        if layer.kind != LayerKind::Maps {
            crate::mistake!(
                "layer `{name}` is a vector: compare takes map layers' statistics (vectors \
                 are not compared yet)"
            );
        }
        placed.insert(layer.name.as_str(), offset);
        widths.push(layer.channels);
        offset += layer.channels;
    }
    let mut gather = Gather {
        sums: CkaSums::new(&widths),
        rows: Vec::with_capacity(BATCH * offset),
        width: offset,
        image: None,
        row: vec![0.0; offset],
    };
    let columns = ["image_id", "layer", "channel", features.column()];
    let mut failed = Ok(());
    run.scan(Table::Stats, &columns, None, |batch| {
        if failed.is_ok() {
            failed = gather.batch(&batch, &placed, features.column());
        }
    })?;
    failed?;
    gather.flush_image();
    gather.flush_rows();
    Ok(gather.sums)
}

/// Rows of features being put together from the `stats` rows.
struct Gather {
    sums: CkaSums,
    rows: Vec<f64>,
    width: usize,
    image: Option<u64>,
    row: Vec<f64>,
}

impl Gather {
    /// Takes a batch of `stats` rows (in `image_id` order).
    fn batch(
        &mut self,
        batch: &RecordBatch,
        placed: &HashMap<&str, usize>,
        column: &str,
    ) -> Result<()> {
        let ids = batch.column(0).as_primitive::<UInt64Type>();
        let names = batch.column(1).as_string::<i32>();
        let channels = batch.column(2).as_primitive::<UInt32Type>();
        let values = batch.column(3).as_primitive::<Float32Type>();
        for i in 0..batch.num_rows() {
            let id = ids.value(i);
            if self.image != Some(id) {
                self.flush_image();
                self.image = Some(id);
            }
            if let Some(&offset) = placed.get(names.value(i)) {
                let at = offset + channels.value(i) as usize;
                if at >= self.width {
                    crate::mistake!("the stats table's `{column}` has a channel past its layer's");
                }
                self.row[at] = values.value(i) as f64;
            }
        }
        Ok(())
    }

    /// Moves the image's features to the batch, adding the batch to the sums when full.
    fn flush_image(&mut self) {
        if self.image.take().is_some() {
            self.rows.extend_from_slice(&self.row);
            self.row.fill(0.0);
            if self.rows.len() >= BATCH * self.width {
                self.flush_rows();
            }
        }
    }

    fn flush_rows(&mut self) {
        if self.width > 0 && !self.rows.is_empty() {
            let n = self.rows.len() / self.width;
            let rows = std::mem::take(&mut self.rows);
            let batch = Array2::from_shape_vec((n, self.width), rows).expect("whole rows");
            self.sums.add(batch.view());
            self.rows = batch.into_raw_vec_and_offset().0;
            self.rows.clear();
        }
    }
}
