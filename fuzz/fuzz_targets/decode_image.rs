//! Fuzz target: `preprocess::decode_at_least` must never panic on arbitrary bytes.
//!
//! `max_pixels` is kept small (4 MP, so at most 64 MB of decoder allocations) so that the
//! fuzzer is not stopped by its RSS limit on huge declared image sizes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = layerwise::input::preprocess::decode_at_least(data, 224, 4_000_000);
});
