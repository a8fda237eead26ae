//! Parquet files encoded on many threads: each file is cut into row groups, and every row
//! group is encoded and compressed on the encoder pool (its columns in parallel too) while the
//! next one fills, then appended to the file in order. One part's `maps` can then use every
//! core instead of the one thread an `ArrowWriter` runs on.
//!
//! Row groups are cut by rows and by in-memory bytes only, never by the number of threads, so
//! a run writes the same files on 2 cores as on 64.

use std::collections::VecDeque;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{FieldRef, SchemaRef};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;

use super::floats::{self, FloatColumn};
use crate::cpu;

/// The name of the encoder threads.
pub const ENCODER: &str = "layerwise-encoder";

/// A row group is closed once it holds this many bytes of Arrow data. Map values barely
/// compress, so it bounds the encoded row group too; a `block1_conv1` map is 196 KiB, so a row
/// group of such maps holds about 40 rows. Smaller row groups keep less in flight: 16 MiB ones
/// made the peak RSS of the small benchmark model 1.19 times as high on 10,000 images as on
/// 1,000, 8 MiB ones 1.05-1.15 times, and ran 15% faster.
pub const ROW_GROUP_BYTES: usize = 8 << 20;

/// A row group is closed at this many rows (128 Ki), whichever of this and
/// [`ROW_GROUP_BYTES`] comes first: DuckDB and Polars read row groups in parallel and prune
/// them by their statistics, and their own writers use 122,880 and 262,144 rows.
pub const ROW_GROUP_ROWS: usize = 128 << 10;

/// Row groups waiting to be encoded or appended, per file, at most: with
/// [`ROW_GROUP_BYTES`] it bounds a file's memory to a few hundred MiB on any node.
const MAX_IN_FLIGHT: usize = 8;

/// Columns are handed to the Parquet encoder in slices of about this many bytes: the encoder
/// keeps levels and indices for every value of what it is given (about 12 bytes a value), so
/// a whole row group of maps would briefly take several times its own size. At 1 MiB those
/// buffers stay under the 4 MiB mmap threshold (`main.rs`) and are reused from the heap
/// instead of being mapped and faulted in afresh for every slice.
const WRITE_SLICE_BYTES: usize = 1 << 20;

/// The threads that encode and compress the row groups of a run's files.
#[derive(Clone)]
pub struct Encoders {
    pool: Arc<rayon::ThreadPool>,
}

impl Encoders {
    /// A pool of `threads` encoder threads.
    pub fn new(threads: usize) -> Result<Encoders> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("{ENCODER}-{i}"))
            .start_handler(|_| cpu::yield_to_inference())
            .build()
            .context("cannot start the encoder threads")?;
        Ok(Encoders {
            pool: Arc::new(pool),
        })
    }

    /// Each encoder thread's name and the CPU time it has used.
    pub fn thread_times(&self) -> Vec<(String, Duration)> {
        self.pool
            .broadcast(|b| (format!("{ENCODER}-{}", b.index()), cpu::thread_time()))
    }

    /// How many row groups of one file may wait for the encoders.
    fn in_flight(&self) -> usize {
        self.pool.current_num_threads().clamp(2, MAX_IN_FLIGHT)
    }

    /// The most bytes one file holds while it is written: the row group filling, and each row
    /// group in flight with its encoded pages (at most about its own size again).
    pub fn buffered_bytes_per_file(&self) -> usize {
        ROW_GROUP_BYTES * (1 + 2 * self.in_flight())
    }
}

/// The encoded columns of one row group, or why it could not be encoded.
type Encoded = Result<Vec<Chunk>>;

/// One encoded column chunk of a row group.
enum Chunk {
    /// Encoded by the Parquet crate.
    Arrow(ArrowColumnChunk),
    /// A column of float lists, encoded by [`floats`].
    Floats(floats::Chunk),
}

/// What encodes each column of a file: the Parquet crate (None) or [`FloatColumn`].
type Columns = Arc<Vec<Option<FloatColumn>>>;

/// One Parquet file being written, its row groups encoded on the [`Encoders`].
pub struct ParallelWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: Arc<ArrowRowGroupWriterFactory>,
    schema: SchemaRef,
    columns: Columns,
    encoders: Encoders,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: usize,
    in_flight: VecDeque<Receiver<Encoded>>,
    row_groups: usize,
}

impl<W: Write + Send + 'static> ParallelWriter<W> {
    /// A file of `schema` written to `out` with `properties` (the Arrow schema is stored in
    /// its metadata, as `ArrowWriter` does).
    pub fn try_new(
        out: W,
        schema: SchemaRef,
        properties: WriterProperties,
        encoders: &Encoders,
    ) -> Result<Self> {
        let flat = schema
            .fields()
            .iter()
            .all(|f| !f.data_type().is_nested() || leaf_of_list(f));
        anyhow::ensure!(
            flat,
            "only flat schemas and lists of primitives are encoded"
        );
        let (file, factory) = ArrowWriter::try_new(out, schema.clone(), Some(properties.clone()))?
            .into_serialized_writer()?;
        let descriptors = file.schema_descr().columns();
        let columns = schema
            .fields()
            .iter()
            .zip(descriptors)
            .map(|(field, descr)| FloatColumn::new(field, descr, &properties))
            .collect();
        Ok(ParallelWriter {
            file,
            factory: Arc::new(factory),
            schema,
            columns: Arc::new(columns),
            encoders: encoders.clone(),
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
            in_flight: VecDeque::new(),
            row_groups: 0,
        })
    }

    /// Adds `batch`'s rows, closing row groups as they fill; waits while the file's
    /// row groups in flight are at their bound.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let per_row = (data_bytes(batch) / rows.max(1)).max(1);
        let mut start = 0;
        while start < rows {
            let room_rows = ROW_GROUP_ROWS - self.pending_rows;
            let room_bytes = ROW_GROUP_BYTES.saturating_sub(self.pending_bytes);
            let take = (rows - start)
                .min(room_rows)
                .min(room_bytes.div_ceil(per_row).max(1));
            self.pending.push(batch.slice(start, take));
            self.pending_rows += take;
            self.pending_bytes += take * per_row;
            start += take;
            if self.pending_rows >= ROW_GROUP_ROWS || self.pending_bytes >= ROW_GROUP_BYTES {
                self.close_row_group()?;
            }
        }
        self.append_ready()
    }

    /// Encodes what is left, appends every row group in order, writes the footer and returns
    /// the output.
    pub fn finish(mut self) -> Result<W> {
        if self.pending_rows > 0 {
            self.close_row_group()?;
        }
        while !self.in_flight.is_empty() {
            self.append_oldest()?;
        }
        Ok(self.file.into_inner()?)
    }

    /// Hands the pending rows to the encoders as the next row group.
    fn close_row_group(&mut self) -> Result<()> {
        let batches = std::mem::take(&mut self.pending);
        (self.pending_rows, self.pending_bytes) = (0, 0);
        let (index, factory) = (self.row_groups, self.factory.clone());
        let (schema, columns) = (self.schema.clone(), self.columns.clone());
        self.row_groups += 1;
        let (sender, receiver) = sync_channel(1);
        self.encoders.pool.spawn(move || {
            let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
                encode(&factory, index, &schema, &columns, &batches)
            }))
            .unwrap_or_else(|_| Err(anyhow!("encoding row group {index} panicked")));
            let _ = sender.send(encoded);
        });
        self.in_flight.push_back(receiver);
        while self.in_flight.len() > self.encoders.in_flight() {
            self.append_oldest()?;
        }
        Ok(())
    }

    /// Appends the row groups at the head of the queue that are already encoded.
    fn append_ready(&mut self) -> Result<()> {
        while let Some(front) = self.in_flight.front() {
            match front.try_recv() {
                Ok(encoded) => {
                    self.in_flight.pop_front();
                    self.append(encoded?)?;
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Waits for the oldest row group in flight and appends it.
    fn append_oldest(&mut self) -> Result<()> {
        let receiver = self.in_flight.pop_front().expect("a row group in flight");
        let encoded = receiver
            .recv()
            .map_err(|_| anyhow!("an encoder thread stopped"))?;
        self.append(encoded?)
    }

    fn append(&mut self, chunks: Vec<Chunk>) -> Result<()> {
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            match chunk {
                Chunk::Arrow(chunk) => chunk.append_to_row_group(&mut row_group)?,
                Chunk::Floats(chunk) => row_group.append_column(&chunk.pages, chunk.close)?,
            }
        }
        row_group.close()?;
        Ok(())
    }
}

/// Whether `field` is a list (or fixed-size list) of a primitive type (one leaf column).
fn leaf_of_list(field: &FieldRef) -> bool {
    match field.data_type() {
        arrow_schema::DataType::List(item) | arrow_schema::DataType::FixedSizeList(item, _) => {
            !item.data_type().is_nested()
        }
        _ => false,
    }
}

/// The bytes of Arrow data `batch` holds (of its slice, not of the buffers it shares).
fn data_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum()
}

/// Encodes row group `index` from `batches`, one column per task.
fn encode(
    factory: &ArrowRowGroupWriterFactory,
    index: usize,
    schema: &SchemaRef,
    columns: &[Option<FloatColumn>],
    batches: &[RecordBatch],
) -> Encoded {
    let writers = factory.create_column_writers(index)?;
    writers
        .into_par_iter()
        .enumerate()
        .map(|(column, mut writer)| {
            if let Some(floats) = &columns[column] {
                let arrays: Vec<&ArrayRef> = batches.iter().map(|b| b.column(column)).collect();
                if let Some(chunk) = floats.encode(&arrays)? {
                    return Ok(Chunk::Floats(chunk));
                }
            }
            let field = schema.field(column);
            for batch in batches {
                for slice in slices(batch.column(column)) {
                    for leaf in compute_leaves(field, &slice)? {
                        writer.write(&leaf)?;
                    }
                }
            }
            Ok(Chunk::Arrow(writer.close()?))
        })
        .collect()
}

/// `column` cut into zero-copy slices of about `WRITE_SLICE_BYTES` each.
fn slices(column: &ArrayRef) -> impl Iterator<Item = ArrayRef> + '_ {
    let rows = column.len();
    let bytes = column.to_data().get_slice_memory_size().unwrap_or(0);
    let per_slice = (rows * WRITE_SLICE_BYTES / bytes.max(1)).clamp(1, rows.max(1));
    (0..rows)
        .step_by(per_slice)
        .map(move |start| column.slice(start, per_slice.min(rows - start)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{Float32Builder, ListBuilder};
    use arrow_array::{ArrayRef, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn schema() -> SchemaRef {
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("values", DataType::List(item.clone()), false),
        ]))
    }

    /// `rows` rows from `first`, each with `len` values.
    fn batch(first: u64, rows: usize, len: usize) -> RecordBatch {
        let ids = UInt64Array::from_iter_values(first..first + rows as u64);
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        let mut values = ListBuilder::new(Float32Builder::new()).with_field(item);
        for r in 0..rows {
            let row = first as usize + r;
            values
                .values()
                .extend((0..len).map(|i| Some((row * 7 + i) as f32)));
            values.append(true);
        }
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(ids), Arc::new(values.finish()) as ArrayRef],
        )
        .unwrap()
    }

    fn write(batches: &[RecordBatch], threads: usize) -> Bytes {
        let encoders = Encoders::new(threads).unwrap();
        let mut writer =
            ParallelWriter::try_new(Vec::new(), schema(), WriterProperties::default(), &encoders)
                .unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        Bytes::from(writer.finish().unwrap())
    }

    #[test]
    fn files_hold_every_row_in_order_and_do_not_depend_on_the_thread_count() {
        // 3,000 rows of 9.4 KiB: 27 MiB, four row groups of at most 8 MiB, batches cut across
        // their boundaries.
        let batches: Vec<RecordBatch> = (0..3).map(|i| batch(i * 1000, 1000, 2400)).collect();
        let one = write(&batches, 1);
        let eight = write(&batches, 8);
        assert_eq!(one, eight);
        let reader = ParquetRecordBatchReaderBuilder::try_new(one).unwrap();
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        // 8 MiB / 9,612 bytes a row (an id, an offset and 2,400 values), rounded up.
        assert_eq!(groups, [873, 873, 873, 381]);
        let metadata = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert!(metadata.iter().any(|kv| kv.key == "ARROW:schema"));
        let read: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let read = arrow_select::concat::concat_batches(&schema(), &read).unwrap();
        let written = arrow_select::concat::concat_batches(&schema(), &batches).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn an_empty_file_has_no_row_groups() {
        let file = write(&[], 2);
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 0);
        assert_eq!(reader.schema().fields().len(), 2);
    }
}
