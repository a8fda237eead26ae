//! Fuzz target: no panic may escape the Parquet shard reader, nor may it hang, on arbitrary
//! bytes, whether it reads every row (a run) or only some (the report reading a shard again:
//! a row selection over the row groups the file claims).

#![no_main]

use layerwise::input::stream::Emitter;
use layerwise::input::{parquet, stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic, even one caught; the reader catches the parquet
    // crate's panics on damaged data by design, so only a panic that escapes it is a crash.
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let bytes = bytes::Bytes::copy_from_slice(data);
    let fields = parquet::Fields::default();
    let _ = stream::collect("fuzz.parquet", |emit| {
        parquet::read_from(bytes.clone(), &fields, emit)
    });
    let mut some =
        Emitter::new("fuzz.parquet", 0, usize::MAX, |_| true).only((0..64).step_by(3).collect());
    parquet::read_from(bytes, &fields, &mut some);
});
