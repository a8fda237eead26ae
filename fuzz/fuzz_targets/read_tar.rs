//! Fuzz target: the WebDataset tar reader must never panic or hang on arbitrary bytes.

#![no_main]

use layerwise::input::{stream, webdataset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reader = Box::new(std::io::Cursor::new(data.to_vec()));
    let fields = webdataset::Fields::default();
    let _ = stream::collect("fuzz.tar", |emit| {
        webdataset::read_from(reader, &fields, emit)
    });
});
