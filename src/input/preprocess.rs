//! Decode and preprocess: an image file becomes one image's slice of the model input tensor.

use std::io::Cursor;
use std::path::Path;

use fast_image_resize::images::Image as ResizeImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::webp;
use crate::config::{ChannelOrder, Layout, ResizeMode, DEFAULT_MAX_PIXELS};
use crate::plan::{InputElement, Preprocess};

/// What decoding an image file tells about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSize {
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
}

impl Preprocess {
    /// Decodes `path`, resizes it and writes its tensor values into `out` (`image_len()` long).
    pub fn load_into<T: InputElement>(
        &self,
        path: &Path,
        resizer: &mut Resizer,
        out: &mut [T],
    ) -> Result<SourceSize, String> {
        self.decode_into(&read_file(path)?, resizer, out)
    }

    /// Decodes an encoded image (JPEG, PNG, ... in memory), resizes it and writes its tensor
    /// values into `out` (`image_len()` long).
    pub fn decode_into<T: InputElement>(
        &self,
        bytes: &[u8],
        resizer: &mut Resizer,
        out: &mut [T],
    ) -> Result<SourceSize, String> {
        let (image, size) = decode_at_least(bytes, self.height.max(self.width), self.max_pixels)?;
        let resized = self.resize(image, resizer)?;
        self.write_tensor(&resized, out);
        Ok(size)
    }

    /// Resizes a decoded RGB image and writes its tensor values into `out` (`image_len()`
    /// long), as [`Preprocess::decode_into`] does after decoding.
    pub fn pixels_into<T: InputElement>(
        &self,
        image: &RgbImage,
        resizer: &mut Resizer,
        out: &mut [T],
    ) -> Result<SourceSize, String> {
        let size = SourceSize {
            width: image.width(),
            height: image.height(),
        };
        if image.width() == 0 || image.height() == 0 {
            return Err(format!("an empty image ({} x {})", size.width, size.height));
        }
        let resized = self.resize(image.clone(), resizer)?;
        self.write_tensor(&resized, out);
        Ok(size)
    }

    /// Brings an RGB image to the model's size, as `resize` says (bilinear filter).
    pub fn resize(&self, image: RgbImage, resizer: &mut Resizer) -> Result<RgbImage, String> {
        if image.dimensions() == (self.width, self.height) {
            return Ok(image);
        }
        let (w, h) = image.dimensions();
        let src = ResizeImage::from_vec_u8(w, h, image.into_raw(), PixelType::U8x3)
            .map_err(|e| format!("cannot resize: {e}"))?;
        let mut dst = ResizeImage::new(self.width, self.height, PixelType::U8x3);
        let mut options =
            ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        if self.resize == ResizeMode::ShorterSideCrop {
            options = options.fit_into_destination(Some((0.5, 0.5)));
        }
        resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| format!("cannot resize: {e}"))?;
        Ok(RgbImage::from_raw(self.width, self.height, dst.into_vec())
            .expect("the resizer fills the whole destination"))
    }

    /// Writes a `height` x `width` RGB image into `out` in the model's layout, channel order
    /// and normalisation: `(pixel * scale - mean[c]) / std[c]` (bytes as they are for `u8`).
    pub fn write_tensor<T: InputElement>(&self, image: &RgbImage, out: &mut [T]) {
        assert_eq!(image.dimensions(), (self.width, self.height));
        assert_eq!(out.len(), self.image_len());
        let source_channel = |c: usize| match self.channel_order {
            ChannelOrder::RGB => c,
            ChannelOrder::BGR => 2 - c,
        };
        // (x * scale - mean) / std == x * a + b
        let a: [f32; 3] = std::array::from_fn(|c| self.scale / self.std[c]);
        let b: [f32; 3] = std::array::from_fn(|c| -self.mean[c] / self.std[c]);
        let pixels = image.as_raw().chunks_exact(3);
        match self.layout {
            Layout::NCHW => {
                let plane = out.len() / 3;
                for c in 0..3 {
                    let s = source_channel(c);
                    let dst = &mut out[c * plane..(c + 1) * plane];
                    for (d, px) in dst.iter_mut().zip(pixels.clone()) {
                        *d = T::from_pixel(px[s], a[c], b[c]);
                    }
                }
            }
            Layout::NHWC => {
                for (d, px) in out.chunks_exact_mut(3).zip(pixels) {
                    for c in 0..3 {
                        d[c] = T::from_pixel(px[source_channel(c)], a[c], b[c]);
                    }
                }
            }
        }
    }
}

/// Reads a whole file, saying in plain words why it cannot be read.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "not found (removed after the listing?)".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            std::io::ErrorKind::IsADirectory => "it is a folder".to_owned(),
            _ => e.to_string(),
        };
        format!("unreadable: {reason}")
    })
}

/// Decodes an image file to 8-bit RGB: grey and palette images become RGB, alpha is dropped,
/// 16-bit samples are reduced to 8 bits, and the EXIF orientation is applied.
pub fn decode(path: &Path) -> Result<RgbImage, String> {
    decode_at_least(&read_file(path)?, u32::MAX, DEFAULT_MAX_PIXELS).map(|(image, _)| image)
}

/// Decodes an image file's bytes as [`decode`] does, except that a JPEG whose sides are both
/// at least twice `min_side` is decoded at a reduced scale (1/2, 1/4 or 1/8) in the DCT domain,
/// still `min_side` or more on each side: far less work for large photos bound for a small
/// input. Still WebP images are decoded by libwebp ([`webp`]), to the pixels the image crate
/// gives. Also returns the file's full size (after EXIF orientation).
///
/// Never panics on arbitrary bytes. Refused with a reason: files that are no image (saying what
/// they look like), images of more than `max_pixels` (from the header, before decoding), JPEGs
/// that end before their end-of-image marker (the decoder would fill the rest with grey), WebPs
/// shorter than their RIFF header says or with a chunk past its end, and files the decoder
/// rejects.
pub fn decode_at_least(
    bytes: &[u8],
    min_side: u32,
    max_pixels: u64,
) -> Result<(RgbImage, SourceSize), String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("unreadable: {e}"))?;
    let Some(format) = reader.format() else {
        return Err(not_an_image(bytes));
    };
    match format {
        image::ImageFormat::Jpeg => check_jpeg_structure(bytes)?,
        image::ImageFormat::WebP => webp::check_structure(bytes)?,
        _ => {}
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(ALLOC_BYTES_PER_PIXEL));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(format!(
            "too large: {width} x {height} exceeds max_pixels ({max_pixels}); raise \
             `[input] max_pixels` to take it"
        ));
    }
    let orientation = decoder
        .orientation()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let fast = match format {
        image::ImageFormat::Jpeg if width.min(height) / 2 >= min_side => {
            decode_jpeg_scaled(bytes, min_side)
        }
        image::ImageFormat::WebP => {
            webp::decode_still(bytes, width, height).map(|rgb| Ok(DynamicImage::ImageRgb8(rgb)))
        }
        _ => None,
    };
    let mut image = match fast {
        Some(image) => image?,
        None => DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?,
    };
    image.apply_orientation(orientation);
    let swaps = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let size = if swaps {
        SourceSize {
            width: height,
            height: width,
        }
    } else {
        SourceSize { width, height }
    };
    Ok((image.into_rgb8(), size))
}

/// A JPEG decoded at the smallest DCT scale that keeps both sides at least `min_side`;
/// `None` for the pixel formats this path does not handle (CMYK, 16-bit), which the full
/// decoder then reads.
fn decode_jpeg_scaled(bytes: &[u8], min_side: u32) -> Option<Result<DynamicImage, String>> {
    let side = u16::try_from(min_side).ok()?;
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().ok()?;
    if !matches!(
        decoder.info()?.pixel_format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    ) {
        return None;
    }
    decoder.scale(side, side).ok()?;
    let pixels = match decoder.decode() {
        Ok(p) => p,
        Err(e) => return Some(Err(format!("cannot decode: {e}"))),
    };
    let info = decoder.info()?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    Some(Ok(match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels)?)
        }
        _ => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels)?),
    }))
}

/// Bytes a decoder may allocate per pixel of an image within `max_pixels`: enough for 16-bit
/// RGBA (8) plus its conversion to 8-bit RGB (3), with room for the decoder's own buffers.
const ALLOC_BYTES_PER_PIXEL: u64 = 16;

/// Walks a JPEG's markers from start of image to end of image, skipping each segment by its
/// length and the entropy-coded data after each start of scan. A file that ends before the
/// end-of-image marker was cut short (the image crate's decoder would fill the rest with grey
/// and report success). Bytes after the marker (thumbnails of some cameras, motion photos) are
/// allowed.
fn check_jpeg_structure(bytes: &[u8]) -> Result<(), String> {
    const TRUNCATED: &str = "truncated JPEG: missing end of image (the file was cut short)";
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("cannot decode: not a JPEG start of image".into());
    }
    let mut at = 2;
    loop {
        // Find the next marker: 0xFF (possibly repeated as fill) then a code.
        while at < bytes.len() && bytes[at] != 0xFF {
            at += 1;
        }
        while at < bytes.len() && bytes[at] == 0xFF {
            at += 1;
        }
        let Some(&code) = bytes.get(at) else {
            return Err(TRUNCATED.into());
        };
        at += 1;
        match code {
            0xD9 => return Ok(()),
            // Restart markers and TEM stand alone.
            0xD0..=0xD7 | 0x01 => {}
            _ => {
                let Some(length) = bytes.get(at..at + 2) else {
                    return Err(TRUNCATED.into());
                };
                at += usize::from(u16::from_be_bytes([length[0], length[1]]));
                if at > bytes.len() {
                    return Err(TRUNCATED.into());
                }
                if code == 0xDA {
                    at = end_of_entropy_data(bytes, at);
                }
            }
        }
    }
}

/// The position of the first marker after entropy-coded data starting at `at`: a 0xFF that is
/// neither a stuffed zero byte nor a restart marker (or the end of `bytes`).
fn end_of_entropy_data(bytes: &[u8], mut at: usize) -> usize {
    while at + 1 < bytes.len() {
        if bytes[at] == 0xFF && !matches!(bytes[at + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
            return at;
        }
        at += 1;
    }
    bytes.len()
}

/// Says what a file that no image decoder recognises seems to be.
fn not_an_image(bytes: &[u8]) -> String {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
    if bytes.is_empty() {
        "not an image: the file is empty".into()
    } else if head.contains("<html") || head.contains("<!doctype html") {
        "not an image: looks like HTML (a saved error page?)".into()
    } else {
        "not an image: unknown format".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::InputType;

    fn spec(layout: Layout, channel_order: ChannelOrder) -> Preprocess {
        Preprocess {
            input_type: InputType::Float32,
            height: 1,
            width: 2,
            resize: ResizeMode::Stretch,
            layout,
            channel_order,
            scale: 0.5,
            mean: [1.0, 2.0, 3.0],
            std: [1.0, 2.0, 4.0],
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }

    /// Two pixels: (10, 20, 30) and (40, 50, 60).
    fn two_pixels() -> RgbImage {
        RgbImage::from_raw(2, 1, vec![10, 20, 30, 40, 50, 60]).unwrap()
    }

    fn tensor(p: &Preprocess) -> Vec<f32> {
        let mut out = vec![0.0; p.image_len()];
        p.write_tensor(&two_pixels(), &mut out);
        out
    }

    #[test]
    fn uint8_input_gets_the_bytes_in_layout_and_order() {
        let mut out = vec![0u8; 6];
        spec(Layout::NCHW, ChannelOrder::BGR).write_tensor(&two_pixels(), &mut out);
        assert_eq!(out, [30, 60, 20, 50, 10, 40]);
    }

    #[test]
    fn nchw_rgb_is_planar_and_normalised() {
        // c0 = (R*0.5 - 1)/1, c1 = (G*0.5 - 2)/2, c2 = (B*0.5 - 3)/4
        let t = tensor(&spec(Layout::NCHW, ChannelOrder::RGB));
        assert_eq!(t, [4.0, 19.0, 4.0, 11.5, 3.0, 6.75]);
    }

    #[test]
    fn nhwc_bgr_is_interleaved_blue_first() {
        // c0 = (B*0.5 - 1)/1, c1 = (G*0.5 - 2)/2, c2 = (R*0.5 - 3)/4
        let t = tensor(&spec(Layout::NHWC, ChannelOrder::BGR));
        assert_eq!(t, [14.0, 4.0, 0.5, 29.0, 11.5, 4.25]);
    }

    #[test]
    fn centre_crop_keeps_the_middle() {
        // A 4 x 2 image whose middle two columns are white: cropping to 1 x 1... via 2 x 2.
        let mut img = RgbImage::new(4, 2);
        for y in 0..2 {
            for x in 1..3 {
                img.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        let p = Preprocess {
            height: 2,
            width: 2,
            resize: ResizeMode::ShorterSideCrop,
            ..spec(Layout::NCHW, ChannelOrder::RGB)
        };
        let out = p.resize(img.clone(), &mut Resizer::new()).unwrap();
        assert!(out.pixels().all(|px| px.0 == [255, 255, 255]), "{out:?}");
        let stretched = Preprocess {
            resize: ResizeMode::Stretch,
            ..p
        }
        .resize(img, &mut Resizer::new())
        .unwrap();
        assert!(stretched.pixels().all(|px| px.0 != [0, 0, 0]));
        assert!(stretched.pixels().any(|px| px.0 != [255, 255, 255]));
    }

    #[test]
    fn a_jpeg_must_reach_its_end_of_image_marker() {
        let mut jpeg = Vec::new();
        let picture = RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 99])
        });
        DynamicImage::ImageRgb8(picture)
            .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        assert_eq!(check_jpeg_structure(&jpeg), Ok(()));
        let mut trailer = jpeg.clone();
        trailer.extend_from_slice(b"camera trailer \xff\x00 after the end");
        assert_eq!(
            check_jpeg_structure(&trailer),
            Ok(()),
            "bytes after EOI are allowed"
        );
        let truncated = "truncated JPEG: missing end of image (the file was cut short)";
        for cut in [
            jpeg.len() - 2,
            jpeg.len() - 1,
            jpeg.len() * 2 / 3,
            jpeg.len() / 3,
            4,
        ] {
            let err = check_jpeg_structure(&jpeg[..cut]).unwrap_err();
            assert_eq!(err, truncated, "cut at {cut} of {}", jpeg.len());
            let decoded = decode_at_least(&jpeg[..cut], 16, DEFAULT_MAX_PIXELS).unwrap_err();
            assert_eq!(decoded, truncated);
        }
    }

    #[test]
    fn non_images_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let html = dir.path().join("page.jpg");
        std::fs::write(&html, "<html><body>404 Not Found</body></html>").unwrap();
        assert_eq!(
            decode(&html).unwrap_err(),
            "not an image: looks like HTML (a saved error page?)"
        );
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            decode(&empty).unwrap_err(),
            "not an image: the file is empty"
        );
        let missing = dir.path().join("missing.png");
        assert!(decode(&missing).unwrap_err().starts_with("unreadable: "));
    }

    #[test]
    fn large_jpegs_are_decoded_at_a_reduced_scale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jpg");
        let big = RgbImage::from_fn(1600, 1200, |x, y| {
            image::Rgb([(x / 7) as u8, (y / 5) as u8, ((x + y) / 11) as u8])
        });
        big.save(&path).unwrap();
        let (scaled, size) =
            decode_at_least(&std::fs::read(&path).unwrap(), 224, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(
            size,
            SourceSize {
                width: 1600,
                height: 1200
            },
            "the file's own size is reported"
        );
        assert_eq!(
            scaled.dimensions(),
            (400, 300),
            "1/4 scale keeps both sides at least 224"
        );
        let (full, _) =
            decode_at_least(&std::fs::read(&path).unwrap(), 1000, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(
            full.dimensions(),
            (1600, 1200),
            "not twice the size: decoded whole"
        );
        // The two routes give the same picture at the model's size.
        let p = Preprocess {
            height: 224,
            width: 224,
            ..spec(Layout::NCHW, ChannelOrder::RGB)
        };
        let a = p.resize(scaled, &mut Resizer::new()).unwrap();
        let b = p.resize(full, &mut Resizer::new()).unwrap();
        let diff = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum::<f64>()
            / a.as_raw().len() as f64;
        assert!(diff < 2.0, "mean absolute difference {diff}");
    }

    #[test]
    fn grey_and_alpha_become_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let grey = dir.path().join("g.png");
        image::GrayImage::from_raw(1, 1, vec![77])
            .unwrap()
            .save(&grey)
            .unwrap();
        assert_eq!(decode(&grey).unwrap().as_raw(), &[77, 77, 77]);
        let rgba = dir.path().join("a.png");
        image::RgbaImage::from_raw(1, 1, vec![1, 2, 3, 0])
            .unwrap()
            .save(&rgba)
            .unwrap();
        assert_eq!(decode(&rgba).unwrap().as_raw(), &[1, 2, 3]);
    }
}
