//! Micro-benchmarks of the stages that surround the model, per unit of work:
//! decode + preprocess per image (a 256 x 256 JPEG, and a 4000 x 3000 photo with and without
//! decoding at a reduced DCT scale; and the steps of the first), decoding alone per format (PNG,
//! lossy and lossless WebP, and the decoder libwebp replaced), statistics per MiB of
//! activations, the `maps` table's write path per MiB of float32 maps and the `positions`
//! table's per MB of float16 vectors, for each codec. Run:
//! `cargo bench --bench stages`.

use std::hint::black_box;
use std::io::Cursor;
use std::path::Path;

use arrow_array::RecordBatch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fast_image_resize::Resizer;
use image::codecs::webp::WebPDecoder;
use image::DynamicImage;
use layerwise::config::Compression;
use layerwise::config::{ChannelOrder, Layout, MapDtype, ResizeMode};
use layerwise::input::preprocess;
use layerwise::output::encode::{Encoders, ParallelWriter};
use layerwise::output::sink::{properties, table_properties};
use layerwise::output::tables::{Formats, MapKey, MapRows, PositionKey, PositionRows, Table};
use layerwise::plan::{InputType, Preprocess};
use layerwise::reduce::map_stats;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

fn vgg_input() -> Preprocess {
    Preprocess {
        input_type: InputType::Float32,
        height: 224,
        width: 224,
        resize: ResizeMode::Stretch,
        layout: Layout::NCHW,
        channel_order: ChannelOrder::BGR,
        scale: 1.0,
        mean: [103.939, 116.779, 123.68],
        std: [1.0; 3],
        max_pixels: layerwise::config::DEFAULT_MAX_PIXELS,
    }
}

/// A photo-like JPEG (smooth gradients and texture) of the given size.
fn photo(dir: &Path, width: u32, height: u32) -> std::path::PathBuf {
    let path = dir.join(format!("photo-{width}x{height}.jpg"));
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        let t = ((x * 13 + y * 7) % 97) as u8;
        image::Rgb([
            (x * 255 / width) as u8 ^ t,
            (y * 255 / height) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    image.save(&path).unwrap();
    path
}

fn decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let p = vgg_input();
    let mut out = vec![0f32; p.image_len()];
    let mut resizer = Resizer::new();
    let mut group = c.benchmark_group("decode+preprocess per image");
    group.throughput(Throughput::Elements(1));
    let small = photo(dir.path(), 256, 256);
    group.bench_function("256x256 JPEG", |b| {
        b.iter(|| {
            p.load_into(black_box(&small), &mut resizer, &mut out)
                .unwrap()
        })
    });
    // Its steps: decoding alone, the resize to 224 x 224, the tensor written.
    group.bench_function("256x256 JPEG, decoding alone", |b| {
        b.iter(|| preprocess::decode(black_box(&small)).unwrap())
    });
    let decoded = preprocess::decode(&small).unwrap();
    group.bench_function("256x256 to 224x224, the resize alone", |b| {
        b.iter(|| p.resize(black_box(decoded.clone()), &mut resizer).unwrap())
    });
    let resized = p.resize(decoded, &mut resizer).unwrap();
    group.bench_function("224x224, the tensor alone", |b| {
        b.iter(|| p.write_tensor(black_box(&resized), &mut out))
    });
    // A real 4000 x 3000 photo when LAYERWISE_BENCH_PHOTO names one, else a synthetic one.
    let large = std::env::var_os("LAYERWISE_BENCH_PHOTO")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| photo(dir.path(), 4000, 3000));
    group.sample_size(10);
    group.bench_function("4000x3000 JPEG, reduced DCT scale", |b| {
        b.iter(|| {
            p.load_into(black_box(&large), &mut resizer, &mut out)
                .unwrap()
        })
    });
    group.bench_function("4000x3000 JPEG, full size", |b| {
        b.iter(|| {
            let image = preprocess::decode(black_box(&large)).unwrap();
            let resized = p.resize(image, &mut resizer).unwrap();
            p.write_tensor(&resized, &mut out);
        })
    });
    group.finish();
}

/// Decoding alone per format, the 256 x 256 photo as a PNG and as WebPs encoded by libwebp (as
/// cwebp, Pillow and browsers write them): lossy (quality 90) and lossless; layerwise's decode,
/// and for WebP the image crate's pure-Rust decoder it replaced with libwebp. The image crate's
/// own lossless encoder writes files its decoder reads faster than libwebp (the last line).
fn formats(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let pixels = preprocess::decode(&photo(dir.path(), 256, 256)).unwrap();
    let encoded = |format| {
        let mut bytes = Vec::new();
        pixels
            .write_to(&mut Cursor::new(&mut bytes), format)
            .unwrap();
        bytes
    };
    let files = [
        ("PNG", encoded(image::ImageFormat::Png)),
        ("lossy WebP", libwebp_encoded(&pixels, false)),
        ("lossless WebP", libwebp_encoded(&pixels, true)),
        (
            "lossless WebP by the image crate",
            encoded(image::ImageFormat::WebP),
        ),
    ];
    let mut group = c.benchmark_group("decoding alone per format, 256x256");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &files {
        group.bench_function(*name, |b| {
            b.iter(|| preprocess::decode_at_least(black_box(bytes), 224, 1 << 26).unwrap())
        });
        if name.contains("WebP") {
            group.bench_function(format!("{name}, the image crate's decoder"), |b| {
                b.iter(|| {
                    let decoder = WebPDecoder::new(Cursor::new(black_box(bytes))).unwrap();
                    DynamicImage::from_decoder(decoder).unwrap().into_rgb8()
                })
            });
        }
    }
    group.finish();
}

/// `image` encoded by libwebp, lossless or lossy at quality 90.
fn libwebp_encoded(image: &image::RgbImage, lossless: bool) -> Vec<u8> {
    let (w, h) = (image.width() as i32, image.height() as i32);
    let mut out = std::ptr::null_mut();
    // SAFETY: the pixels are `h` rows of `3 w` bytes; libwebp allocates `out`, copied and freed.
    unsafe {
        let len = if lossless {
            libwebp_sys::WebPEncodeLosslessRGB(image.as_ptr(), w, h, w * 3, &mut out)
        } else {
            libwebp_sys::WebPEncodeRGB(image.as_ptr(), w, h, w * 3, 90.0, &mut out)
        };
        assert!(len > 0, "libwebp could not encode");
        let bytes = std::slice::from_raw_parts(out, len).to_vec();
        libwebp_sys::WebPFree(out.cast());
        bytes
    }
}

/// 1 MiB of ReLU-like activations.
fn activations() -> Vec<f32> {
    (0..(1 << 18))
        .map(|i: u32| ((i.wrapping_mul(2654435761) >> 16) as f32 / 65536.0 - 0.4).max(0.0) * 10.0)
        .collect()
}

fn stats(c: &mut Criterion) {
    let values = activations();
    let mut group = c.benchmark_group("statistics");
    group.throughput(Throughput::Bytes((values.len() * 4) as u64));
    group.bench_function("per MiB of maps (224 x 224)", |b| {
        b.iter(|| {
            for map in values.chunks(224 * 224) {
                black_box(map_stats(map, 224));
            }
        })
    });
    group.finish();
}

/// The `maps` table's write path, per MiB of float32 maps (14 x 14, as `block5_conv3`'s): the
/// rows built and encoded into a Parquet file with the run's writer properties for `maps`, on
/// one encoder thread, for each codec; and the Parquet crate's own encoder, which layerwise's
/// float list encoder replaced, with Zstandard.
fn parquet(c: &mut Criterion) {
    let values = activations();
    let formats = Formats {
        map_dtype: MapDtype::Float32,
        positions_dtype: MapDtype::Float16,
        positions_dim: 1,
    };
    let encoders = Encoders::new(1).unwrap();
    let rows = || {
        let mut rows = MapRows::new(MapDtype::Float32);
        for (c, map) in values.chunks(196).enumerate() {
            let key = MapKey {
                image_id: (c / 512) as u64,
                layer: "block5_conv3",
                channel: (c % 512) as u32,
                height: 14,
                width: 14,
            };
            rows.push(key, map);
        }
        rows.finish()
    };
    let of = |codec| {
        table_properties(
            &properties(codec, String::new()),
            Table::Maps,
            &formats,
            false,
        )
    };
    let mut group = c.benchmark_group("parquet");
    group.throughput(Throughput::Bytes((values.len() * 4) as u64));
    for codec in [
        Compression::None,
        Compression::Snappy,
        Compression::Lz4Raw,
        Compression::Zstd,
    ] {
        let properties = of(codec);
        group.bench_function(format!("maps per MiB, {codec:?}"), |b| {
            b.iter(|| black_box(encode_ours(rows(), &properties, &encoders)))
        });
    }
    let properties = of(Compression::Zstd);
    group.bench_function("maps per MiB, Zstd, the Parquet crate's encoder", |b| {
        b.iter(|| {
            let batch = rows();
            let mut writer =
                ArrowWriter::try_new(Counted(0), batch.schema(), Some(properties.clone())).unwrap();
            writer.write(&batch).unwrap();
            black_box(writer.into_inner().unwrap().0)
        })
    });
    group.finish();
}

/// ViT-S-like block outputs: 16 images of 197 tokens, 384 values each, roughly normal (a sum of
/// four uniforms) with a few large outliers, as transformer activations have.
fn token_vectors() -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..16 * 197 * 384)
        .map(|i| {
            let normal = (0..4).map(|_| uniform()).sum::<f32>() - 2.0;
            if i % 384 == 7 {
                normal * 40.0
            } else {
                normal * 1.7
            }
        })
        .collect()
}

/// The `positions` table's write path, per MB of float16 vectors: the rows built (float32 to
/// float16) and encoded into a Parquet file with the run's writer properties, on one encoder
/// thread, for each codec.
fn positions(c: &mut Criterion) {
    // As the binary does (main.rs): buffers under 4 MiB come from the heap, not fresh mappings.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
    let vectors = token_vectors();
    let formats = Formats {
        map_dtype: MapDtype::Float32,
        positions_dtype: MapDtype::Float16,
        positions_dim: 384,
    };
    let encoders = Encoders::new(1).unwrap();
    let mut group = c.benchmark_group("positions");
    group.throughput(Throughput::Bytes((vectors.len() * 2) as u64));
    let rows = || {
        let mut rows = PositionRows::new(MapDtype::Float16, 384);
        for (at, vector) in vectors.chunks(384).enumerate() {
            let key = PositionKey {
                image_id: (at / 197) as u64,
                layer: "block11",
                position: (at % 197) as u32,
                yx: None,
            };
            rows.push(key, vector);
        }
        rows.finish()
    };
    let of = |codec| {
        let base = properties(codec, String::new());
        table_properties(&base, Table::Positions, &formats, false)
    };
    for codec in [Compression::None, Compression::Snappy, Compression::Zstd] {
        let properties = of(codec);
        group.bench_function(format!("per MB of float16 vectors, {codec:?}"), |b| {
            b.iter(|| black_box(encode_ours(rows(), &properties, &encoders)))
        });
    }
    // The same rows and properties through the Parquet crate's own encoder, which layerwise's
    // float16 encoder replaced: the ratio of the two, from one run.
    let properties = of(Compression::Zstd);
    group.bench_function(
        "per MB of float16 vectors, Zstd, the Parquet crate's encoder",
        |b| {
            b.iter(|| {
                let batch = rows();
                let mut writer =
                    ArrowWriter::try_new(Counted(0), batch.schema(), Some(properties.clone()))
                        .unwrap();
                writer.write(&batch).unwrap();
                black_box(writer.into_inner().unwrap().0)
            })
        },
    );
    group.finish();
}

/// The bytes of `batch` written by layerwise's writer (a file of row groups encoded on
/// `encoders`) with `properties`.
fn encode_ours(batch: RecordBatch, properties: &WriterProperties, encoders: &Encoders) -> usize {
    let mut writer =
        ParallelWriter::try_new(Counted(0), batch.schema(), properties.clone(), encoders).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap().0
}

/// A file that counts the bytes written to it and keeps none, as the run's files on a disk
/// keep none in memory.
struct Counted(usize);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

criterion_group!(benches, decode, formats, stats, parquet, positions);
criterion_main!(benches);
