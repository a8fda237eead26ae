//! The heat map of a comparison: a panel per measure (CKA, debiased CKA, RSA), the layers of
//! the first run down, the second's across, each cell viridis on a 0 to 1 scale with its
//! value written in it, and a colour bar.

use image::{Rgb, RgbImage};

use crate::view::render::{draw_text, draw_text_in, viridis, BACKGROUND, INK};

/// A layer x layer matrix of one measure.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Its title ("linear CKA").
    pub title: String,
    /// The rows' layers (the first run's).
    pub rows: Vec<String>,
    /// The columns' layers (the second run's, or the same).
    pub columns: Vec<String>,
    /// The values, row by row.
    pub values: Vec<f64>,
}

/// A cell's side in pixels: room for "0.93" and a margin.
const CELL: u32 = 44;
/// Space between panels and around the picture.
const MARGIN: u32 = 24;
/// The colour bar's width.
const BAR: u32 = 16;
/// A character of the built-in font.
const CHAR: u32 = 8;
/// The colour of a cell without a value (a layer whose features do not vary).
const EMPTY: Rgb<u8> = Rgb([200, 200, 200]);

/// Draws the panels side by side, with one colour bar on the right.
pub fn heat_map(panels: &[Panel]) -> RgbImage {
    let longest = |names: &[String]| names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let left = panels.iter().map(|p| longest(&p.rows)).max().unwrap_or(0) as u32 * CHAR + 8;
    let top = 2 * CHAR
        + 12
        + panels
            .iter()
            .map(|p| longest(&p.columns))
            .max()
            .unwrap_or(0) as u32
            * CHAR;
    let width_of = |p: &Panel| left + p.columns.len() as u32 * CELL;
    let height = top + panels.iter().map(|p| p.rows.len()).max().unwrap_or(0) as u32 * CELL;
    let total: u32 = panels.iter().map(|p| width_of(p) + MARGIN).sum::<u32>() + BAR + 5 * CHAR;
    let mut canvas = RgbImage::from_pixel(total + MARGIN, height + 2 * MARGIN, BACKGROUND);
    // Titles twice the font's size when every one fits its panel so, else all at its size.
    let large = (panels.iter()).all(|p| p.title.chars().count() as u32 * 2 * CHAR <= width_of(p));
    let mut x = MARGIN;
    for panel in panels {
        let chars = panel.title.chars().count() as u32;
        let room = match large {
            true => width_of(panel) + 8,
            false => (2 * chars * CHAR + 7).min(width_of(panel) + 8),
        };
        draw_text(&mut canvas, &panel.title, x, MARGIN, room);
        draw_panel(&mut canvas, panel, (x, MARGIN), (left, top));
        x += width_of(panel) + MARGIN;
    }
    draw_bar(&mut canvas, x, MARGIN + top, height - top);
    canvas
}

/// One panel's names and cells at `at`, its matrix `margins` (left, top) in from there.
fn draw_panel(canvas: &mut RgbImage, panel: &Panel, at: (u32, u32), margins: (u32, u32)) {
    let (x0, y0) = (at.0 + margins.0, at.1 + margins.1);
    for (r, name) in panel.rows.iter().enumerate() {
        let y = y0 + r as u32 * CELL + (CELL - CHAR) / 2;
        let x = x0 - 8 - name.chars().count() as u32 * CHAR;
        draw_text(canvas, name, x, y, name.chars().count() as u32 * CHAR + 8);
    }
    for (c, name) in panel.columns.iter().enumerate() {
        let x = x0 + c as u32 * CELL + (CELL - CHAR) / 2;
        draw_upwards(canvas, name, x, y0 - 6);
    }
    let columns = panel.columns.len().max(1);
    for (i, &value) in panel.values.iter().enumerate() {
        let (r, c) = ((i / columns) as u32, (i % columns) as u32);
        let (x, y) = (x0 + c * CELL, y0 + r * CELL);
        let colour = match value.is_finite() {
            true => viridis(value as f32),
            false => EMPTY,
        };
        fill(canvas, (x + 1, y + 1), (CELL - 2, CELL - 2), colour);
        let text = match value.is_finite() {
            true => format!("{value:.2}"),
            false => "-".to_owned(),
        };
        let ink = match value.is_finite() && value < 0.6 {
            true => BACKGROUND,
            false => INK,
        };
        let w = text.len() as u32 * CHAR;
        let place = (x + (CELL - w) / 2, y + (CELL - CHAR) / 2);
        draw_text_in(canvas, &text, place, w + 8, ink);
    }
}

/// A column's name written bottom to top, ending at (x, bottom).
fn draw_upwards(canvas: &mut RgbImage, text: &str, x: u32, bottom: u32) {
    let length = text.chars().count() as u32 * CHAR;
    let mut line = RgbImage::from_pixel(length.max(1), CHAR, BACKGROUND);
    draw_text(&mut line, text, 0, 0, length + 8);
    let upright = image::imageops::rotate270(&line);
    let top = bottom.saturating_sub(length);
    image::imageops::overlay(canvas, &upright, x as i64, top as i64);
}

/// The colour bar from 0 (bottom) to 1 (top), with its ticks.
fn draw_bar(canvas: &mut RgbImage, x: u32, y: u32, height: u32) {
    for dy in 0..height {
        let t = 1.0 - dy as f32 / (height.max(2) - 1) as f32;
        fill(canvas, (x, y + dy), (BAR, 1), viridis(t));
    }
    for (label, at) in [
        ("1.0", 0),
        ("0.5", height / 2),
        ("0.0", height.saturating_sub(CHAR)),
    ] {
        draw_text(canvas, label, x + BAR + 4, y + at, 4 * CHAR);
    }
}

/// Fills a rectangle.
fn fill(canvas: &mut RgbImage, (x, y): (u32, u32), (w, h): (u32, u32), colour: Rgb<u8>) {
    for py in y..(y + h).min(canvas.height()) {
        for px in x..(x + w).min(canvas.width()) {
            canvas.put_pixel(px, py, colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_is_drawn_in_its_colour() {
        let panel = Panel {
            title: "linear CKA".into(),
            rows: vec!["conv1".into(), "conv2".into()],
            columns: vec!["conv1".into(), "fc".into(), "x".into()],
            values: vec![1.0, 0.5, f64::NAN, 0.25, 0.0, 0.75],
        };
        let picture = heat_map(&[panel.clone(), panel]);
        let longest = 5 * CHAR + 8;
        let (x0, y0) = (MARGIN + longest, MARGIN + 2 * CHAR + 12 + 5 * CHAR);
        let corner = |r: u32, c: u32| *picture.get_pixel(x0 + c * CELL + 3, y0 + r * CELL + 3);
        assert_eq!(corner(0, 0), viridis(1.0));
        assert_eq!(corner(0, 1), viridis(0.5));
        assert_eq!(corner(0, 2), EMPTY);
        assert_eq!(corner(1, 2), viridis(0.75));
        let inked = picture.pixels().filter(|p| **p == INK).count();
        assert!(inked > 500, "titles, names and values are written: {inked}");
    }
}
