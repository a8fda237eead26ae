//! Fuzz target: `model::decode_model` (the ONNX `ModelProto` reader) must never panic on
//! arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = layerwise::model::decode_model(data);
});
