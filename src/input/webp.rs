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

/// Refuses a WebP file whose RIFF container does not fit: shorter than its RIFF header says
/// (cut short in a copy or a download; the decoders would only say that the bitstream is
/// corrupt), or a chunk inside it that runs past the container's end (the image crate would
/// allocate what that chunk's header claims, up to 4 GiB, before finding out). Bytes after the
/// RIFF container are allowed.
pub fn check_structure(bytes: &[u8]) -> Result<(), String> {
    let riff_end = le_u32(bytes, 4).ok_or(TRUNCATED)? + 8;
    if riff_end > bytes.len() as u64 {
        return Err(TRUNCATED.into());
    }
    // Chunks: a four-byte code, a little-endian size, the payload padded to an even length.
    let mut at = 12;
    while at + 8 <= riff_end {
        let end = at + 8 + le_u32(bytes, at + 4).ok_or(TRUNCATED)?;
        if end > riff_end {
            return Err(CHUNK_PAST_END.into());
        }
        at = end + (end & 1);
    }
    Ok(())
}

/// The little-endian u32 at `at` in `bytes`, if `bytes` holds it.
fn le_u32(bytes: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u64::from(u32::from_le_bytes(word.try_into().ok()?)))
}

/// Why a WebP file shorter than its header says is refused.
const TRUNCATED: &str =
    "truncated WebP: shorter than its RIFF header says (the file was cut short)";

/// Why a WebP file with a chunk past the end of its container is refused.
const CHUNK_PAST_END: &str =
    "cannot decode: a WebP chunk runs past the end of its RIFF container (the file is corrupt)";

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
    let same_size = (
        u32::try_from(features.width),
        u32::try_from(features.height),
    ) == (Ok(width), Ok(height));
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
        assert_eq!(check_structure(&bytes), Ok(()));
        let mut trailer = bytes.clone();
        trailer.extend_from_slice(b"more");
        assert_eq!(check_structure(&trailer), Ok(()));
        for cut in [bytes.len() - 1, bytes.len() / 2, 12, 7] {
            assert_eq!(
                check_structure(&bytes[..cut]),
                Err(TRUNCATED.into()),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_chunk_may_not_claim_more_than_its_container() {
        // A VP8X file with an EXIF chunk (odd size: padded) after the image, as cameras write.
        let image = encode(&picture(40, 30), false, false);
        let mut bytes = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        bytes.extend_from_slice(&[10, 0, 0, 0, 0x08, 0, 0, 0, 39, 0, 0, 29, 0, 0]);
        bytes.extend_from_slice(&image[12..]);
        bytes.extend_from_slice(b"EXIF\x03\0\0\0abc\0");
        let riff = (bytes.len() - 8) as u32;
        bytes[4..8].copy_from_slice(&riff.to_le_bytes());
        assert_eq!(check_structure(&bytes), Ok(()));
        let (decoded, _) = crate::input::preprocess::decode_at_least(&bytes, 16, 1 << 20).unwrap();
        assert_eq!(decoded.dimensions(), (40, 30));
        // The EXIF chunk's size claims 4 GiB: refused before any decoder allocates it.
        let at = bytes.len() - 8;
        bytes[at..at + 4].copy_from_slice(&0xffff_001a_u32.to_le_bytes());
        assert_eq!(check_structure(&bytes), Err(CHUNK_PAST_END.into()));
        // The file of the fuzzer that found it (`fuzz/regressions/decode_image/`).
        let found = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/decode_image/oom-webp-exif-chunk-past-end"
        ))
        .unwrap();
        assert_eq!(check_structure(&found), Err(CHUNK_PAST_END.into()));
    }
}
