//! The figures, drawn from a tiny run whose maps are known: an identity model returns the
//! preprocessed pixels, and each image is black but for one white pixel, so every map's maximum
//! is where that pixel is.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use layerwise::view::render::{magnification, GAP, INK, TITLE_BAND};

const H: u32 = 6;
const W: u32 = 8;

/// Where image `k`'s white pixel is: (x, y).
fn bright(k: u32) -> (u32, u32) {
    ((3 * k + 1) % W, (2 * k + 1) % H)
}

/// Five images, a run of the identity model that keeps every channel and the top 2, and the
/// config that made it.
fn tiny_run(dir: &Path) -> (PathBuf, PathBuf) {
    for k in 0..5 {
        let mut img = image::RgbImage::new(W, H);
        let (x, y) = bright(k);
        img.put_pixel(x, y, image::Rgb([255, 255, 255]));
        let path = dir.join(format!(
            "images/{}/{k}.png",
            ["dark", "night"][k as usize % 2]
        ));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        img.save(path).unwrap();
    }
    let text = format!(
        "name = \"plots\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n[preprocess]\nsize = [{H}, {W}]\n\
         [[layers]]\nname = \"pixels\"\ntensor = \"pixels\"\nkeep = \"all\"\ntop_k = 2\n[output]\ndir = \"out\"\n",
        model("identity_nchw.onnx").display()
    );
    let config = write_config(dir, &text);
    run_quietly(&config).unwrap();
    (dir.join("out"), config)
}

/// `plot FIGURE --run OUT --layer pixels ARGS...`.
fn plot_run(figure: &str, out: &Path, args: &[&str]) -> (image::RgbImage, String) {
    let out = out.display().to_string();
    let mut all = vec![figure, "--run", &out, "--layer", "pixels"];
    all.extend_from_slice(args);
    plot(&all)
}

fn plot(args: &[&str]) -> (image::RgbImage, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_layerwise"))
        .arg("plot")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = stdout
        .strip_prefix("wrote ")
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .to_owned();
    (image::open(&path).unwrap().to_rgb8(), stdout)
}

/// The grid geometry: (cell width, cell height) in pixels.
fn cell_size() -> (u32, u32) {
    let zoom = magnification(H as usize, W as usize);
    (W * zoom, H * zoom)
}

fn assert_grid(img: &image::RgbImage, cells: u32, cols: u32) {
    let (cw, ch) = cell_size();
    let rows = cells.div_ceil(cols);
    let cols = cols.min(cells);
    assert_eq!(
        img.dimensions(),
        (
            GAP + cols * (cw + GAP),
            GAP + rows * (TITLE_BAND + ch + GAP)
        )
    );
}

/// Checks cell `i` of a grid: its title band has ink, and its brightest pixel lies in the block
/// of map pixel `at`.
fn assert_cell(img: &image::RgbImage, i: u32, cols: u32, at: (u32, u32)) {
    let (cw, ch) = cell_size();
    let zoom = cw / W;
    let x0 = GAP + (i % cols) * (cw + GAP);
    let y0 = GAP + (i / cols) * (TITLE_BAND + ch + GAP);
    let ink = (x0..x0 + cw)
        .flat_map(|x| (y0..y0 + TITLE_BAND).map(move |y| (x, y)))
        .filter(|&(x, y)| *img.get_pixel(x, y) == INK)
        .count();
    assert!(ink > 30, "cell {i}: the title is drawn ({ink} ink pixels)");
    let luma = |p: &image::Rgb<u8>| 299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32;
    let (bx, by) = (x0..x0 + cw)
        .flat_map(|x| (y0 + TITLE_BAND..y0 + TITLE_BAND + ch).map(move |y| (x, y)))
        .max_by_key(|&(x, y)| luma(img.get_pixel(x, y)))
        .unwrap();
    assert_eq!(
        ((bx - x0) / zoom, (by - y0 - TITLE_BAND) / zoom),
        at,
        "cell {i}: brightest pixel"
    );
}

#[test]
fn one_image_many_channels() {
    let dir = tempfile::tempdir().unwrap();
    let (out, config) = tiny_run(dir.path());
    // Image 2 is dark/2.png (images sort as dark/0, dark/2, dark/4, night/1, night/3).
    let (img, stdout) = plot_run("channels", &out, &["--image", "1"]);
    assert!(
        stdout.contains("plots/channels-pixels-1.png (3 cells"),
        "{stdout}"
    );
    assert_grid(&img, 3, 7);
    for c in 0..3 {
        assert_cell(&img, c, 7, bright(2));
    }
    // The same image by path, and computed on the fly from the config, draw the same picture.
    let png = dir.path().join("by-path.png").display().to_string();
    let (by_path, _) = plot_run("channels", &out, &["--image", "dark/2.png", "--png", &png]);
    assert_eq!(by_path, img);
    let png = dir.path().join("live.png").display().to_string();
    let image = dir.path().join("images/dark/2.png").display().to_string();
    let config = config.display().to_string();
    let (live, _) = plot(&[
        "channels", "--config", &config, "--image", &image, "--layer", "pixels", "--png", &png,
    ]);
    assert_eq!(live, img);
}

#[test]
fn one_channel_many_images() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = tiny_run(dir.path());
    let (img, _) = plot_run("images", &out, &["--channel", "1", "--cols", "2"]);
    assert_grid(&img, 5, 2);
    for (i, k) in [0, 2, 4, 1, 3].into_iter().enumerate() {
        assert_cell(&img, i as u32, 2, bright(k));
    }
    let (night, _) = plot_run(
        "images",
        &out,
        &["--channel", "0", "--images", "label=night"],
    );
    assert_grid(&night, 2, 7);
    assert_cell(&night, 1, 7, bright(3));
    let (banded, _) = plot_run(
        "images",
        &out,
        &[
            "--channel",
            "0",
            "--images",
            "0..2",
            "--levels",
            "7",
            "--shared-scale",
        ],
    );
    assert_grid(&banded, 2, 7);
}

#[test]
fn the_images_that_excite_a_channel_most() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = tiny_run(dir.path());
    // Every map peaks at 1.0 (255 / 255): the tie goes to the lowest image_ids, 0 and 1.
    let (img, stdout) = plot_run("top", &out, &["--channel", "2", "--k", "2"]);
    assert!(stdout.contains("(2 cells"), "{stdout}");
    assert_grid(&img, 2, 7);
    assert_cell(&img, 0, 7, bright(0));
    assert_cell(&img, 1, 7, bright(2));
}

#[test]
fn maps_that_are_not_stored_say_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let (out, config) = tiny_run(dir.path());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("keep = \"all\"", "keep = [1]")
        .replace("top_k = 2\n", "");
    std::fs::write(&config, text).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_layerwise"))
        .arg("run")
        .arg(&config)
        .args(["--overwrite", "-q"])
        .output()
        .unwrap();
    assert!(run.status.success());
    let out_s = out.display().to_string();
    let failed = Command::new(env!("CARGO_BIN_EXE_layerwise"))
        .args([
            "plot",
            "channels",
            "--run",
            &out_s,
            "--layer",
            "pixels",
            "--image",
            "0",
            "--channels",
            "0..2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("channel 0 of `pixels` is not stored in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("maps are stored for channels 1. Store more with `keep = [...]`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("layerwise plot channels --config CONFIG --image PATH --layer pixels"),
        "{stderr}"
    );
    // Without top_k, plot top falls back to stats and the stored maps ...
    let (img, _) = plot_run("top", &out, &["--channel", "1", "--k", "3"]);
    assert_grid(&img, 3, 7);
    assert_cell(&img, 2, 7, bright(4));
    // ... or, for a channel the run did not keep, its maps computed again for those images.
    let (again, _) = plot_run("top", &out, &["--channel", "0", "--k", "3"]);
    assert_grid(&again, 3, 7);
    assert_cell(&again, 2, 7, bright(4));
}
