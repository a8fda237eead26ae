//! Column chunks of float lists (the `values` of `maps`, `vectors`, `top` and `positions`,
//! float32 or float16), encoded here rather than by the Parquet crate: its column writer builds
//! levels for every value and copies each value through several buffers, which took about half
//! of the writer's CPU on float32 maps and stored float16 positions at 37 MB a second
//! (`benches/RESULTS.md`). Here a page's values go from the Arrow buffer into the page once: as
//! they lie in memory (PLAIN: a float16 is its two little-endian bytes, as Arrow holds it) or
//! byte stream split (float32: the four bytes of each value in four streams), the levels as a
//! few run-length runs per row, and each page is compressed with the column's codec: the same
//! Parquet as the crate writes (the tests read both back equal), spliced into the row group the
//! same way.

use std::io::Read;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, PageType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{ColumnChunkMetaData, PageEncodingStats};
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// A column chunk encoded here: its pages (the chunk starts at offset 0) and what its row group
/// records of it.
pub struct Chunk {
    /// The pages, headers included.
    pub pages: Pages,
    /// Its metadata and offset index.
    pub close: ColumnCloseResult,
}

/// A column chunk's pages, one after the other, as the Parquet crate reads a chunk to splice.
pub struct Pages(Vec<Bytes>);

impl Length for Pages {
    fn len(&self) -> u64 {
        self.0.iter().map(|p| p.len() as u64).sum()
    }
}

impl ChunkReader for Pages {
    type T = PagesRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<PagesRead> {
        let mut read = PagesRead(self.0.iter().rev().cloned().collect());
        std::io::copy(&mut (&mut read).take(start), &mut std::io::sink())?;
        Ok(read)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let mut bytes = Vec::with_capacity(length);
        self.get_read(start)?
            .take(length as u64)
            .read_to_end(&mut bytes)?;
        Ok(Bytes::from(bytes))
    }
}

/// Reads [`Pages`] from an offset: the pages left, the next last.
pub struct PagesRead(Vec<Bytes>);

impl Read for PagesRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while let Some(page) = self.0.last_mut() {
            if page.is_empty() {
                self.0.pop();
                continue;
            }
            let n = out.len().min(page.len());
            out[..n].copy_from_slice(&page.split_to(n));
            return Ok(n);
        }
        Ok(0)
    }
}

/// How one column of float lists is written: its Parquet column, value width, encoding,
/// codec and page size.
#[derive(Clone)]
pub struct FloatColumn {
    descr: ColumnDescPtr,
    /// Bytes per value: 2 (float16) or 4 (float32).
    width: usize,
    encoding: Encoding,
    codec: Compression,
    page_bytes: usize,
    page_rows: usize,
}

impl FloatColumn {
    /// The writer of `field`'s column `descr` under `properties`, when this module writes it: a
    /// list or fixed-size list of float16 (PLAIN) or float32 (PLAIN or BYTE_STREAM_SPLIT) in
    /// which neither lists nor values may be null (so at most one repetition and one
    /// definition level), dictionary off, no statistics and a codec of none, Snappy, LZ4_RAW or
    /// Zstandard. None otherwise.
    pub fn new(
        field: &Field,
        descr: &ColumnDescPtr,
        properties: &WriterProperties,
    ) -> Option<FloatColumn> {
        let item = match field.data_type() {
            DataType::List(item) | DataType::FixedSizeList(item, _) => item,
            _ => return None,
        };
        let path = descr.path();
        let codec = properties.compression(path);
        let encoding = properties.encoding(path).unwrap_or(Encoding::PLAIN);
        let width = match (item.data_type(), encoding) {
            (DataType::Float16, Encoding::PLAIN) => 2,
            (DataType::Float32, Encoding::PLAIN | Encoding::BYTE_STREAM_SPLIT) => 4,
            _ => return None,
        };
        let supported = matches!(
            codec,
            Compression::UNCOMPRESSED
                | Compression::SNAPPY
                | Compression::LZ4_RAW
                | Compression::ZSTD(_)
        );
        let plain = !properties.dictionary_enabled(path)
            && properties.statistics_enabled(path)
                == parquet::file::properties::EnabledStatistics::None
            && properties.bloom_filter_properties(path).is_none();
        let levels = descr.max_rep_level() == 1 && descr.max_def_level() == 1;
        let wanted = !field.is_nullable() && !item.is_nullable() && supported && plain && levels;
        wanted.then(|| FloatColumn {
            descr: descr.clone(),
            width,
            encoding,
            codec,
            page_bytes: properties.data_page_size_limit(),
            page_rows: properties.data_page_row_count_limit(),
        })
    }

    /// The column chunk of `arrays` (the column of each batch of a row group, in order); None
    /// when one holds a null, which the Parquet crate then writes.
    pub fn encode(&self, arrays: &[&ArrayRef]) -> Result<Option<Chunk>> {
        let mut all = Vec::with_capacity(arrays.len());
        for array in arrays {
            match Rows::of(array, self.width) {
                Some(r) => all.push(r),
                None => return Ok(None),
            }
        }
        let mut chunk = ChunkWriter::new(self)?;
        let mut start = (0, 0);
        let (mut bytes, mut rows) = (0, 0);
        for (at, r) in all.iter().enumerate() {
            for row in 0..r.len() {
                bytes += r.row(row).len();
                rows += 1;
                if bytes >= self.page_bytes || rows >= self.page_rows {
                    chunk.page(&all, start, (at, row + 1))?;
                    start = (at, row + 1);
                    (bytes, rows) = (0, 0);
                }
            }
        }
        if rows > 0 {
            chunk.page(&all, start, (all.len() - 1, all[all.len() - 1].len()))?;
        }
        chunk.finish().map(Some)
    }
}

/// The rows of one list array: each row's values as bytes, `width` bytes a value.
struct Rows<'a> {
    bytes: &'a [u8],
    width: usize,
    offsets: Vec<usize>,
}

impl<'a> Rows<'a> {
    /// None when the array or its values hold a null, or its values are not `width` bytes wide.
    fn of(array: &'a ArrayRef, width: usize) -> Option<Rows<'a>> {
        if array.null_count() > 0 {
            return None;
        }
        let (values, offsets) = match array.data_type() {
            DataType::FixedSizeList(_, size) => {
                let list = array.as_fixed_size_list();
                let size = *size as usize;
                let first = list.offset() * size;
                let offsets = (0..=list.len()).map(|r| first + r * size).collect();
                (list.values(), offsets)
            }
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                let offsets = list.value_offsets().iter().map(|&o| o as usize).collect();
                (list.values(), offsets)
            }
            _ => return None,
        };
        if values.null_count() > 0 {
            return None;
        }
        let bytes = match width {
            2 => values.as_primitive_opt::<Float16Type>()?.values().inner(),
            _ => values.as_primitive_opt::<Float32Type>()?.values().inner(),
        };
        Some(Rows {
            bytes: bytes.as_slice(),
            width,
            offsets,
        })
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Row `row`'s values, `width` bytes each.
    fn row(&self, row: usize) -> &'a [u8] {
        self.span(row, row + 1)
    }

    /// The values of rows `first..end`, which lie one after the other.
    fn span(&self, first: usize, end: usize) -> &'a [u8] {
        &self.bytes[self.offsets[first] * self.width..self.offsets[end] * self.width]
    }
}

/// A column chunk being written, a page at a time.
struct ChunkWriter<'c> {
    column: &'c FloatColumn,
    compressor: Compressor,
    /// Each page, its header first: kept apart (each about a page in size, reused from the
    /// heap) rather than gathered into one buffer of the chunk's size.
    pages: Vec<Bytes>,
    offset: u64,
    rows: u64,
    levels: u64,
    locations: Vec<PageLocation>,
    compressed: u64,
    uncompressed: u64,
}

impl<'c> ChunkWriter<'c> {
    fn new(column: &'c FloatColumn) -> Result<ChunkWriter<'c>> {
        Ok(ChunkWriter {
            column,
            compressor: Compressor::new(column.codec)?,
            pages: Vec::new(),
            offset: 0,
            rows: 0,
            levels: 0,
            locations: Vec::new(),
            compressed: 0,
            uncompressed: 0,
        })
    }

    /// Writes the page of the rows from `start` to `end` (each an array of `all` and a row of
    /// it; `end` excluded).
    fn page(&mut self, all: &[Rows], start: (usize, usize), end: (usize, usize)) -> Result<()> {
        let stretches = || {
            (start.0..=end.0).map(move |at| {
                let first = if at == start.0 { start.1 } else { 0 };
                let stop = if at == end.0 { end.1 } else { all[at].len() };
                (&all[at], first, stop)
            })
        };
        let (mut repetition, mut definition) = (Runs::default(), Runs::default());
        let (mut rows, mut levels, mut bytes) = (0, 0u32, 0);
        for (r, first, end) in stretches() {
            for row in first..end {
                let count = (r.row(row).len() / self.column.width) as u32;
                repetition.push(0, 1);
                repetition.push(1, count.saturating_sub(1));
                definition.push(u8::from(count > 0), count.max(1));
                levels += count.max(1);
            }
            rows += end - first;
            bytes += r.span(first, end).len();
        }
        let mut buf = Vec::with_capacity(repetition.len() + definition.len() + bytes);
        repetition.write_to(&mut buf);
        definition.write_to(&mut buf);
        let spans = stretches().map(|(r, first, end)| r.span(first, end));
        match self.column.encoding {
            Encoding::BYTE_STREAM_SPLIT => split_streams(spans, bytes, &mut buf),
            _ => spans.for_each(|span| buf.extend_from_slice(span)),
        }
        self.write(buf, rows, levels)
    }

    /// Compresses and writes one page of `rows` rows, `levels` levels.
    fn write(&mut self, buf: Vec<u8>, rows: usize, levels: u32) -> Result<()> {
        let uncompressed = buf.len();
        let buf = self.compressor.compress(buf)?;
        let data = Page::DataPage {
            buf: Bytes::from(buf),
            num_values: levels,
            encoding: self.column.encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let mut out = TrackedWrite::new(Vec::with_capacity(data.buffer().len() + 64));
        let spec = SerializedPageWriter::new(&mut out)
            .write_page(CompressedPage::new(data, uncompressed))?;
        self.locations.push(PageLocation {
            offset: self.offset as i64,
            compressed_page_size: spec.bytes_written as i32,
            first_row_index: self.rows as i64,
        });
        self.offset += spec.bytes_written;
        self.compressed += spec.compressed_size as u64;
        self.uncompressed += spec.uncompressed_size as u64;
        self.rows += rows as u64;
        self.levels += u64::from(levels);
        self.pages.push(Bytes::from(out.into_inner()?));
        Ok(())
    }

    fn finish(self) -> Result<Chunk> {
        let pages = self.locations.len() as i32;
        let metadata = ColumnChunkMetaData::builder(self.column.descr.clone())
            .set_compression(self.column.codec)
            .set_encodings(vec![self.column.encoding, Encoding::RLE])
            .set_num_values(self.levels as i64)
            .set_total_compressed_size(self.compressed as i64)
            .set_total_uncompressed_size(self.uncompressed as i64)
            .set_data_page_offset(0)
            .set_page_encoding_stats(vec![PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: self.column.encoding,
                count: pages,
            }])
            .build()?;
        let close = ColumnCloseResult {
            bytes_written: self.offset,
            rows_written: self.rows,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(OffsetIndexMetaData {
                page_locations: self.locations,
                unencoded_byte_array_data_bytes: None,
            }),
        };
        Ok(Chunk {
            pages: Pages(self.pages),
            close,
        })
    }
}

/// Appends `bytes` bytes of 4-byte values, given in `spans`, to `page` byte stream split: the
/// first byte of every value, then the second, the third and the fourth. One pass, each value
/// read once and its bytes written to the four streams (a loop the compiler vectorises).
fn split_streams<'a>(spans: impl Iterator<Item = &'a [u8]>, bytes: usize, page: &mut Vec<u8>) {
    let count = bytes / 4;
    let start = page.len();
    page.resize(start + bytes, 0);
    let (s0, rest) = page[start..].split_at_mut(count);
    let (s1, rest) = rest.split_at_mut(count);
    let (s2, s3) = rest.split_at_mut(count);
    let mut at = 0;
    for span in spans {
        let n = span.len() / 4;
        let (s0, s1, s2, s3) = (
            &mut s0[at..at + n],
            &mut s1[at..at + n],
            &mut s2[at..at + n],
            &mut s3[at..at + n],
        );
        for (i, value) in span.chunks_exact(4).enumerate() {
            let v = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
            s0[i] = v as u8;
            s1[i] = (v >> 8) as u8;
            s2[i] = (v >> 16) as u8;
            s3[i] = (v >> 24) as u8;
        }
        at += n;
    }
}

/// A page compressor of one of the codecs [`FloatColumn::new`] accepts, its context reused
/// from page to page.
enum Compressor {
    Zstd(zstd::bulk::Compressor<'static>),
    Snappy(Box<snap::raw::Encoder>),
    Lz4,
    None,
}

impl Compressor {
    fn new(codec: Compression) -> Result<Compressor> {
        Ok(match codec {
            Compression::ZSTD(level) => {
                Compressor::Zstd(zstd::bulk::Compressor::new(level.compression_level())?)
            }
            Compression::SNAPPY => Compressor::Snappy(Box::new(snap::raw::Encoder::new())),
            Compression::LZ4_RAW => Compressor::Lz4,
            _ => Compressor::None,
        })
    }

    /// `data` compressed.
    fn compress(&mut self, data: Vec<u8>) -> Result<Vec<u8>> {
        Ok(match self {
            Compressor::Zstd(zstd) => zstd.compress(&data)?,
            Compressor::Snappy(snappy) => snappy.compress_vec(&data)?,
            Compressor::Lz4 => lz4_flex::block::compress(&data),
            Compressor::None => data,
        })
    }
}

/// Levels of bit width 1 as Parquet's run-length runs (`RLE` in the RLE/bit-packing hybrid),
/// consecutive runs of one value merged.
#[derive(Default)]
struct Runs {
    bytes: Vec<u8>,
    value: u8,
    count: u32,
}

impl Runs {
    /// Adds `count` levels of `value` (0 or 1).
    fn push(&mut self, value: u8, count: u32) {
        if count == 0 {
            return;
        }
        if self.count > 0 && self.value != value {
            self.close_run();
        }
        self.value = value;
        self.count += count;
    }

    /// About the bytes the runs take (within a few bytes: the open run is not yet counted).
    fn len(&self) -> usize {
        self.bytes.len() + 16
    }

    fn close_run(&mut self) {
        let mut header = u64::from(self.count) << 1;
        while header >= 0x80 {
            self.bytes.push((header as u8) | 0x80);
            header >>= 7;
        }
        self.bytes.push(header as u8);
        self.bytes.push(self.value);
        self.count = 0;
    }

    /// Appends the levels to a V1 data page: their length (4 bytes, little-endian), then them.
    fn write_to(mut self, page: &mut Vec<u8>) {
        if self.count > 0 {
            self.close_run();
        }
        page.extend_from_slice(&(self.bytes.len() as u32).to_le_bytes());
        page.extend_from_slice(&self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{FixedSizeListBuilder, Float16Builder, Float32Builder, ListBuilder};
    use arrow_array::{RecordBatch, UInt64Array};
    use arrow_schema::Schema;
    use half::f16;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::ZstdLevel;
    use parquet::file::properties::EnabledStatistics;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::schema::types::ColumnPath;

    use super::*;
    use crate::output::encode::{Encoders, ParallelWriter};

    /// Row `r`'s values: `len` of them, some negative, infinite, NaN and subnormal.
    fn row(r: usize, len: usize) -> impl Iterator<Item = f32> {
        (0..len).map(move |i| match (r + i) % 97 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::from_bits(1),
            k => (k as f32 - 40.0) * 0.37 + r as f32,
        })
    }

    /// A batch of `rows` rows from `first`: `id` and `values` (float16 or float32),
    /// fixed-size lists of `dim` or, with `dim` 0, lists of 0 to 12 values.
    fn batch(first: usize, rows: usize, dim: usize, dtype: &DataType) -> RecordBatch {
        let len = |r: usize| if dim > 0 { dim } else { r % 13 };
        let values: ArrayRef = match dtype {
            DataType::Float16 => {
                let mut b = lists(Float16Builder::new(), dim, dtype);
                for r in first..first + rows {
                    b.append_row(row(r, len(r)).map(|v| Some(f16::from_f32(v))));
                }
                b.finish()
            }
            _ => {
                let mut b = lists(Float32Builder::new(), dim, dtype);
                for r in first..first + rows {
                    b.append_row(row(r, len(r)).map(Some));
                }
                b.finish()
            }
        };
        let ids = UInt64Array::from_iter_values((first..first + rows).map(|r| r as u64));
        let schema = Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("values", values.data_type().clone(), false),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ids), values]).unwrap()
    }

    /// A list builder of either kind, behind one face.
    enum Lists<B: arrow_array::builder::ArrayBuilder> {
        Fixed(FixedSizeListBuilder<B>),
        Variable(ListBuilder<B>),
    }

    fn lists<B: arrow_array::builder::ArrayBuilder>(
        values: B,
        dim: usize,
        dtype: &DataType,
    ) -> Lists<B> {
        let item = Arc::new(Field::new_list_field(dtype.clone(), false));
        match dim {
            0 => Lists::Variable(ListBuilder::new(values).with_field(item)),
            _ => Lists::Fixed(FixedSizeListBuilder::new(values, dim as i32).with_field(item)),
        }
    }

    impl<B: arrow_array::builder::ArrayBuilder> Lists<B> {
        fn append_row<T>(&mut self, row: impl Iterator<Item = Option<T>>)
        where
            B: Extend<Option<T>>,
        {
            match self {
                Lists::Fixed(b) => {
                    b.values().extend(row);
                    b.append(true);
                }
                Lists::Variable(b) => {
                    b.values().extend(row);
                    b.append(true);
                }
            }
        }

        fn finish(&mut self) -> ArrayRef {
            match self {
                Lists::Fixed(b) => Arc::new(b.finish()),
                Lists::Variable(b) => Arc::new(b.finish()),
            }
        }
    }

    fn properties(codec: Compression, encoding: Encoding) -> WriterProperties {
        let values = ColumnPath::from(vec!["values".into(), "list".into(), "item".into()]);
        WriterProperties::builder()
            .set_compression(codec)
            .set_column_dictionary_enabled(values.clone(), false)
            .set_column_encoding(values.clone(), encoding)
            .set_column_statistics_enabled(values, EnabledStatistics::None)
            .set_data_page_size_limit(4096)
            .build()
    }

    /// The batches written by `ParallelWriter` (this module) and by `ArrowWriter` (the crate).
    fn both(batches: &[RecordBatch], properties: WriterProperties) -> (Bytes, Bytes) {
        let schema = batches[0].schema();
        let encoders = Encoders::new(2).unwrap();
        let mut ours =
            ParallelWriter::try_new(Vec::new(), schema.clone(), properties.clone(), &encoders)
                .unwrap();
        let mut theirs = ArrowWriter::try_new(Vec::new(), schema, Some(properties)).unwrap();
        for b in batches {
            ours.write(b).unwrap();
            theirs.write(b).unwrap();
        }
        (
            Bytes::from(ours.finish().unwrap()),
            Bytes::from(theirs.into_inner().unwrap()),
        )
    }

    /// Each row's values as bits (NaN != NaN) and its `id`.
    fn bits(batch: &RecordBatch) -> Vec<(u64, Vec<u32>)> {
        let ids = batch
            .column(0)
            .as_primitive::<arrow_array::types::UInt64Type>();
        let values = batch.column(1);
        (0..batch.num_rows())
            .map(|r| {
                let row = match values.data_type() {
                    DataType::List(_) => values.as_list::<i32>().value(r),
                    _ => values.as_fixed_size_list().value(r),
                };
                let bits = match row.data_type() {
                    DataType::Float16 => row
                        .as_primitive::<Float16Type>()
                        .values()
                        .iter()
                        .map(|v| u32::from(v.to_bits()))
                        .collect(),
                    _ => row
                        .as_primitive::<Float32Type>()
                        .values()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect(),
                };
                (ids.value(r), bits)
            })
            .collect()
    }

    fn read(file: Bytes) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn float_lists_read_back_as_the_parquet_crate_writes_them() {
        let kinds = [
            (DataType::Float16, Encoding::PLAIN),
            (DataType::Float32, Encoding::PLAIN),
            (DataType::Float32, Encoding::BYTE_STREAM_SPLIT),
        ];
        for (dtype, encoding) in kinds {
            for dim in [384, 1, 0] {
                for codec in [
                    Compression::UNCOMPRESSED,
                    Compression::SNAPPY,
                    Compression::LZ4_RAW,
                    Compression::ZSTD(ZstdLevel::default()),
                ] {
                    let what = format!("{dtype} {encoding} {dim} {codec:?}");
                    let batches = [
                        batch(0, 70, dim, &dtype),
                        batch(70, 1, dim, &dtype),
                        batch(71, 33, dim, &dtype),
                    ];
                    let (ours, theirs) = both(&batches, properties(codec, encoding));
                    let concat = |b: &[RecordBatch]| {
                        arrow_select::concat::concat_batches(&b[0].schema(), b).unwrap()
                    };
                    let want = bits(&concat(&batches));
                    assert_eq!(bits(&concat(&read(ours.clone()))), want, "{what}");
                    assert_eq!(bits(&concat(&read(theirs))), want, "{what}");
                    let meta = SerializedFileReader::new(ours).unwrap();
                    let column = meta.metadata().row_group(0).column(1);
                    assert_eq!(column.compression(), codec, "{what}");
                    assert!(column.encodings().any(|e| e == encoding), "{what}");
                    assert!(column.offset_index_offset().is_some(), "an offset index");
                    let pages = meta.get_row_group(0).unwrap().get_column_page_reader(1);
                    let pages = pages.unwrap().count();
                    if dim == 384 {
                        assert!(pages > 1, "pages of at most 4 KiB: {pages}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_streams_hold_each_byte_of_every_value_in_turn() {
        let values: Vec<u8> = (0..24).collect();
        let mut page = vec![9];
        split_streams([&values[..8], &values[8..]].into_iter(), 24, &mut page);
        let want: Vec<u8> = std::iter::once(9)
            .chain((0..4).flat_map(|b| (0..6).map(move |v| v * 4 + b)))
            .collect();
        assert_eq!(page, want);
    }

    #[test]
    fn runs_are_varint_headers_and_one_byte_values() {
        let mut runs = Runs::default();
        runs.push(0, 1);
        runs.push(1, 383);
        runs.push(0, 1);
        runs.push(0, 1);
        let mut page = Vec::new();
        runs.write_to(&mut page);
        // 383 << 1 = 766 = 0b101_1111110: varint 0xfe 0x05.
        assert_eq!(page, [7, 0, 0, 0, 2, 0, 0xfe, 0x05, 1, 4, 0]);
    }
}
