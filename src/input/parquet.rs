//! Parquet files holding image bytes, read a few rows at a time with only the needed columns
//! projected: img2dataset's output (a `jpg` binary column, `key`, `status`, `error_message`)
//! and Hugging Face datasets (an `image` column of `struct<bytes: binary, path: string>`,
//! class names of a ClassLabel column under the schema metadata's `huggingface` key).

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Schema};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;

use crate::error::PlanError;
use crate::input::remote::Object;
use crate::input::shards::open_local;
use crate::input::stream::Emitter;
use crate::input::Content;
use crate::input::{Format, ShardFormat, ShardReader};
use crate::location::Location;
use crate::plan::ShardsSpec;

/// The binary columns tried, in order, when `input.image_field` is not set and there is no
/// Hugging Face `image` column.
pub const DEFAULT_IMAGE_COLUMNS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Rows decoded at a time (the reader's memory is a few of these and one page per column).
const ROWS: usize = 16;

/// Which columns hold a row's image, label and key (default: the default image column, no
/// label, the row number as key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    image: Option<String>,
    label: Option<String>,
    key: Option<String>,
}

/// The Parquet format: `input.parquet`.
pub struct Parquet;

impl ShardFormat for Parquet {
    fn key(&self) -> &'static str {
        "parquet"
    }

    fn reader(&self, spec: &ShardsSpec) -> Result<Format, PlanError> {
        Ok(Arc::new(Fields::new(spec)?))
    }
}

impl ShardReader for Fields {
    fn read(&self, location: &Location, emit: &mut Emitter) {
        read_location(location, self, emit)
    }
}

impl Fields {
    /// The columns a shards spec names (`image_field`: one column, `label_field`,
    /// `key_field`).
    pub fn new(spec: &ShardsSpec) -> Result<Fields, PlanError> {
        if spec.image_field.len() > 1 {
            return Err(PlanError::invalid(
                "input.image_field",
                "names one column for a parquet input",
            ));
        }
        Ok(Fields {
            image: spec.image_field.first().cloned(),
            label: spec.label_field.clone(),
            key: spec.key_field.clone(),
        })
    }
}

/// Reads the Parquet shard at `location` and emits its rows (or the shard's error row).
pub fn read_location(location: &Location, fields: &Fields, emit: &mut Emitter) {
    match location {
        Location::Local(path) => match open_local(path) {
            Ok(file) => read_shard(file, fields, path.parent(), emit),
            Err(reason) => emit.shard_error(reason),
        },
        Location::Remote(url) => match Object::open(url) {
            Ok(object) => read_from(object, fields, emit),
            Err(reason) => emit.shard_error(reason),
        },
    }
}

/// Reads a Parquet shard and emits a sample per row (or one for the shard, when it is no
/// Parquet file or has no image column). Images stored by a relative path are looked for in
/// the working folder.
pub fn read_from<R: ChunkReader + 'static>(reader: R, fields: &Fields, emit: &mut Emitter) {
    read_shard(reader, fields, None, emit)
}

/// [`read_from`], with images stored by a relative path looked for in `folder` (the shard's
/// own) first.
fn read_shard<R: ChunkReader + 'static>(
    reader: R,
    fields: &Fields,
    folder: Option<&Path>,
    emit: &mut Emitter,
) {
    if let Err(reason) = read_rows(reader, fields, folder, emit) {
        emit.shard_error(reason);
    }
}

/// Where the columns a run reads are, in the projected batches.
struct Columns {
    image: String,
    label: Option<String>,
    key: Option<String>,
    /// img2dataset's reason for a failed download.
    error_message: bool,
    status: bool,
    /// Class names of a Hugging Face ClassLabel label column.
    class_names: Option<Vec<String>>,
    /// The shard's folder, where images stored by a relative path are looked for first.
    folder: Option<PathBuf>,
}

/// Sends every row; an error before the first row is the shard's row's reason.
fn read_rows<R: ChunkReader + 'static>(
    reader: R,
    fields: &Fields,
    folder: Option<&Path>,
    emit: &mut Emitter,
) -> Result<(), String> {
    let length = reader.len();
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader)
        .map_err(|e| format!("not a Parquet file ({e})"))?;
    check_footer(builder.metadata(), length)?;
    let schema = builder.schema().clone();
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let mut columns = columns(&schema, fields)?;
    columns.folder = folder.map(Path::to_owned);
    let wanted: Vec<&str> = [Some(columns.image.as_str()), columns.label.as_deref()]
        .into_iter()
        .chain([columns.key.as_deref()])
        .flatten()
        .chain(columns.error_message.then_some("error_message"))
        .chain(columns.status.then_some("status"))
        .collect();
    let roots: Vec<usize> = wanted
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let builder = match emit.positions() {
        Some(positions) => only_rows(builder, positions),
        None => builder,
    };
    let built = guarded(|| builder.with_projection(mask).with_batch_size(ROWS).build());
    let mut batches = built
        .ok_or("unreadable Parquet file: its metadata is damaged")?
        .map_err(|e| format!("unreadable Parquet file ({e})"))?;
    loop {
        let reason = match guarded(|| batches.next()) {
            None => "the Parquet decoder failed on damaged data".to_owned(),
            Some(None) => return Ok(()),
            Some(Some(Err(e))) => e.to_string(),
            Some(Some(Ok(batch))) => {
                if !send_batch(&batch, &columns, emit) {
                    return Ok(());
                }
                continue;
            }
        };
        // Every row not read yet still gets its row.
        let reason = format!("unreadable row: the file is damaged here ({reason})");
        while emit.sent() < rows {
            let row = emit.sent().to_string();
            if !emit.emit(
                row.clone(),
                Some(row),
                None,
                Content::Failed(reason.clone()),
            ) {
                break;
            }
        }
        return Ok(());
    }
}

/// The reader limited to the rows at `positions`: the row groups that hold them, and in
/// those only their rows (the others' pages are skipped, not decoded).
fn only_rows<R: ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<R>,
    positions: &BTreeSet<u64>,
) -> ParquetRecordBatchReaderBuilder<R> {
    let (mut groups, mut ranges) = (Vec::new(), Vec::new());
    let (mut start, mut kept) = (0u64, 0usize);
    for (index, group) in builder.metadata().row_groups().iter().enumerate() {
        // Row counts come from the file: a damaged one may claim any number.
        let rows = group.num_rows().max(0) as u64;
        let end = start.saturating_add(rows);
        let inside: Vec<u64> = positions.range(start..end).copied().collect();
        if !inside.is_empty() {
            groups.push(index);
            ranges.extend(inside.iter().map(|p| {
                let at = kept.saturating_add((p - start) as usize);
                at..at.saturating_add(1)
            }));
            kept = kept.saturating_add(rows as usize);
        }
        start = end;
    }
    let selection = RowSelection::from_consecutive_ranges(ranges.into_iter(), kept);
    builder
        .with_row_groups(groups)
        .with_row_selection(selection)
}

/// Runs `work`; `None` if it panicked. The parquet crate asserts, rather than returns an
/// error, on some damaged files (a page that claims no values, for one), and a damaged or
/// hostile shard must end as error rows, not stop the run.
fn guarded<T>(work: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).ok()
}

/// Refuses a footer that the parquet crate would trip over: row counts that are negative or
/// do not add up to the file's (the reader sums them unchecked), and column chunks outside the
/// file (`ColumnChunkMetaData::byte_range` panics on a negative offset or size). A damaged or
/// hostile file must be an error row, not a crash.
fn check_footer(metadata: &ParquetMetaData, length: u64) -> Result<(), String> {
    let invalid = |what: String| Err(format!("not a valid Parquet file: {what}"));
    let mut rows = 0i64;
    for (g, group) in metadata.row_groups().iter().enumerate() {
        match (group.num_rows() >= 0).then(|| rows.checked_add(group.num_rows())) {
            Some(Some(sum)) => rows = sum,
            _ => return invalid(format!("row group {g} has {} rows", group.num_rows())),
        }
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let size = column.compressed_size();
            let inside = start >= 0
                && size >= 0
                && (start as u64)
                    .checked_add(size as u64)
                    .is_some_and(|end| end <= length);
            if !inside {
                return invalid(format!(
                    "row group {g} places column {} at bytes {start} to {start} + {size}, \
                     outside the file's {length} bytes",
                    column.column_path()
                ));
            }
        }
    }
    let declared = metadata.file_metadata().num_rows();
    if rows != declared {
        return invalid(format!(
            "its row groups hold {rows} rows, its footer says {declared}"
        ));
    }
    Ok(())
}

/// Sends the rows of one batch; `false` when reading should stop.
fn send_batch(batch: &RecordBatch, columns: &Columns, emit: &mut Emitter) -> bool {
    let column = |name: &str| batch.column_by_name(name).cloned();
    let image = column(&columns.image).expect("projected");
    let (bytes, paths) = match image.data_type() {
        DataType::Struct(_) => {
            let image: &StructArray = image.as_struct();
            (
                image.column_by_name("bytes").cloned().expect("checked"),
                image.column_by_name("path").cloned(),
            )
        }
        _ => (image, None),
    };
    let label = columns.label.as_deref().and_then(column);
    let key = columns.key.as_deref().and_then(column);
    let error_message = columns
        .error_message
        .then(|| column("error_message"))
        .flatten();
    let status = columns.status.then(|| column("status")).flatten();
    for i in 0..batch.num_rows() {
        // With only some rows read, this one is the next of them.
        emit.skip_to_wanted();
        let row = emit.sent().to_string();
        let key = key.as_ref().and_then(|k| text(k, i)).unwrap_or(row);
        let stored_path = paths.as_ref().and_then(|p| text(p, i));
        let label = label.as_ref().and_then(|l| label_text(l, i, columns));
        let content = match (binary(&bytes, i), &stored_path) {
            (Some(data), _) => Content::Bytes(data.to_vec()),
            (None, Some(path)) if !path.is_empty() => image_at(path, columns.folder.as_deref()),
            (None, _) => Content::Failed(no_bytes(
                status.as_ref().and_then(|s| text(s, i)),
                error_message.as_ref().and_then(|m| text(m, i)),
            )),
        };
        let path = stored_path.unwrap_or_else(|| key.clone());
        if !emit.emit(path, Some(key), label, content) {
            return false;
        }
    }
    true
}

/// A Hugging Face image stored by path (`{bytes: null, path}`: what `Dataset.to_parquet` writes
/// for a dataset built from local files), read from that file as `datasets` does: an absolute
/// path as it is, a relative one from the shard's folder, then the working folder. A path that
/// is not a local file (`hf://`, `http://`) or where there is no file is the row's error.
fn image_at(path: &str, folder: Option<&Path>) -> Content {
    if path.contains("://") {
        return Content::Failed(format!(
            "no image bytes, and its path {path} is not a local file: layerwise reads images \
             stored by path from the local disk only (write the dataset with the image bytes \
             embedded, or download the files and store their local paths)"
        ));
    }
    let stored = Path::new(path);
    let places: Vec<PathBuf> = match folder {
        Some(folder) if stored.is_relative() => vec![folder.join(stored), stored.to_owned()],
        _ => vec![stored.to_owned()],
    };
    match places.into_iter().find(|p| p.is_file()) {
        Some(file) => Content::File(file),
        None => Content::Failed(format!(
            "no image bytes, and no file at its path {path} (a relative path is looked for \
             from the Parquet file's folder, then the working folder)"
        )),
    }
}

/// The reason for a row without image bytes, with img2dataset's own when it left one.
fn no_bytes(status: Option<String>, message: Option<String>) -> String {
    match (status, message) {
        (_, Some(message)) if !message.is_empty() => {
            format!("no image bytes (the row's error_message: {message})")
        }
        (Some(status), _) => format!("no image bytes (the row's status: {status})"),
        _ => "no image bytes (the image is null)".into(),
    }
}

/// Finds the columns of a file's schema that `fields` name, or the defaults.
fn columns(schema: &Schema, fields: &Fields) -> Result<Columns, String> {
    let names = || {
        let all: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        all.join(", ")
    };
    let image = match &fields.image {
        Some(name) => {
            let field = schema.field_with_name(name).map_err(|_| {
                format!(
                    "no column `{name}` (input.image_field); its columns are {}",
                    names()
                )
            })?;
            if !holds_images(field.data_type()) {
                return Err(format!(
                    "column `{name}` (input.image_field) holds {}, not image bytes (binary, or \
                     a struct with a binary `bytes` field)",
                    field.data_type()
                ));
            }
            name.clone()
        }
        None => ["image"]
            .into_iter()
            .chain(DEFAULT_IMAGE_COLUMNS)
            .find(|name| {
                schema
                    .field_with_name(name)
                    .is_ok_and(|f| holds_images(f.data_type()))
            })
            .ok_or_else(|| {
                format!(
                    "no image column: none of image (a struct of bytes and path), {} holds \
                     image bytes; its columns are {}; set input.image_field",
                    DEFAULT_IMAGE_COLUMNS.join(", "),
                    names()
                )
            })?
            .to_owned(),
    };
    for (name, key) in [(&fields.label, "label_field"), (&fields.key, "key_field")] {
        if let Some(name) = name {
            if schema.field_with_name(name).is_err() {
                return Err(format!(
                    "no column `{name}` (input.{key}); its columns are {}",
                    names()
                ));
            }
        }
    }
    let text_column = |name: &str| {
        schema
            .field_with_name(name)
            .is_ok_and(|f| is_text(f.data_type()))
    };
    Ok(Columns {
        class_names: fields
            .label
            .as_deref()
            .and_then(|label| class_names(schema, label)),
        image,
        label: fields.label.clone(),
        key: fields.key.clone(),
        error_message: text_column("error_message"),
        status: text_column("status"),
        folder: None,
    })
}

/// Whether a column type holds encoded images: binary, or a struct with binary `bytes`.
fn holds_images(data_type: &DataType) -> bool {
    match data_type {
        DataType::Struct(fields) => fields
            .iter()
            .any(|f| f.name() == "bytes" && is_binary(f.data_type())),
        other => is_binary(other),
    }
}

fn is_binary(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The class names of a Hugging Face ClassLabel column, from the schema metadata.
fn class_names(schema: &Schema, column: &str) -> Option<Vec<String>> {
    let meta: serde_json::Value =
        serde_json::from_str(schema.metadata().get("huggingface")?).ok()?;
    let feature = meta.get("info")?.get("features")?.get(column)?;
    if feature.get("_type")?.as_str()? != "ClassLabel" {
        return None;
    }
    feature
        .get("names")?
        .as_array()?
        .iter()
        .map(|n| n.as_str().map(String::from))
        .collect()
}

/// Row `i` of a binary column; `None` when null.
fn binary(column: &ArrayRef, i: usize) -> Option<&[u8]> {
    if column.is_null(i) {
        return None;
    }
    Some(match column.data_type() {
        DataType::Binary => column.as_binary::<i32>().value(i),
        DataType::LargeBinary => column.as_binary::<i64>().value(i),
        DataType::BinaryView => column.as_binary_view().value(i),
        _ => return None,
    })
}

/// Row `i` of a column as text: strings as they are, integers and booleans written out;
/// `None` when null or of another type.
fn text(column: &ArrayRef, i: usize) -> Option<String> {
    use arrow_array::types::*;
    if column.is_null(i) {
        return None;
    }
    Some(match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().value(i).to_owned(),
        DataType::LargeUtf8 => column.as_string::<i64>().value(i).to_owned(),
        DataType::Utf8View => column.as_string_view().value(i).to_owned(),
        DataType::Int8 => column.as_primitive::<Int8Type>().value(i).to_string(),
        DataType::Int16 => column.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => column.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt8 => column.as_primitive::<UInt8Type>().value(i).to_string(),
        DataType::UInt16 => column.as_primitive::<UInt16Type>().value(i).to_string(),
        DataType::UInt32 => column.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::UInt64 => column.as_primitive::<UInt64Type>().value(i).to_string(),
        DataType::Boolean => column.as_boolean().value(i).to_string(),
        _ => return None,
    })
}

/// A row's label: a ClassLabel's name for its index, else the column's value as text.
fn label_text(column: &ArrayRef, i: usize, columns: &Columns) -> Option<String> {
    let value = text(column, i)?;
    match &columns.class_names {
        Some(names) => Some(
            value
                .parse::<usize>()
                .ok()
                .and_then(|index| names.get(index).cloned())
                .unwrap_or(value),
        ),
        None => Some(value),
    }
}
