//! Still WebP images decoded by libwebp, Google's reference decoder (built from its C sources
//! with the C compiler, no assembler): twice as fast as the image crate's pure-Rust decoder on
//! lossy files and 1.2 times on lossless ones, to the same pixels (`benches/RESULTS.md`, issue
//! 26). What libwebp does not decode here (animations, files it rejects) is left to the image
//! crate, so those behave as they did before.

use image::RgbImage;
use libwebp_sys::{
    VP8StatusCode, WebPDecode, WebPDecoderConfig, WebPFreeDecBuffer, WebPGetFeatures,
    WebPRGBABuffer, WEBP_CSP_MODE,
};

/// Refuses a WebP file shorter than its RIFF header says: cut short in a copy or a download
/// (the decoders would only say that the bitstream is corrupt). Bytes after the RIFF chunk are
/// allowed.
pub fn check_length(bytes: &[u8]) -> Result<(), String> {
    let Some(size) = bytes.get(4..8) else {
        return Err(TRUNCATED.into());
    };
    let riff = u64::from(u32::from_le_bytes([size[0], size[1], size[2], size[3]]));
    if riff + 8 > bytes.len() as u64 {
        return Err(TRUNCATED.into());
    }
    Ok(())
}

/// Why a WebP file shorter than its header says is refused.
const TRUNCATED: &str =
    "truncated WebP: shorter than its RIFF header says (the file was cut short)";

/// Decodes a still WebP image of `width` x `height` (the size the image crate read from its
/// header, already checked against the limits) to 8-bit RGB; alpha is dropped, as
/// [`image::DynamicImage::into_rgb8`] drops it. `None` for an animation, a file whose size
/// libwebp reads differently, or one libwebp cannot decode: the caller then decodes it with the
/// image crate, which takes an animation's first frame and says why a broken file fails.
pub fn decode_still(bytes: &[u8], width: u32, height: u32) -> Option<RgbImage> {
    let mut config = WebPDecoderConfig::new().ok()?;
    // SAFETY: libwebp reads at most `bytes.len()` bytes from `bytes` and writes the features.
    let status = unsafe { WebPGetFeatures(bytes.as_ptr(), bytes.len(), &mut config.input) };
    let features = config.input;
    let same_size = (i64::from(features.width), i64::from(features.height))
        == (i64::from(width), i64::from(height));
    if status != VP8StatusCode::VP8_STATUS_OK || features.has_animation != 0 || !same_size {
        return None;
    }
    let mut image = RgbImage::new(width, height);
    config.output.colorspace = WEBP_CSP_MODE::MODE_RGB;
    config.output.is_external_memory = 1;
    config.output.u.RGBA = WebPRGBABuffer {
        rgba: image.as_mut_ptr(),
        stride: i32::try_from(width.checked_mul(3)?).ok()?,
        size: image.len(),
    };
    // SAFETY: the output buffer is `image`'s, `size` bytes of `height` rows of `stride` bytes,
    // alive until the call returns; libwebp writes within it (it checks `size` against the
    // size it decodes) and allocates nothing that outlives WebPFreeDecBuffer.
    let status = unsafe {
        let status = WebPDecode(bytes.as_ptr(), bytes.len(), &mut config);
        WebPFreeDecBuffer(&mut config.output);
        status
    };
    (status == VP8StatusCode::VP8_STATUS_OK).then_some(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, RgbaImage};
    use std::io::Cursor;

    /// A textured RGBA picture with an alpha ramp, so every decoder step has work to do.
    fn picture(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_fn(width, height, |x, y| {
            let v = (x * 7 + y * 13) ^ (x * y);
            image::Rgba([v as u8, (x * 5) as u8, (y * 3 + v / 3) as u8, (x + y) as u8])
        })
    }

    /// `picture` encoded by libwebp: lossy at quality 80 or lossless, with or without alpha.
    fn encode(image: &RgbaImage, lossless: bool, alpha: bool) -> Vec<u8> {
        let (w, h) = (image.width() as i32, image.height() as i32);
        let rgb = DynamicImage::ImageRgba8(image.clone()).into_rgb8();
        let mut out = std::ptr::null_mut();
        // SAFETY: the pixels are `h` rows of the stride given; libwebp allocates `out`, which is
        // copied and then freed with WebPFree.
        unsafe {
            let len = match (lossless, alpha) {
                (false, false) => {
                    libwebp_sys::WebPEncodeRGB(rgb.as_ptr(), w, h, w * 3, 80.0, &mut out)
                }
                (false, true) => {
                    libwebp_sys::WebPEncodeRGBA(image.as_ptr(), w, h, w * 4, 80.0, &mut out)
                }
                (true, false) => {
                    libwebp_sys::WebPEncodeLosslessRGB(rgb.as_ptr(), w, h, w * 3, &mut out)
                }
                (true, true) => {
                    libwebp_sys::WebPEncodeLosslessRGBA(image.as_ptr(), w, h, w * 4, &mut out)
                }
            };
            assert!(len > 0, "libwebp could not encode");
            let bytes = std::slice::from_raw_parts(out, len).to_vec();
            libwebp_sys::WebPFree(out.cast());
            bytes
        }
    }

    /// The image crate's own decode of a WebP file, as layerwise decoded WebP before libwebp.
    fn image_crate(bytes: &[u8]) -> RgbImage {
        let decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).unwrap();
        DynamicImage::from_decoder(decoder).unwrap().into_rgb8()
    }

    #[test]
    fn libwebp_gives_the_pixels_of_the_image_crate_decoder() {
        let picture = picture(67, 45);
        for lossless in [false, true] {
            for alpha in [false, true] {
                let bytes = encode(&picture, lossless, alpha);
                let ours = decode_still(&bytes, 67, 45).expect("libwebp decodes it");
                assert_eq!(
                    ours,
                    image_crate(&bytes),
                    "lossless {lossless}, alpha {alpha}"
                );
            }
        }
    }

    #[test]
    fn what_libwebp_does_not_decode_is_left_to_the_image_crate() {
        let bytes = encode(&picture(40, 30), false, false);
        assert!(decode_still(&bytes, 40, 30).is_some());
        // Another size than the header the image crate read, and a file cut short.
        assert_eq!(decode_still(&bytes, 41, 30), None);
        assert_eq!(decode_still(&bytes[..bytes.len() / 2], 40, 30), None);
        assert_eq!(decode_still(&bytes[..10], 40, 30), None);
        assert_eq!(decode_still(b"RIFF\0\0\0\0WEBPVP8 ", 40, 30), None);
    }

    #[test]
    fn a_webp_must_be_as_long_as_its_riff_header_says() {
        let bytes = encode(&picture(40, 30), true, false);
        assert_eq!(check_length(&bytes), Ok(()));
        let mut trailer = bytes.clone();
        trailer.extend_from_slice(b"more");
        assert_eq!(check_length(&trailer), Ok(()));
        for cut in [bytes.len() - 1, bytes.len() / 2, 12, 7] {
            assert_eq!(
                check_length(&bytes[..cut]),
                Err(TRUNCATED.into()),
                "cut at {cut}"
            );
        }
    }
}
