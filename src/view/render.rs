//! Rendering feature maps: a grid of titled cells, each a map in viridis (optionally banded into
//! levels, optionally over the input image), upsampled with nearest neighbour, as a PNG.

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

/// Height of the title band above each cell, in pixels.
pub const TITLE_BAND: u32 = 20;
/// Gap between cells and around the grid, in pixels.
pub const GAP: u32 = 6;
/// Small maps are magnified (by a whole factor) until their longer side reaches this.
pub const MIN_CELL: u32 = 160;
/// The background colour.
pub const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
/// The title colour.
pub const INK: Rgb<u8> = Rgb([20, 20, 20]);
/// How much of an overlaid cell's colour comes from the map where it is strongest (the rest
/// from the image; where the channel is silent, all of it).
pub const OVERLAY_ALPHA: f32 = 0.85;

/// One cell of a grid: a map, its title, and optionally an image to lay it over.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Written above the map.
    pub title: String,
    /// Map height.
    pub height: usize,
    /// Map width.
    pub width: usize,
    /// Row-major values.
    pub values: Vec<f32>,
    /// The input image, already at the cell's pixel size, to show under the map.
    pub under: Option<RgbImage>,
}

/// How a grid is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Cells per row.
    pub cols: usize,
    /// Quantize each map into this many bands (like `contourf(..., levels)`).
    pub levels: Option<u32>,
    /// One value range for the whole grid instead of one per map.
    pub shared_scale: bool,
}

/// The magnification of a `height` x `width` map in a cell.
pub fn magnification(height: usize, width: usize) -> u32 {
    let side = height.max(width).max(1) as u32;
    MIN_CELL.div_ceil(side).max(1)
}

/// Draws `cells` (all maps the same size) in a grid.
pub fn grid(cells: &[Cell], style: Style) -> RgbImage {
    let (h, w) = cells.first().map_or((1, 1), |c| (c.height, c.width));
    let zoom = magnification(h, w);
    let (cell_w, cell_h) = (w as u32 * zoom, h as u32 * zoom);
    let cols = style.cols.clamp(1, cells.len().max(1));
    let rows = cells.len().div_ceil(cols).max(1);
    let width = GAP + cols as u32 * (cell_w + GAP);
    let height = GAP + rows as u32 * (TITLE_BAND + cell_h + GAP);
    let mut canvas = RgbImage::from_pixel(width, height, BACKGROUND);
    let shared = style
        .shared_scale
        .then(|| range(cells.iter().flat_map(|c| c.values.iter())));
    for (i, cell) in cells.iter().enumerate() {
        let x0 = GAP + (i % cols) as u32 * (cell_w + GAP);
        let y0 = GAP + (i / cols) as u32 * (TITLE_BAND + cell_h + GAP);
        draw_text(&mut canvas, &cell.title, x0, y0 + 2, cell_w);
        let scale = shared.unwrap_or_else(|| own_scale(cell));
        let picture = picture(cell, zoom, scale, style.levels);
        image::imageops::replace(&mut canvas, &picture, x0.into(), (y0 + TITLE_BAND).into());
    }
    canvas
}

/// One cell's map in viridis over `scale` (the values shown darkest and brightest),
/// magnified `zoom` times with nearest neighbour, blended over its image when it has one.
pub fn picture(cell: &Cell, zoom: u32, scale: (f32, f32), levels: Option<u32>) -> RgbImage {
    let (lo, hi) = scale;
    RgbImage::from_fn(
        cell.width as u32 * zoom,
        cell.height as u32 * zoom,
        |x, y| {
            let v = cell.values[(y / zoom) as usize * cell.width + (x / zoom) as usize];
            let t = normalise(v, lo, hi, levels);
            let colour = viridis(t);
            match &cell.under {
                Some(image) => overlay(colour, t, *image.get_pixel(x, y)),
                None => colour,
            }
        },
    )
}

/// The share of a map's values above the top of its scale when it is laid over its image.
pub const OVERLAY_CLIP: f32 = 0.03;

/// Each cell's own scale: its smallest finite value, and its largest, or, laid over its image,
/// the value [`OVERLAY_CLIP`] of its values exceed (a sparse map, such as a contour detector's,
/// peaks far above its typical response, which would otherwise leave all but the peak
/// transparent).
pub fn own_scale(cell: &Cell) -> (f32, f32) {
    let (lo, hi) = range(cell.values.iter());
    if cell.under.is_none() {
        return (lo, hi);
    }
    let mut finite: Vec<f32> = cell
        .values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if finite.is_empty() {
        return (lo, hi);
    }
    let at = ((finite.len() - 1) as f32 * (1.0 - OVERLAY_CLIP)).round() as usize;
    let (_, top, _) = finite.select_nth_unstable_by(at, f32::total_cmp);
    match *top > lo {
        true => (lo, *top),
        false => (lo, hi),
    }
}

/// The smallest and largest finite value.
fn range<'a>(values: impl Iterator<Item = &'a f32>) -> (f32, f32) {
    values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// `v` in `[lo, hi]` as `0..=1`, banded into `levels` steps when asked.
pub fn normalise(v: f32, lo: f32, hi: f32, levels: Option<u32>) -> f32 {
    let t = if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    match levels {
        Some(n) if n >= 2 => (t * n as f32).floor().min(n as f32 - 1.0) / (n as f32 - 1.0),
        _ => t,
    }
}

/// Steps of the viridis table: finer than the 256 levels a colour channel shows.
const VIRIDIS_STEPS: usize = 1024;

/// The viridis colour of `t` in `0..=1` (from a table of `VIRIDIS_STEPS` colours).
pub fn viridis(t: f32) -> Rgb<u8> {
    static TABLE: std::sync::OnceLock<Vec<Rgb<u8>>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..VIRIDIS_STEPS)
            .map(|i| {
                let c = colorous::VIRIDIS.eval_rational(i, VIRIDIS_STEPS);
                Rgb([c.r, c.g, c.b])
            })
            .collect()
    });
    let at = (t.clamp(0.0, 1.0) * (VIRIDIS_STEPS - 1) as f32).round() as usize;
    table[at]
}

/// A map's colour over its image, as opaque as the activation is strong: `t` (the value
/// normalised, 0 where the channel is silent) sets the map's share, from none, where the photo
/// shows as it is, to [`OVERLAY_ALPHA`] at the top of the cell's scale. (Chosen by looking at the
/// demo's contour channel, a dense 14 x 14 map and ViT grids: a fixed share tinted every
/// photo alike; the square root of `t` lit a sparse map's noise.)
fn overlay(map: Rgb<u8>, t: f32, image: Rgb<u8>) -> Rgb<u8> {
    let alpha = OVERLAY_ALPHA * t.clamp(0.0, 1.0);
    Rgb(std::array::from_fn(|i| {
        (alpha * f32::from(map[i]) + (1.0 - alpha) * f32::from(image[i])).round() as u8
    }))
}

/// Writes `text` at (x, y) with the built-in 8 x 8 font, twice the size when it fits in
/// `max_width`, cut to fit otherwise (ending in "..", a character's width short of it).
pub fn draw_text(canvas: &mut RgbImage, text: &str, x: u32, y: u32, max_width: u32) {
    draw_text_in(canvas, text, (x, y), max_width, INK);
}

/// [`draw_text`] in another colour.
pub fn draw_text_in(
    canvas: &mut RgbImage,
    text: &str,
    (x, y): (u32, u32),
    max_width: u32,
    ink: Rgb<u8>,
) {
    // A character's width is left clear of the next cell's title.
    let room = max_width.saturating_sub(8);
    let chars = text.chars().count() as u32;
    let scale = if chars * 16 <= room { 2 } else { 1 };
    let fit = (room / (8 * scale)) as usize;
    let shown: String = match text.chars().count() > fit {
        // Cut short, with ".." to say so.
        true => text
            .chars()
            .take(fit.saturating_sub(2))
            .chain("..".chars())
            .collect(),
        false => text.to_owned(),
    };
    for (i, ch) in shown.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(ch)
            .unwrap_or(font8x8::BASIC_FONTS.get('?').unwrap_or([0; 8]));
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = x + i as u32 * 8 * scale + col * scale + dx;
                        let py = y + row as u32 * scale + dy;
                        if px < canvas.width() && py < canvas.height() {
                            canvas.put_pixel(px, py, ink);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_band_the_range() {
        assert_eq!(normalise(5.0, 0.0, 10.0, None), 0.5);
        assert_eq!(normalise(5.0, 5.0, 5.0, None), 0.0, "a flat map is dark");
        let bands: Vec<f32> = [0.0, 0.2, 0.49, 0.51, 0.99, 1.0]
            .iter()
            .map(|v| normalise(*v, 0.0, 1.0, Some(2)))
            .collect();
        assert_eq!(bands, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(normalise(0.5, 0.0, 1.0, Some(7)), 3.0 / 6.0);
    }

    #[test]
    fn an_overlay_shows_the_photo_where_the_channel_is_silent_and_the_map_where_it_fires() {
        // A sparse map: zero, weak responses, and one peak far above them (a contour's).
        let mut values = vec![0.0f32; 100];
        for v in values.iter_mut().skip(50).take(45) {
            *v = 10.0;
        }
        values[99] = 1000.0;
        let photo = RgbImage::from_fn(10, 10, |x, y| Rgb([(x * 20) as u8, (y * 20) as u8, 90]));
        let cell = Cell {
            title: String::new(),
            height: 10,
            width: 10,
            values,
            under: Some(photo.clone()),
        };
        let silent: Vec<bool> = cell.values.iter().map(|v| *v == 0.0).collect();
        let scale = own_scale(&cell);
        assert_eq!(
            scale,
            (0.0, 10.0),
            "the peak is beyond the top of the scale"
        );
        let picture = picture(&cell, 1, scale, None);
        for i in 0..100u32 {
            let (x, y) = (i % 10, i / 10);
            let (got, under) = (picture.get_pixel(x, y), photo.get_pixel(x, y));
            if silent[i as usize] {
                assert_eq!(got, under, "silent at {i}: the photo as it is");
            } else {
                let moved: i32 = (0..3)
                    .map(|c| (got[c] as i32 - under[c] as i32).abs())
                    .sum();
                assert!(moved > 60, "firing at {i}: {got:?} over {under:?}");
            }
        }
        // Without a photo, the whole range is the scale.
        let alone = Cell {
            under: None,
            ..cell
        };
        assert_eq!(own_scale(&alone), (0.0, 1000.0));
    }

    #[test]
    fn a_title_too_long_for_its_cell_is_cut_with_dots_clear_of_the_next() {
        let mut canvas = RgbImage::from_pixel(200, 10, BACKGROUND);
        draw_text(&mut canvas, "image: 23 (astronaut)", 0, 0, 168);
        let inked =
            |from: u32, to: u32| (from..to).any(|x| (0..8).any(|y| *canvas.get_pixel(x, y) == INK));
        assert!(inked(0, 8), "text starts at the left");
        assert!(!inked(160, 200), "the last character's width is left clear");
        // 20 characters fit in 160 px at 8 px: 18 of the text, then "..".
        assert!(inked(146, 150), "a dot");
    }

    #[test]
    fn viridis_runs_from_purple_to_yellow() {
        assert_eq!(viridis(0.0), Rgb([68, 1, 84]));
        assert_eq!(viridis(1.0), Rgb([253, 231, 37]));
    }

    #[test]
    fn a_grid_has_its_cells_titles_and_maxima_in_place() {
        // Two 4 x 2 maps whose maxima sit at (y 1, x 3) and (y 0, x 0).
        let mut a = vec![0.0; 8];
        a[7] = 9.0;
        let mut b = vec![1.0; 8];
        b[0] = 5.0;
        let cell = |values: Vec<f32>, title: &str| Cell {
            title: title.into(),
            height: 2,
            width: 4,
            values,
            under: None,
        };
        let style = Style {
            cols: 7,
            levels: None,
            shared_scale: false,
        };
        let img = grid(&[cell(a, "channel 0"), cell(b, "channel 1")], style);
        let zoom = magnification(2, 4);
        assert_eq!(zoom, 40);
        let (cw, ch) = (4 * zoom, 2 * zoom);
        assert_eq!(
            img.dimensions(),
            (GAP + 2 * (cw + GAP), GAP + TITLE_BAND + ch + GAP)
        );
        let yellow = Rgb([253, 231, 37]);
        let origin = |i: u32| (GAP + i * (cw + GAP), GAP + TITLE_BAND);
        let (x0, y0) = origin(0);
        assert_eq!(*img.get_pixel(x0 + 3 * zoom + 1, y0 + zoom + 1), yellow);
        assert_ne!(*img.get_pixel(x0 + 1, y0 + 1), yellow);
        let (x1, y1) = origin(1);
        assert_eq!(*img.get_pixel(x1 + 1, y1 + 1), yellow);
        let ink = (x0..x0 + cw)
            .flat_map(|x| (GAP..GAP + TITLE_BAND).map(move |y| (x, y)))
            .filter(|&(x, y)| *img.get_pixel(x, y) == INK)
            .count();
        assert!(ink > 20, "the title is drawn");
    }
}
