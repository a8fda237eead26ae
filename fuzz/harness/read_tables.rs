//! The `read_tables` fuzz target's work, shared with `tests/it/fuzz_regressions.rs`: a table of
//! a run written with a schema drawn from the fuzzer's bytes (each column of layerwise's,
//! another width, signedness, string or list type, a wrong type, all nulls, or dropped; values
//! from the bytes), then read back as `report` and `plot` read it. Reading may refuse the table
//! (an error naming the column); it must not panic.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, FixedSizeListBuilder, Float16Builder, Float32Builder, Float64Builder,
    Int64Builder, Int8Builder, LargeListBuilder, LargeStringBuilder, ListBuilder, StringBuilder,
    StringDictionaryBuilder, StringViewBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::types::Int16Type;
use arrow_array::{new_null_array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use layerwise::output::tables::{Formats, Table};
use layerwise::view::read::{MapQuery, StoredRun};

/// The fuzzer's bytes, taken one at a time (zeros once they run out).
struct Bytes<'a>(&'a [u8], usize);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let b = self.0.get(self.1).copied().unwrap_or(0);
        self.1 += 1;
        b
    }
}

/// Makes `dir` a run folder: a `run.json` whose layers the tables name, `conv` (4 channels of
/// 2 x 2, channels 0 and 1 kept) and `vec` (a vector of 3), and the tables' folders; the run
/// opened.
pub fn run_folder(dir: &Path) -> StoredRun {
    let record = serde_json::json!({
        "name": "fuzz",
        "tool": "layerwise fuzz",
        "onnxruntime": {"version": "", "library": ""},
        "model": {"path": "m.onnx", "sha256": ""},
        "layers": [
            {"name": "conv", "kind": "maps", "channels": 4, "height": 2, "width": 2,
             "kept": [0, 1]},
            {"name": "vec", "kind": "vector", "channels": 3, "height": 1, "width": 1,
             "kept": []}
        ],
        "config": {
            "name": "fuzz",
            "input": {"root": "images"},
            "model": {"path": "m.onnx"},
            "layers": [{"tensor": "conv"}, {"tensor": "vec"}]
        },
        "shard": "0/1",
        "complete": true
    });
    std::fs::write(dir.join("run.json"), record.to_string()).unwrap();
    for table in Table::ALL {
        std::fs::create_dir_all(dir.join(table.name())).unwrap();
    }
    StoredRun::open(dir).unwrap()
}

/// Writes a table drawn from `data` into the folder of `run` (see [`run_folder`]) and reads it
/// back every way the views do; errors are fine, panics are not.
pub fn read_tables(data: &[u8], run: &StoredRun) {
    let mut bytes = Bytes(data, 0);
    let table = Table::ALL[bytes.next() as usize % Table::COUNT];
    let rows = bytes.next() as usize % 9;
    let batch = drawn_batch(table, rows, &mut bytes);
    let part = |t: Table| run.dir.join(t.name()).join("part-00000.parquet");
    for t in Table::ALL {
        let _ = std::fs::remove_file(part(t));
    }
    let file = std::fs::File::create(part(table)).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    read_back(run);
}

/// Every read the views make of a run.
fn read_back(run: &StoredRun) {
    let _ = run.images();
    let query = MapQuery {
        layer: "conv".into(),
        channels: Some([0, 1].into()),
        images: Some([0, 1, 2].into()),
    };
    let _ = run.maps(&query);
    let _ = run.tops("conv", None, 3);
    let _ = run.maxima("conv", 1);
    let _ = run.scan(
        Table::Vectors,
        &["image_id", "layer", "values"],
        None,
        |_| (),
    );
}

/// A batch with `rows` rows and, for each column of `table`'s schema, a form drawn from `bytes`.
fn drawn_batch(table: Table, rows: usize, bytes: &mut Bytes) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for field in table.schema(&Formats::default()).fields() {
        let form = bytes.next() % 6;
        if form == 5 {
            continue; // dropped
        }
        let array = drawn_column(field.data_type(), form, rows, bytes);
        fields.push(Field::new(field.name(), array.data_type().clone(), true));
        columns.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema, columns, &options).unwrap()
}

/// A column in place of one of type `want`: form 0 that type, 1 and 2 another type that can
/// hold it, 3 a type that cannot, 4 all nulls.
fn drawn_column(want: &DataType, form: u8, rows: usize, bytes: &mut Bytes) -> ArrayRef {
    if form == 4 {
        return new_null_array(&DataType::Null, rows);
    }
    if form == 3 {
        let mut b = BooleanBuilder::new();
        (0..rows).for_each(|_| b.append_value(bytes.next().is_multiple_of(2)));
        return Arc::new(b.finish());
    }
    match want {
        DataType::Utf8 => strings(form, rows, bytes),
        DataType::UInt32 | DataType::UInt64 => integers(form, rows, bytes),
        DataType::Float32 => floats(form, rows, bytes),
        _ => lists(form, rows, bytes),
    }
}

/// A text from the bytes: a layer's name, or other characters.
fn text(bytes: &mut Bytes) -> String {
    match bytes.next() % 4 {
        0 => "conv".into(),
        1 => "vec".into(),
        2 => "ok".into(),
        _ => String::from_utf8_lossy(&[bytes.next(), bytes.next()]).into_owned(),
    }
}

fn strings(form: u8, rows: usize, bytes: &mut Bytes) -> ArrayRef {
    match form {
        0 => {
            let mut b = StringBuilder::new();
            (0..rows).for_each(|_| b.append_value(text(bytes)));
            Arc::new(b.finish())
        }
        1 => {
            let mut b = StringViewBuilder::new();
            (0..rows).for_each(|_| b.append_value(text(bytes)));
            Arc::new(b.finish())
        }
        _ => match bytes.next() % 2 {
            0 => {
                let mut b = LargeStringBuilder::new();
                (0..rows).for_each(|_| b.append_value(text(bytes)));
                Arc::new(b.finish())
            }
            _ => {
                let mut b = StringDictionaryBuilder::<Int16Type>::new();
                (0..rows).for_each(|_| b.append_value(text(bytes)));
                Arc::new(b.finish())
            }
        },
    }
}

fn integers(form: u8, rows: usize, bytes: &mut Bytes) -> ArrayRef {
    match form {
        0 => {
            let mut b = UInt32Builder::new();
            (0..rows).for_each(|_| b.append_value(u32::from(bytes.next() % 8)));
            Arc::new(b.finish())
        }
        1 => {
            let mut b = Int64Builder::new();
            (0..rows)
                .for_each(|_| b.append_value(i64::from(bytes.next() as i8) << (bytes.next() % 40)));
            Arc::new(b.finish())
        }
        _ => match bytes.next() % 3 {
            0 => {
                let mut b = Int8Builder::new();
                (0..rows).for_each(|_| b.append_value(bytes.next() as i8));
                Arc::new(b.finish())
            }
            1 => {
                let mut b = UInt16Builder::new();
                (0..rows).for_each(|_| b.append_value(u16::from(bytes.next())));
                Arc::new(b.finish())
            }
            _ => {
                let mut b = UInt64Builder::new();
                (0..rows).for_each(|_| b.append_value(u64::from(bytes.next()) << 30));
                Arc::new(b.finish())
            }
        },
    }
}

fn floats(form: u8, rows: usize, bytes: &mut Bytes) -> ArrayRef {
    match form {
        0 => {
            let mut b = Float32Builder::new();
            (0..rows).for_each(|_| b.append_value(f32::from(bytes.next() as i8)));
            Arc::new(b.finish())
        }
        1 => {
            let mut b = Float64Builder::new();
            (0..rows).for_each(|_| b.append_value(f64::from(bytes.next()) * 1e40));
            Arc::new(b.finish())
        }
        _ => {
            let mut b = Float16Builder::new();
            (0..rows).for_each(|_| b.append_value(half::f16::from_f32(f32::from(bytes.next()))));
            Arc::new(b.finish())
        }
    }
}

fn lists(form: u8, rows: usize, bytes: &mut Bytes) -> ArrayRef {
    let len = |bytes: &mut Bytes| bytes.next() as usize % 6;
    match form {
        0 => {
            let mut b = ListBuilder::new(Float32Builder::new());
            for _ in 0..rows {
                (0..len(bytes)).for_each(|_| b.values().append_value(f32::from(bytes.next())));
                b.append(true);
            }
            Arc::new(b.finish())
        }
        1 => {
            let mut b = LargeListBuilder::new(Float64Builder::new());
            for _ in 0..rows {
                (0..len(bytes)).for_each(|_| b.values().append_value(f64::from(bytes.next())));
                b.append(!bytes.next().is_multiple_of(8));
            }
            Arc::new(b.finish())
        }
        _ => {
            // Not 0: a fixed-size list of size 0 built without nulls has no rows.
            let size = 1 + (bytes.next() % 4) as i32;
            let mut b = FixedSizeListBuilder::new(Float16Builder::new(), size);
            for _ in 0..rows {
                (0..size).for_each(|_| b.values().append_value(half::f16::from_f32(1.5)));
                b.append(true);
            }
            Arc::new(b.finish())
        }
    }
}
