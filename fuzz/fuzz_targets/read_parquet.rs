//! Fuzz target: the Parquet shard reader must never panic or hang on arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use layerwise::input::{parquet, stream};

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    let fields = parquet::Fields::default();
    let _ = stream::collect("fuzz.parquet", |emit| parquet::read_from(bytes, &fields, emit));
});
