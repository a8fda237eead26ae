//! A run's tables as any writer writes them: layerwise, or DuckDB, Polars, pandas and pyarrow
//! after a user filtered them and wrote them back. Each column read is brought to the type in the
//! table's schema ([`Table::schema`]): strings from `Utf8`, `LargeUtf8`, `Utf8View` or a
//! dictionary of them; integers from any width and signedness whose values fit; floats from any
//! float type; lists of floats from `list`, `large_list` or `fixed_size_list`. A column of a type
//! that cannot hold its values is a [`TableError`] naming the table, the column and the type,
//! never a panic.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float16Builder, Float32Builder, ListBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use crate::error::TableError;
use crate::output::tables::{Formats, Table};

/// `batch`, read from `file` of `table`, with every column that the table's schema knows in the
/// type that schema gives it (other columns, such as pandas' index, are left as they are).
pub fn conform(batch: &RecordBatch, table: Table, file: &Path) -> Result<RecordBatch, TableError> {
    let schema = table.schema(&Formats::default());
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let Ok(want) = schema.field_with_name(field.name()) else {
            fields.push(field.as_ref().clone());
            columns.push(array.clone());
            continue;
        };
        let error = |problem: String| TableError {
            file: file.display().to_string(),
            table: table.name(),
            column: field.name().clone(),
            problem,
        };
        let keep_f16 = table == Table::Maps;
        let array = column_as(array, want.data_type(), keep_f16).map_err(error)?;
        if !want.is_nullable() && array.null_count() > 0 {
            return Err(error(format!(
                "holds {} nulls; layerwise writes a value in every row",
                array.null_count()
            )));
        }
        fields.push(Field::new(
            want.name(),
            array.data_type().clone(),
            want.is_nullable(),
        ));
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("each column keeps its length and its field's type");
    check_map_sizes(&batch, table, file)?;
    Ok(batch)
}

/// A map row's `values` must hold `height` x `width` numbers (the pictures are drawn from
/// them): checked where a batch holds the three columns.
fn check_map_sizes(batch: &RecordBatch, table: Table, file: &Path) -> Result<(), TableError> {
    let column = |name| batch.column_by_name(name);
    let (Some(heights), Some(widths), Some(values)) =
        (column("height"), column("width"), column("values"))
    else {
        return Ok(());
    };
    let (heights, widths) = (
        heights.as_primitive::<UInt32Type>(),
        widths.as_primitive::<UInt32Type>(),
    );
    let values = values.as_list::<i32>();
    for i in 0..batch.num_rows() {
        let size = heights.value(i) as u64 * widths.value(i) as u64;
        let held = values.value_length(i) as u64;
        if size != held {
            return Err(TableError {
                file: file.display().to_string(),
                table: table.name(),
                column: "values".into(),
                problem: format!(
                    "holds {held} numbers in row {i}, but its height x width is {size}"
                ),
            });
        }
    }
    Ok(())
}

/// `array` as `want`, or why it cannot be. `keep_f16`: a list of float16 stays one (stored maps
/// may be float16).
fn column_as(array: &ArrayRef, want: &DataType, keep_f16: bool) -> Result<ArrayRef, String> {
    let got = array.data_type();
    if got == want {
        return Ok(array.clone());
    }
    // The `positions` vectors' length and element type are the run's (`Formats`): a list of
    // a fixed number of floats is taken as written.
    if let (DataType::FixedSizeList(..), DataType::FixedSizeList(item, _)) = (want, got) {
        if matches!(item.data_type(), DataType::Float16 | DataType::Float32) {
            return Ok(array.clone());
        }
    }
    // pandas writes a column of nothing but nulls as the `null` type.
    if got == &DataType::Null {
        return Ok(arrow_array::new_null_array(want, array.len()));
    }
    let converted = match want {
        DataType::Utf8 => strings(array).map(Ok),
        DataType::UInt32 => integers(array, |v| u32::try_from(v).ok())
            .map(|r| r.map(|v| Arc::new(UInt32Array::from(v)) as ArrayRef)),
        DataType::UInt64 => integers(array, |v| u64::try_from(v).ok())
            .map(|r| r.map(|v| Arc::new(UInt64Array::from(v)) as ArrayRef)),
        DataType::Float32 => floats(array).map(|v| Ok(Arc::new(v) as ArrayRef)),
        DataType::List(_) => lists(array, keep_f16).map(Ok),
        _ => None,
    };
    match converted {
        Some(Ok(array)) => Ok(array),
        Some(Err(value)) => Err(format!(
            "is of type {got} and holds {value}, which does not fit {want}"
        )),
        None => Err(format!("is of type {got}, which cannot hold {want} values")),
    }
}

/// A string array of any string type, or a dictionary of one, as `Utf8`.
fn strings(array: &ArrayRef) -> Option<ArrayRef> {
    let strings: StringArray = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().clone(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        DataType::Utf8View => array.as_string_view().iter().collect(),
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_any_dictionary();
            let values = strings(dictionary.values())?;
            let values = values.as_string::<i32>();
            let keys = dictionary.normalized_keys();
            (0..array.len())
                .map(|i| {
                    let k = keys[i];
                    (array.is_valid(i) && k < values.len() && values.is_valid(k))
                        .then(|| values.value(k))
                })
                .collect()
        }
        _ => return None,
    };
    Some(Arc::new(strings))
}

/// An integer array of any width and signedness, each value through `fit`; the first value
/// that does not fit is the error.
fn integers<T>(
    array: &ArrayRef,
    fit: impl Fn(i128) -> Option<T>,
) -> Option<Result<Vec<Option<T>>, i128>> {
    macro_rules! each {
        ($type:ty) => {
            array
                .as_primitive::<$type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect::<Vec<_>>()
        };
    }
    let values = match array.data_type() {
        DataType::Int8 => each!(Int8Type),
        DataType::Int16 => each!(Int16Type),
        DataType::Int32 => each!(Int32Type),
        DataType::Int64 => each!(Int64Type),
        DataType::UInt8 => each!(UInt8Type),
        DataType::UInt16 => each!(UInt16Type),
        DataType::UInt32 => each!(UInt32Type),
        DataType::UInt64 => each!(UInt64Type),
        _ => return None,
    };
    Some(
        values
            .into_iter()
            .map(|v| v.map(|v| fit(v).ok_or(v)).transpose())
            .collect(),
    )
}

/// A float array of any float type as `Float32`.
fn floats(array: &ArrayRef) -> Option<arrow_array::Float32Array> {
    Some(match array.data_type() {
        DataType::Float16 => array
            .as_primitive::<Float16Type>()
            .iter()
            .map(|v| v.map(f32::from))
            .collect(),
        DataType::Float32 => array.as_primitive::<Float32Type>().clone(),
        DataType::Float64 => array
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| v as f32))
            .collect(),
        _ => return None,
    })
}

/// A list of floats (`list`, `large_list` or `fixed_size_list`) as a `list` of float32, or of
/// float16 where it is one and `keep_f16`.
fn lists(array: &ArrayRef, keep_f16: bool) -> Option<ArrayRef> {
    let rows: Vec<Option<ArrayRef>> = match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().iter().collect(),
        DataType::LargeList(_) => array.as_list::<i64>().iter().collect(),
        DataType::FixedSizeList(_, _) => array.as_fixed_size_list().iter().collect(),
        _ => return None,
    };
    let item = match array.data_type() {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().clone()
        }
        _ => return None,
    };
    if keep_f16 && item == DataType::Float16 {
        let mut builder = ListBuilder::new(Float16Builder::new())
            .with_field(Arc::new(Field::new_list_field(DataType::Float16, false)));
        for row in rows {
            match row {
                Some(values) => {
                    builder
                        .values()
                        .append_slice(values.as_primitive::<Float16Type>().values());
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        return Some(Arc::new(builder.finish()));
    }
    let mut builder = ListBuilder::new(Float32Builder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Float32, false)));
    for row in rows {
        match row {
            Some(values) => {
                let values = floats(&values)?;
                builder
                    .values()
                    .extend(values.iter().map(|v| Some(v.unwrap_or(f32::NAN))));
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Some(Arc::new(builder.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{LargeListBuilder, StringDictionaryBuilder};
    use arrow_array::types::Int32Type as Key;
    use arrow_array::{Int64Array, LargeStringArray, StringViewArray};

    fn one(table: Table, name: &str, array: ArrayRef) -> Result<RecordBatch, TableError> {
        let schema = Schema::new(vec![Field::new(name, array.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![array]).unwrap();
        conform(&batch, table, Path::new("stats/part-00000.parquet"))
    }

    #[test]
    fn every_string_type_becomes_utf8() {
        let want: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("bc")]));
        let mut dictionary = StringDictionaryBuilder::<Key>::new();
        dictionary.append_value("a");
        dictionary.append_null();
        dictionary.append_value("bc");
        for array in [
            Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("bc")])) as ArrayRef,
            Arc::new(StringViewArray::from(vec![Some("a"), None, Some("bc")])),
            Arc::new(dictionary.finish()),
        ] {
            let batch = one(Table::Images, "label", array).unwrap();
            assert_eq!(batch.column(0), &want);
        }
    }

    #[test]
    fn integers_that_fit_are_taken_and_one_that_does_not_is_named() {
        let batch = one(
            Table::Stats,
            "channel",
            Arc::new(Int64Array::from(vec![0, 7])),
        )
        .unwrap();
        assert_eq!(
            batch.column(0).as_primitive::<UInt32Type>().values(),
            &[0, 7]
        );
        let err = one(
            Table::Stats,
            "channel",
            Arc::new(Int64Array::from(vec![3, -1])),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "stats/part-00000.parquet: the `stats` table's column `channel` is of type Int64 \
             and holds -1, which does not fit UInt32"
        );
    }

    #[test]
    fn lists_of_any_kind_become_float32_lists_and_other_types_are_refused() {
        let mut large = LargeListBuilder::new(arrow_array::builder::Float64Builder::new());
        large.values().append_slice(&[1.0, 2.5]);
        large.append(true);
        let batch = one(Table::Vectors, "values", Arc::new(large.finish())).unwrap();
        let list = batch.column(0).as_list::<i32>();
        assert_eq!(
            list.value(0).as_primitive::<Float32Type>().values(),
            &[1.0, 2.5]
        );
        let err = one(Table::Stats, "mean", Arc::new(StringArray::from(vec!["x"])))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("column `mean` is of type Utf8, which cannot hold Float32 values"),
            "{err}"
        );
        let err = one(
            Table::Stats,
            "image_id",
            Arc::new(UInt64Array::from(vec![None, Some(1)])),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.ends_with("holds 1 nulls; layerwise writes a value in every row"),
            "{err}"
        );
    }
}
