//! Fuzz target: the WebDataset tar reader must never panic or hang on arbitrary bytes, whether
//! it reads every sample (a run) or only some (the report reading a shard again).

#![no_main]

use layerwise::input::stream::Emitter;
use layerwise::input::{stream, webdataset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fields = webdataset::Fields::default();
    let reader = || Box::new(std::io::Cursor::new(data.to_vec()));
    let _ = stream::collect("fuzz.tar", |emit| {
        webdataset::read_from(reader(), &fields, emit)
    });
    let mut some =
        Emitter::new("fuzz.tar", 0, usize::MAX, |_| true).only((0..64).step_by(3).collect());
    webdataset::read_from(reader(), &fields, &mut some);
});
