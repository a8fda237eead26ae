//! The Parquet sink: each table is a folder of part files, `OUT/<table>/part-NNNNN.parquet`.
//!
//! A part file is written under a temporary name that does not end in `.parquet` and renamed
//! when complete, so `read_parquet('OUT/stats/*.parquet')` never sees half a file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use arrow_array::{RecordBatch, UInt32Array};
use parquet::basic::{Compression as Codec, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::config::{Codecs, Compression, MapDtype};
use crate::cpu::{thread_time, Ledger};
use crate::output::encode::{Encoders, ParallelWriter};
use crate::output::store::Store;
use crate::output::tables::{Formats, Rows, Table};
use crate::plan::OutputSpec;

/// Key of the provenance JSON in each Parquet file's key-value metadata.
pub const PROVENANCE_KEY: &str = "layerwise.provenance";

/// Key of the row order ([`Table::row_order`]) in each Parquet file's key-value metadata.
pub const ROW_ORDER_KEY: &str = "layerwise.row_order";

/// Rows and bytes written per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Rows per table, in [`Table::ALL`] order.
    pub rows: [u64; Table::COUNT],
    /// File bytes per table, in [`Table::ALL`] order.
    pub bytes: [u64; Table::COUNT],
}

impl TableCounts {
    /// Adds another count to this one.
    pub fn add(&mut self, other: &TableCounts) {
        for i in 0..Table::COUNT {
            self.rows[i] += other.rows[i];
            self.bytes[i] += other.bytes[i];
        }
    }
}

/// Writes the tables of one run into its output folder.
pub struct Sink {
    dir: PathBuf,
    formats: Formats,
    shuffle: bool,
    /// The codec of each table.
    codecs: Codecs,
    /// What every file's key-value metadata holds.
    provenance: String,
    encoders: Encoders,
}

impl Sink {
    /// A sink that writes part files into `staging` (the output folder itself, or a local
    /// folder they are uploaded from), creating its table folders; every file carries
    /// `provenance` in its key-value metadata; `encoders` encode their row groups; the list
    /// columns are as `formats` says.
    pub fn new(
        staging: &Path,
        output: &OutputSpec,
        formats: Formats,
        provenance: String,
        encoders: &Encoders,
    ) -> Result<Sink> {
        for table in Table::ALL {
            let folder = staging.join(table.name());
            std::fs::create_dir_all(&folder)
                .with_context(|| format!("cannot create the folder {}", folder.display()))?;
        }
        Ok(Sink {
            dir: staging.to_owned(),
            formats,
            shuffle: output.shuffle,
            codecs: output.codecs,
            provenance,
            encoders: encoders.clone(),
        })
    }

    /// The output folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens part `part` of every table.
    pub fn begin_part(&self, part: usize) -> Result<PartWriter> {
        let files = Table::ALL
            .iter()
            .map(|&table| {
                let shuffled = self.shuffle && table == Table::Positions;
                let base = properties(codec(&self.codecs, table), self.provenance.clone());
                let properties = table_properties(&base, table, &self.formats, shuffled);
                TableFile::create(
                    &self.dir,
                    table,
                    part,
                    &self.formats,
                    properties,
                    &self.encoders,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let shuffle = self.shuffle.then(|| Shuffle::new(part, &self.formats));
        Ok(PartWriter { files, shuffle })
    }
}

/// A table's codec in a run's `codecs`.
fn codec(codecs: &Codecs, table: Table) -> Compression {
    match table {
        Table::Images => codecs.images,
        Table::Stats => codecs.stats,
        Table::Maps => codecs.maps,
        Table::Vectors => codecs.vectors,
        Table::Top => codecs.top,
        Table::Positions => codecs.positions,
    }
}

/// The writer properties every table of a run shares but for its codec: the codec, and
/// `provenance` in the key-value metadata.
pub fn properties(compression: Compression, provenance: String) -> WriterProperties {
    let codec = match compression {
        Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
        Compression::Snappy => Codec::SNAPPY,
        Compression::Lz4Raw => Codec::LZ4_RAW,
        Compression::None => Codec::UNCOMPRESSED,
    };
    WriterProperties::builder()
        .set_compression(codec)
        // Strings (`layer`, `status`, ...) are dictionary-encoded, as the columns are by
        // default; map values are not, a dictionary of floats would not pay. Float32 values
        // are stored byte stream split (each value's four bytes in four streams), which zstd
        // compresses to 12% less than plain floats at the same CPU cost (`benches/RESULTS.md`).
        .set_column_dictionary_enabled(values_column(), false)
        .set_column_encoding(values_column(), Encoding::BYTE_STREAM_SPLIT)
        // Nothing prunes by a map value's min and max: the values get no statistics (computing
        // them was 1.8% of the CPU samples of a bench-small run).
        .set_column_statistics_enabled(values_column(), EnabledStatistics::None)
        .set_key_value_metadata(Some(vec![KeyValue::new(PROVENANCE_KEY.into(), provenance)]))
        .build()
}

/// The leaf column of the `values` lists.
fn values_column() -> ColumnPath {
    ColumnPath::from(vec!["values".into(), "list".into(), "item".into()])
}

/// The run's writer properties with what is particular to `table`: its row order in the
/// key-value metadata, `image_id` (column 0) as the sorting column where rows are in
/// ascending `image_id` order, and plain float16 values (byte stream split of 2-byte values is
/// too recent for the readers).
pub fn table_properties(
    base: &WriterProperties,
    table: Table,
    formats: &Formats,
    shuffled: bool,
) -> WriterProperties {
    let mut metadata = base.key_value_metadata().cloned().unwrap_or_default();
    let order = match shuffled {
        true => SHUFFLED_ORDER,
        false => table.row_order(),
    };
    metadata.push(KeyValue::new(ROW_ORDER_KEY.into(), order.to_owned()));
    let sorting = (table.sorted_by_image_id() && !shuffled).then(|| {
        vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]
    });
    let mut builder = base
        .clone()
        .into_builder()
        .set_key_value_metadata(Some(metadata))
        .set_sorting_columns(sorting);
    let float16 = match table {
        Table::Maps => formats.map_dtype == MapDtype::Float16,
        Table::Positions => formats.positions_dtype == MapDtype::Float16,
        _ => false,
    };
    if float16 {
        builder = builder.set_column_encoding(values_column(), Encoding::PLAIN);
    }
    builder.build()
}

/// One part of one table, being written.
struct TableFile {
    table: Table,
    temporary: PathBuf,
    name: String,
    writer: ParallelWriter<BufWriter<File>>,
    rows: u64,
}

impl TableFile {
    fn create(
        dir: &Path,
        table: Table,
        part: usize,
        formats: &Formats,
        properties: WriterProperties,
        encoders: &Encoders,
    ) -> Result<TableFile> {
        let folder = dir.join(table.name());
        let name = format!("part-{part:05}.parquet");
        remove_leftovers(&folder, &name);
        let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&temporary)
            .with_context(|| format!("cannot create {}", temporary.display()))?;
        let writer = ParallelWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            table.schema(formats),
            properties,
            encoders,
        )?;
        Ok(TableFile {
            table,
            temporary,
            name: format!("{}/{name}", table.name()),
            writer,
            rows: 0,
        })
    }
}

impl TableFile {
    /// Writes `batch`'s rows.
    fn append(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .with_context(|| format!("cannot write {}", self.temporary.display()))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }
}

/// Removes the temporary files an interrupted attempt at this part left behind.
fn remove_leftovers(folder: &Path, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The files of one part, committed together.
pub struct PartWriter {
    files: Vec<TableFile>,
    /// The `positions` rows waiting to be shuffled, with `[output] shuffle`.
    shuffle: Option<Shuffle>,
}

/// The `row_order` of a shuffled `positions` file.
const SHUFFLED_ORDER: &str = "shuffled within the part: each run of SHUFFLE_BYTES (128 MiB) of \
                              rows in the order of a Fisher-Yates shuffle driven by SplitMix64 \
                              from (part << 32) | run";

/// The bytes of `positions` rows shuffled at a time, with `[output] shuffle`.
pub const SHUFFLE_BYTES: usize = 128 << 20;

/// A part's `positions` rows, buffered and written out shuffled, SHUFFLE_BYTES at a time: the
/// same rows give the same order whatever the batches they came in.
struct Shuffle {
    part: usize,
    /// Rows a run holds: SHUFFLE_BYTES of rows of the run's vector length and element type, so
    /// the runs (and the order) do not depend on how the rows were batched.
    run: usize,
    pending: Vec<RecordBatch>,
    rows: usize,
    runs: u64,
}

impl Shuffle {
    fn new(part: usize, formats: &Formats) -> Shuffle {
        let element = match formats.positions_dtype {
            MapDtype::Float32 => 4,
            MapDtype::Float16 => 2,
        };
        // The vector, and the id, position, y and x beside it.
        let row = formats.positions_dim * element + 8 + 3 * 4;
        Shuffle {
            part,
            run: (SHUFFLE_BYTES / row).max(1),
            pending: Vec::new(),
            rows: 0,
            runs: 0,
        }
    }

    /// Takes `batch`; returns the shuffled runs now full.
    fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        self.rows += batch.num_rows();
        self.pending.push(batch);
        let mut full = Vec::new();
        while self.rows >= self.run {
            full.push(self.take(self.run)?);
        }
        Ok(full)
    }

    /// The rows left, shuffled (none when nothing is left).
    fn rest(&mut self) -> Result<Option<RecordBatch>> {
        match self.rows {
            0 => Ok(None),
            rows => self.take(rows).map(Some),
        }
    }

    /// The first `n` pending rows, shuffled.
    fn take(&mut self, n: usize) -> Result<RecordBatch> {
        let schema = self.pending[0].schema();
        let all = arrow_select::concat::concat_batches(&schema, &self.pending)?;
        let rest = all.slice(n, all.num_rows() - n);
        self.pending = if rest.num_rows() > 0 {
            vec![rest]
        } else {
            Vec::new()
        };
        self.rows -= n;
        let seed = ((self.part as u64) << 32) | self.runs;
        self.runs += 1;
        let order = UInt32Array::from(crate::reduce::positions::shuffled(n, n, seed));
        Ok(arrow_select::take::take_record_batch(
            &all.slice(0, n),
            &order,
        )?)
    }
}

impl PartWriter {
    /// Moves `rows` into the part's files, leaving `rows` empty.
    pub fn write(&mut self, rows: &mut Rows) -> Result<()> {
        for ((table, batch), file) in rows.finish().into_iter().zip(&mut self.files) {
            debug_assert_eq!(table, file.table);
            if batch.num_rows() == 0 {
                continue;
            }
            match (&mut self.shuffle, table) {
                (Some(shuffle), Table::Positions) => {
                    for run in shuffle.push(batch)? {
                        file.append(&run)?;
                    }
                }
                _ => file.append(&batch)?,
            }
        }
        Ok(())
    }

    /// Finishes every file (footer written, synced) under its temporary name. When a file
    /// cannot be finished, none of the part's files is left behind.
    pub fn finish(mut self) -> Result<FinishedPart> {
        if let Some(rest) = self
            .shuffle
            .as_mut()
            .map(Shuffle::rest)
            .transpose()?
            .flatten()
        {
            let positions = self.files.iter_mut().find(|f| f.table == Table::Positions);
            positions.expect("a part has every table").append(&rest)?;
        }
        let files = std::mem::take(&mut self.files);
        // Dropped on an error below, it removes every file of the part.
        let mut finished = FinishedPart {
            files: files
                .iter()
                .map(|f| (f.temporary.clone(), f.name.clone()))
                .collect(),
            counts: TableCounts::default(),
        };
        for (i, file) in files.into_iter().enumerate() {
            let temporary = file.temporary.clone();
            let bytes = finish(file.writer)
                .and_then(|_| Ok(std::fs::metadata(&temporary)?.len()))
                .with_context(|| format!("cannot finish {}", temporary.display()))?;
            finished.counts.rows[i] = file.rows;
            finished.counts.bytes[i] = bytes;
        }
        Ok(finished)
    }
}

/// A part written on a thread of its own, so that encoding and compressing one batch overlaps
/// decoding and running the next. At most `queue_depth` batches wait for it.
pub struct BackgroundPart {
    sender: Option<SyncSender<Rows>>,
    thread: Option<JoinHandle<Result<FinishedPart>>>,
}

impl BackgroundPart {
    /// Hands part `number` to a new writer thread, whose CPU time goes to `cpu`.
    pub fn start(
        mut part: PartWriter,
        number: usize,
        queue_depth: usize,
        cpu: &Arc<Ledger>,
    ) -> BackgroundPart {
        let (sender, receiver) = sync_channel::<Rows>(queue_depth);
        let (cpu, name) = (cpu.clone(), format!("layerwise-writer-{number}"));
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                crate::cpu::yield_to_inference();
                let written = (|| {
                    for mut rows in receiver {
                        part.write(&mut rows)?;
                    }
                    part.finish()
                })();
                let used = thread_time();
                cpu.write.add(used);
                cpu.thread(name, used);
                written.map_err(explain_storage_error)
            })
            .expect("the writer thread starts");
        BackgroundPart {
            sender: Some(sender),
            thread: Some(thread),
        }
    }

    /// Queues rows (waiting while the queue is full); the writer's error, if it stopped.
    pub fn write(&mut self, rows: Rows) -> Result<()> {
        let sender = self.sender.as_ref().expect("no rows after close");
        if sender.send(rows).is_err() {
            // The thread ended early: it failed, and its error says why.
            return self
                .join()
                .and_then(|_| Err(anyhow::anyhow!("the writer thread stopped")));
        }
        Ok(())
    }

    /// Tells the writer that no more rows come, without waiting for it: it writes what is
    /// queued and finishes the files (footers, sync) on its own thread while the caller goes on
    /// to the next part. [`BackgroundPart::finish`] then collects the result.
    pub fn close(&mut self) {
        self.sender = None;
    }

    /// Whether the writer thread has ended, its part finished or failed: `finish` returns at
    /// once.
    pub fn is_done(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| t.is_finished())
    }

    /// Waits for every queued batch to be written and the files finished.
    pub fn finish(mut self) -> Result<FinishedPart> {
        self.join()
    }

    fn join(&mut self) -> Result<FinishedPart> {
        self.sender = None;
        match self.thread.take().expect("joined once").join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for BackgroundPart {
    /// A part dropped before it was finished (the run was stopped, or failed elsewhere): the
    /// writer thread is told there is no more, waited for, and its files are removed.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.sender = None;
            let _ = self.thread.take().expect("checked").join();
        }
    }
}

/// A part whose files are complete under temporary names, ready to be published.
pub struct FinishedPart {
    /// Each file's temporary path and its name in the run, e.g. `stats/part-00003.parquet`.
    files: Vec<(PathBuf, String)>,
    /// Rows and bytes per table.
    pub counts: TableCounts,
}

impl FinishedPart {
    /// Puts every file in place under its final name; returns rows and bytes per table.
    pub fn publish(self, store: &Store) -> Result<TableCounts> {
        for (temporary, name) in &self.files {
            store.publish(temporary, name)?;
        }
        Ok(self.counts)
    }
}

/// Adds what to do to a write error caused by a full disk or a file size limit.
fn explain_storage_error(err: anyhow::Error) -> anyhow::Error {
    use std::io::ErrorKind;
    let full = err
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::FileTooLarge));
    if full {
        err.context(
            "the output's disk is full (or a file size limit was reached): the part in \
             progress was not committed and its files were removed; free space and run the same \
             command again, which keeps the committed parts and does the rest",
        )
    } else {
        err
    }
}

/// Writes the Parquet footer, flushes and syncs the file.
fn finish(writer: ParallelWriter<BufWriter<File>>) -> Result<()> {
    let buffered = writer.finish()?;
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

impl Drop for FinishedPart {
    /// Files that were not published are removed (after publishing, none is left to remove).
    fn drop(&mut self) {
        for (temporary, _) in &self.files {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

impl Drop for PartWriter {
    /// A part that was not committed leaves no file behind.
    fn drop(&mut self) {
        for file in &self.files {
            let _ = std::fs::remove_file(&file.temporary);
        }
    }
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::model::statistics::MapStats;
    use crate::output::encode::ROW_GROUP_BYTES;
    use crate::output::tables::{MapKey, PositionKey};

    /// Writes `rows` as part 0 of a run in `dir`; the finished (unpublished) part.
    fn write_part(dir: &Path, rows: Rows) -> FinishedPart {
        write_part_of(dir, rows, Formats::default())
    }

    fn write_part_of(dir: &Path, mut rows: Rows, formats: Formats) -> FinishedPart {
        let encoders = Encoders::new(2).unwrap();
        let mut part = begin_part(dir, formats, &encoders);
        part.write(&mut rows).unwrap();
        part.finish().unwrap()
    }

    /// Part 0 of a run in `dir`, every table Zstandard.
    fn begin_part(dir: &Path, formats: Formats, encoders: &Encoders) -> PartWriter {
        let output = OutputSpec {
            location: crate::location::Location::Local(dir.to_owned()),
            codecs: crate::config::Compressions::All(Compression::Zstd).codecs(Compression::None),
            map_dtype: formats.map_dtype,
            shuffle: false,
        };
        let sink = Sink::new(dir, &output, formats, "{}".into(), encoders).unwrap();
        sink.begin_part(0).unwrap()
    }

    #[test]
    fn a_closed_part_is_finished_on_its_writer_thread_while_the_caller_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let encoders = Encoders::new(2).unwrap();
        let part = begin_part(dir.path(), Formats::default(), &encoders);
        let mut writer = BackgroundPart::start(part, 0, 2, &Arc::new(Ledger::default()));
        let stats = MapStats([0.5, 1.0, 0.0, 2.0, 1.0, 2.0, 0.25]);
        for image_id in 0..3 {
            let mut rows = Rows::new(&Formats::default());
            for channel in 0..5 {
                rows.stats.push(key(image_id, "l", channel, 2), &stats);
            }
            writer.write(rows).unwrap();
        }
        writer.close();
        let closed = std::time::Instant::now();
        while !writer.is_done() {
            assert!(closed.elapsed().as_secs() < 60, "the writer never ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Nobody waited for it, yet every file has its footer: the thread finished the part.
        let temporary: Vec<PathBuf> = std::fs::read_dir(dir.path().join("stats"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(temporary.len(), 1, "{temporary:?}");
        let file = File::open(&temporary[0]).unwrap();
        let rows = SerializedFileReader::new(file)
            .unwrap()
            .metadata()
            .file_metadata()
            .num_rows();
        assert_eq!(rows, 15);
        let part = writer.finish().unwrap();
        assert_eq!(part.counts.rows[table_index(Table::Stats)], 15);
        assert_eq!(part.files.len(), Table::COUNT);
    }

    /// Where `table` is in a part's files and counts.
    fn table_index(table: Table) -> usize {
        Table::ALL.iter().position(|&t| t == table).unwrap()
    }

    fn metadata(part: &FinishedPart, table: Table) -> parquet::file::metadata::ParquetMetaData {
        let file = File::open(&part.files[table_index(table)].0).unwrap();
        SerializedFileReader::new(file).unwrap().metadata().clone()
    }

    fn key(image_id: u64, layer: &str, channel: u32, side: u32) -> MapKey<'_> {
        MapKey {
            image_id,
            layer,
            channel,
            height: side,
            width: side,
        }
    }

    #[test]
    fn row_groups_close_at_the_row_count_with_layer_dictionary_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Rows::new(&Formats::default());
        let stats = MapStats([0.5, 1.0, 0.0, 2.0, 1.0, 2.0, 0.25]);
        // 521 images x (64 + 512) channels: 300,096 rows of two layers.
        for image_id in 0..521 {
            for (layer, channels) in [("block1_conv1", 64), ("block5_conv3", 512)] {
                for channel in 0..channels {
                    rows.stats.push(key(image_id, layer, channel, 14), &stats);
                }
            }
        }
        let meta = metadata(&write_part(dir.path(), rows), Table::Stats);
        let sizes: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(sizes, [131_072, 131_072, 37_952]);
        for group in meta.row_groups() {
            let layer = group.column(1);
            assert_eq!(layer.column_path().string(), "layer");
            assert!(layer.dictionary_page_offset().is_some());
            let encodings: Vec<Encoding> = layer.encodings().collect();
            assert!(
                encodings.contains(&Encoding::RLE_DICTIONARY),
                "{encodings:?}"
            );
            // Statistics let readers skip row groups by image_id.
            let image_id = group.column(0).statistics().expect("statistics on");
            assert!(image_id.min_bytes_opt().is_some() && image_id.max_bytes_opt().is_some());
        }
    }

    #[test]
    fn row_groups_of_maps_are_bounded_in_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Rows::new(&Formats::default());
        // 400 maps of 256 x 256 noise (which does not compress): 100 MiB.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut map = vec![0f32; 256 * 256];
        for channel in 0..400 {
            for v in &mut map {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *v = (state >> 40) as f32;
            }
            rows.maps.push(key(0, "block1_conv1", channel, 256), &map);
        }
        let meta = metadata(&write_part(dir.path(), rows), Table::Maps);
        let groups = meta.row_groups();
        assert!(groups.len() >= 2, "{} row groups", groups.len());
        let slack = 1 << 20;
        for group in groups {
            assert!(
                group.compressed_size() <= ROW_GROUP_BYTES as i64 + slack,
                "{} bytes",
                group.compressed_size()
            );
        }
        let total: i64 = groups.iter().map(|g| g.num_rows()).sum();
        assert_eq!(total, 400);
    }

    #[test]
    fn float32_values_are_byte_stream_split_float16_plain_and_positions_uncompressed() {
        for (dtype, want) in [
            (MapDtype::Float32, Encoding::BYTE_STREAM_SPLIT),
            (MapDtype::Float16, Encoding::PLAIN),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let formats = Formats {
                map_dtype: dtype,
                positions_dtype: dtype,
                positions_dim: 2,
            };
            let mut rows = Rows::new(&formats);
            rows.maps.push(key(0, "l", 0, 2), &[0.5, -1.0, 2.0, 3.0]);
            rows.vectors.push(0, "v", [1.0, 2.0]);
            let at = PositionKey {
                image_id: 0,
                layer: "l",
                position: 3,
                yx: Some((1, 1)),
            };
            rows.positions.push(at, &[0.25, 4.0]);
            let part = write_part_of(dir.path(), rows, formats);
            for table in [Table::Maps, Table::Vectors, Table::Positions] {
                let meta = metadata(&part, table);
                let values = meta.row_group(0).columns().last().unwrap().clone();
                assert_eq!(values.column_path().string(), "values.list.item");
                let encodings: Vec<Encoding> = values.encodings().collect();
                let want = if table == Table::Vectors {
                    Encoding::BYTE_STREAM_SPLIT
                } else {
                    want
                };
                assert!(
                    encodings.contains(&want),
                    "{dtype:?} {table:?}: {encodings:?}"
                );
                let codec = match table {
                    Table::Positions => parquet::basic::Compression::UNCOMPRESSED,
                    _ => parquet::basic::Compression::ZSTD(Default::default()),
                };
                assert_eq!(values.compression(), codec, "{table:?}");
            }
        }
    }
}
