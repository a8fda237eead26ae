//! `layerwise report`: the numbers on the pages against DuckDB over the same tables, the
//! pages' own queries, runs without labels or `top_k`, partial runs, hostile names, errors, and
//! the site in a real browser (Debian's headless Chromium, driven by tests/browser/).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::*;
use serde_json::Value;

/// The demo run (labels, an image in error, `top_k` on block5_conv3, a vector layer) and its
/// report, made once for the tests of this file.
fn demo_report() -> &'static (tempfile::TempDir, PathBuf) {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        run_quietly(&demo_config(dir.path())).unwrap();
        let out = dir.path().join("out");
        report(&out, &[]);
        (dir, out)
    })
}

/// Runs `layerwise report OUT ARGS`; returns the path it printed.
pub fn report(out: &Path, args: &[&str]) -> PathBuf {
    let output = layerwise()
        .arg("report")
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let printed = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(printed.trim())
}

pub fn page(report: &Path, name: &str) -> String {
    std::fs::read_to_string(report.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The headings and the `data-v` numbers of each row of the table `id` (None for text cells).
fn table(html: &str, id: &str) -> (Vec<String>, Vec<Vec<Option<f64>>>) {
    let start = html
        .find(&format!("<table class=\"sortable\" id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id}"));
    let body = &html[start..];
    let body = &body[..body.find("</table>").unwrap()];
    let (head, rows) = body.split_once("</thead>").unwrap();
    let headings = head
        .split("<th ")
        .skip(1)
        .map(|th| th[th.find('>').unwrap() + 1..th.find("</th>").unwrap()].to_owned())
        .collect();
    let rows = rows
        .split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    td.strip_prefix(" data-v=\"")
                        .map(|v| v[..v.find('"').unwrap()].parse().unwrap())
                })
                .collect()
        })
        .collect();
    (headings, rows)
}

/// The DuckDB queries under the figures of a page, unescaped.
fn queries(html: &str) -> Vec<String> {
    html.split("<pre><code>")
        .skip(1)
        .map(|q| {
            q[..q.find("</code>").unwrap()]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

/// Runs SQL in DuckDB (the project's Python); each row as a JSON array.
fn duckdb(sql: &str) -> Vec<Vec<Value>> {
    let script = "import json, sys, duckdb\n\
                  rows = duckdb.sql(sys.argv[1]).fetchall()\n\
                  print(json.dumps([list(r) for r in rows], default=str))";
    let output = Command::new(python())
        .args(["-c", script, sql])
        .output()
        .unwrap();
    assert!(output.status.success(), "{sql}\n{}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn assert_near(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1e-6),
        "{what}: page {got}, DuckDB {want}"
    );
}

fn table_sql(out: &Path, table: &str) -> String {
    format!("read_parquet('{}/{table}/*.parquet')", out.display())
}

/// The channel table of `layer` in DuckDB: per channel, images, mean, mean max, peak,
/// frac > 0 and the mean of each label, from `stats` (or `vectors`).
fn channel_numbers(out: &Path, layer: &str, vector: bool, labels: &[&str]) -> Vec<Vec<f64>> {
    let obs = if vector {
        format!(
            "SELECT image_id, generate_subscripts(\"values\", 1) - 1 AS channel, unnest(\"values\") AS mean, \
             unnest(\"values\") AS max, (unnest(\"values\") > 0)::DOUBLE AS frac_positive FROM {} WHERE layer = '{layer}'",
            table_sql(out, "vectors")
        )
    } else {
        format!(
            "SELECT * FROM {} WHERE layer = '{layer}'",
            table_sql(out, "stats")
        )
    };
    let per_label: String = labels
        .iter()
        .map(|l| format!(", avg(CASE WHEN i.label = '{l}' THEN o.mean END)"))
        .collect();
    let sql = format!(
        "SELECT o.channel, count(*), avg(o.mean), avg(o.max), max(o.max), avg(o.frac_positive){per_label} \
         FROM ({obs}) o JOIN {} i USING (image_id) GROUP BY o.channel ORDER BY o.channel",
        table_sql(out, "images")
    );
    duckdb(&sql)
        .iter()
        .map(|row| row.iter().map(f64_of).collect())
        .collect()
}

/// Morcos et al.'s class selectivity index over two label means: with two labels, mu_rest is
/// the other label's mean.
fn selectivity(means: &[f64]) -> f64 {
    let [a, b] = means else {
        panic!("the demo has two labels")
    };
    (a.max(*b) - a.min(*b)) / (a + b)
}

/// The layer page's channel table equals the tables' numbers in DuckDB, channel by channel.
fn assert_channel_table(
    report: &Path,
    out: &Path,
    index: usize,
    layer: &str,
    vector: bool,
    labels: &[&str],
) {
    let html = page(report, &format!("layer-{index}.html"));
    let (headings, rows) = table(&html, "channels");
    let mut want_headings = vec![
        "channel",
        "images",
        "mean",
        "mean max",
        "peak",
        "frac &gt; 0",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    want_headings.extend(labels.iter().map(|l| format!("mean: {l}")));
    if labels.len() >= 2 {
        want_headings.push("selectivity".into());
    }
    assert_eq!(headings, want_headings, "{layer}");
    let want = channel_numbers(out, layer, vector, labels);
    assert_eq!(rows.len(), want.len(), "{layer}: one row per channel");
    for (got, want) in rows.iter().zip(&want) {
        let c = want[0];
        assert_eq!(got[0], Some(c), "{layer}: channel order");
        for (i, w) in want.iter().enumerate().skip(1) {
            let what = format!("{layer} channel {c} {}", headings[i]);
            assert_near(
                got[i].unwrap_or_else(|| panic!("{what}: no value")),
                *w,
                &what,
            );
        }
        if labels.len() >= 2 {
            let (s, what) = (
                selectivity(&want[6..]),
                format!("{layer} channel {c} selectivity"),
            );
            match got[6 + labels.len()] {
                Some(got) => assert_near(got, s, &what),
                None => assert!(!s.is_finite(), "{what}: none on the page, {s} in DuckDB"),
            }
        }
    }
}

#[test]
fn the_index_counts_the_images_and_lists_the_failures() {
    let (_, out) = demo_report();
    let html = page(&out.join("report"), "index.html");
    let counts = duckdb(&format!(
        "SELECT count(*), count(*) FILTER (status = 'ok'), count(*) FILTER (status <> 'ok') FROM {}",
        table_sql(out, "images")
    ));
    let span = |id: &str| {
        let tag = format!("<span id=\"{id}\">");
        let at = html.find(&tag).unwrap() + tag.len();
        html[at..at + html[at..].find('<').unwrap()]
            .parse::<u64>()
            .unwrap()
    };
    let want: Vec<u64> = counts[0].iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(
        vec![
            span("images-total"),
            span("images-ok"),
            span("images-error")
        ],
        want
    );
    assert_eq!(want, [51, 50, 1]);
    let failed = duckdb(&format!(
        "SELECT path, error FROM {} WHERE status <> 'ok'",
        table_sql(out, "images")
    ));
    let (path, error) = (
        failed[0][0].as_str().unwrap(),
        failed[0][1].as_str().unwrap(),
    );
    assert!(html.contains(path), "the failed file is listed");
    assert!(
        html.contains(&error.replace('\'', "&#39;").replace('"', "&quot;")),
        "with its reason"
    );
    assert!(
        html.contains("e1664f0c") || html.contains("model SHA-256"),
        "the model's digest"
    );
    let (_, layers) = table(&html, "layers");
    assert_eq!(layers.len(), 3, "every layer");
    for (i, name) in ["block1_conv1", "block5_conv3", "predictions"]
        .iter()
        .enumerate()
    {
        assert!(html.contains(&format!("<a href=\"layer-{i}.html\">{name}</a>")));
    }
    assert!(
        html.contains("images/s"),
        "the throughput of a finished run"
    );
}

#[test]
fn layer_tables_equal_duckdb_over_the_tables() {
    let (_, out) = demo_report();
    let report = out.join("report");
    let labels = ["astronaut", "cat"];
    assert_channel_table(&report, out, 0, "block1_conv1", false, &labels);
    assert_channel_table(&report, out, 1, "block5_conv3", false, &labels);
    assert_channel_table(&report, out, 2, "predictions", true, &labels);
}

/// The examples on a channel page are the DuckDB query's, in order, and `drawn` of them have a
/// picture.
fn assert_examples(html: &str, sql: &str, drawn: usize) {
    let want = duckdb(sql);
    let got = report_examples(html);
    assert_eq!(got.len(), 8, "{sql}");
    for ((id, score), row) in got.iter().zip(&want) {
        assert_eq!(*id, row[0].as_u64().unwrap(), "{sql}");
        assert_near(*score, f64_of(&row[1]), "score");
    }
    assert_eq!(html.matches("<img src=\"c").count(), drawn, "{sql}");
}

#[test]
fn channel_pages_show_the_top_examples_in_order() {
    let (_, out) = demo_report();
    let report = out.join("report");
    // block5_conv3 has top_k: the top table's order (score, then image_id), every map drawn.
    // block1_conv1 has none: ranked by the per-image max in stats; channel 5 is not kept, so
    // its examples are the images alone.
    for (index, layer, table, score, channels) in [
        (1, "block5_conv3", "top", "score", [0, 164, 511]),
        (0, "block1_conv1", "stats", "max", [0, 11, 5]),
    ] {
        for channel in channels {
            let sql = format!(
                "SELECT image_id, {score} FROM {} WHERE layer = '{layer}' AND channel = {channel} \
                 ORDER BY {score} DESC, image_id LIMIT 8",
                table_sql(out, table)
            );
            let html = page(&report, &format!("layer-{index}/channel-{channel}.html"));
            assert_examples(&html, &sql, 8);
        }
    }
}

#[test]
fn the_pages_queries_reproduce_their_numbers() {
    let (_, out) = demo_report();
    let html = page(&out.join("report"), "layer-1/channel-164.html");
    let queries = queries(&html);
    assert_eq!(queries.len(), 4, "examples, two histograms, label means");
    let examples_sql = duckdb(&queries[0]);
    assert_eq!(
        examples_sql
            .iter()
            .map(|r| r[0].as_u64().unwrap())
            .collect::<Vec<_>>(),
        report_examples(&html)
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>()
    );
    // The histogram counts under the figure equal the query's.
    let axes: Vec<Vec<u64>> = html
        .split("<p class=\"axis\">")
        .skip(1)
        .map(|p| {
            let text = &p[..p.find("</p>").unwrap()];
            text.split(": ")
                .nth(1)
                .unwrap()
                .split(' ')
                .map(|n| n.parse().unwrap())
                .collect()
        })
        .collect();
    for (query, bars) in queries[1..3].iter().zip(&axes) {
        let mut counted = vec![0; bars.len()];
        for row in duckdb(query) {
            counted[row[0].as_f64().unwrap() as usize] = row[1].as_u64().unwrap();
        }
        assert_eq!(&counted, bars, "{query}");
        assert_eq!(bars.iter().sum::<u64>(), 50, "one per ok image");
    }
    let (_, means) = table(&html, "label-means");
    let want = duckdb(&queries[3]);
    for (got, want) in means.iter().zip(&want) {
        assert_near(got[1].unwrap(), f64_of(&want[1]), "label mean");
    }
    let s = html.split("<span id=\"selectivity\">").nth(1).unwrap();
    let s: f64 = s[..s.find('<').unwrap()].parse().unwrap();
    let m: Vec<f64> = want.iter().map(|r| f64_of(&r[1])).collect();
    assert!(
        (s - selectivity(&m)).abs() < 5e-4,
        "selectivity shown to 3 places"
    );
}

/// A run over the tiny model without labels and without `top_k`; its output folder.
fn plain_run(dir: &Path, images: &[(&str, u32, u32)], part_size: usize) -> PathBuf {
    write_images(&dir.join("images"), images);
    let config = tiny_config_with_layers(
        dir,
        "plain",
        &format!("[run]\npart_size = {part_size}\n[[layers]]\nname = \"conv\"\ntensor = \"conv1\"\nkeep = [1]\n"),
    );
    run_quietly(&config).unwrap();
    dir.join("out")
}

#[test]
fn a_run_without_labels_or_top_k_has_examples_from_stats() {
    let dir = tempfile::tempdir().unwrap();
    let out = plain_run(
        dir.path(),
        &[("a.png", 20, 16), ("b.jpg", 24, 24), ("c.png", 16, 30)],
        1000,
    );
    let report = report(&out, &["--top", "2"]);
    let layer = page(report.parent().unwrap(), "layer-0.html");
    let (headings, rows) = table(&layer, "channels");
    assert!(!headings
        .iter()
        .any(|h| h.starts_with("mean: ") || h == "selectivity"));
    assert_eq!(
        rows.len(),
        duckdb(&format!(
            "SELECT DISTINCT channel FROM {}",
            table_sql(&out, "stats")
        ))
        .len()
    );
    let kept = page(report.parent().unwrap(), "layer-0/channel-1.html");
    assert_eq!(report_examples(&kept).len(), 2, "--top 2");
    assert!(kept.contains("The images have no labels."));
    let want = duckdb(&format!(
        "SELECT image_id FROM {} WHERE channel = 1 ORDER BY max DESC, image_id LIMIT 2",
        table_sql(&out, "stats")
    ));
    assert_eq!(
        report_examples(&kept)
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        want.iter()
            .map(|r| r[0].as_u64().unwrap())
            .collect::<Vec<_>>()
    );
    assert!(report.ends_with("report/index.html"));
}

#[test]
fn with_many_labels_the_layer_table_names_each_channels_top_label() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, u32, u32)> = (0..26)
        .map(|i| {
            (
                format!("class{:02}/{i}.png", i % 13),
                12 + i % 5,
                10 + i % 7,
            )
        })
        .collect();
    let files: Vec<(&str, u32, u32)> = files.iter().map(|(p, w, h)| (p.as_str(), *w, *h)).collect();
    let out = plain_run(dir.path(), &files, 1000);
    let report = report(&out, &[]);
    let layer = page(report.parent().unwrap(), "layer-0.html");
    let (headings, rows) = table(&layer, "channels");
    assert_eq!(
        &headings[6..],
        ["top label", "mean: top label", "selectivity"],
        "{headings:?}"
    );
    assert!(layer.contains("With 13 labels (more than 12), each channel shows its top label"));
    // The page's own query gives each channel's top label and its mean.
    let queries = queries(&layer);
    assert!(
        queries[1].contains("arg_max(label, mean)"),
        "{}",
        queries[1]
    );
    let want = duckdb(&queries[1]);
    assert_eq!(rows.len(), want.len());
    let section = &layer[layer.find("id=\"channels\"").unwrap()..];
    let section = &section[..section.find("</table>").unwrap()];
    let names: Vec<&str> = section
        .split("<span class=\"label\">")
        .skip(1)
        .map(|s| &s[..s.find("</span>").unwrap()])
        .collect();
    for ((row, name), want) in rows.iter().zip(&names).zip(&want) {
        let channel = want[0].as_u64().unwrap();
        assert_eq!(row[0], Some(channel as f64));
        assert_eq!(*name, want[1].as_str().unwrap(), "channel {channel}");
        assert_near(row[7].unwrap(), f64_of(&want[2]), "top label mean");
    }
    // The channel page still lists all 13.
    let channel = page(report.parent().unwrap(), "layer-0/channel-0.html");
    assert_eq!(table(&channel, "label-means").1.len(), 13);
}

#[test]
fn a_partial_run_is_reported_from_its_committed_parts() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, u32, u32)> = (0..5).map(|i| (format!("{i}.png"), 16, 16)).collect();
    let files: Vec<(&str, u32, u32)> = files.iter().map(|(n, w, h)| (n.as_str(), *w, *h)).collect();
    let out = plain_run(dir.path(), &files, 2);
    // As the run looks before its last part is committed: no run.json, part 2 missing.
    std::fs::remove_file(out.join("run.json")).unwrap();
    std::fs::remove_file(out.join("_parts/part-00002.json")).unwrap();
    for table in ["images", "stats", "maps", "vectors", "top"] {
        let part = out.join(table).join("part-00002.parquet");
        if part.exists() {
            std::fs::remove_file(part).unwrap();
        }
    }
    let report = report(&out, &[]);
    let index = std::fs::read_to_string(&report).unwrap();
    assert!(index.contains("partial: 2 of 3 parts committed"), "{index}");
    assert!(index.contains("<span id=\"images-total\">4</span>"));
    let (_, rows) = table(&page(report.parent().unwrap(), "layer-0.html"), "channels");
    assert!(
        rows.iter().all(|r| r[1] == Some(4.0)),
        "4 images in the committed parts"
    );
}

#[test]
fn hostile_names_and_labels_show_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let label = "<svg onload=window.pwned=1>";
    let good = "<img src=x onerror=window.pwned=2>.png";
    let bad = "\"><script>window.pwned=3<\\script>.jpg";
    write_images(
        &dir.path().join("images").join(label),
        &[(good, 16, 16), ("plain.png", 20, 20)],
    );
    write_html_as_jpg(&dir.path().join("images").join(label).join(bad));
    let config = tiny_config_with_layers(
        dir.path(),
        "</title><script>window.pwned=4</script>",
        "[[layers]]\nname = \"<b>conv</b>\"\ntensor = \"conv1\"\nkeep = \"all\"\n",
    );
    let record = run_quietly(&config).unwrap();
    assert_eq!((record.counts.ok, record.counts.error), (2, 1));
    let out = dir.path().join("out");
    let report = report(&out, &[]).parent().unwrap().to_owned();
    let mut pages = 0;
    for entry in walk(&report) {
        if entry.extension().is_some_and(|e| e == "html") {
            let html = std::fs::read_to_string(&entry).unwrap();
            for raw in [
                label,
                "<img src=x",
                "<script>window",
                "<b>conv</b>",
                "</title><script>",
            ] {
                assert!(
                    !html.contains(raw),
                    "{} holds {raw} unescaped",
                    entry.display()
                );
            }
            pages += 1;
        }
    }
    assert!(pages > 3);
    let index = page(&report, "index.html");
    assert!(
        index.contains("&lt;svg onload=window.pwned=1&gt;"),
        "the label, as text"
    );
    assert!(
        index.contains("&quot;&gt;&lt;script&gt;window.pwned=3&lt;\\script&gt;.jpg"),
        "the failed file"
    );
    assert!(index.contains("&lt;b&gt;conv&lt;/b&gt;"));
    let channel = page(&report, "layer-0/channel-0.html");
    assert!(
        channel.contains("&lt;img src=x onerror=window.pwned=2&gt;.png"),
        "the example's path"
    );
    browser(
        &report,
        &dir.path().join("shots"),
        &["index.html", "layer-0.html", "layer-0/channel-0.html"],
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Runs tests/browser/check_report.py (headless Chromium) over `pages` of `report`.
pub fn browser(report: &Path, shots: &Path, pages: &[&str]) -> Vec<Value> {
    assert!(
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists(),
        "no browser: run scripts/browser-env.sh (Debian's chromium and chromium-driver)"
    );
    let output = Command::new(python())
        .arg(root().join("tests/browser/check_report.py"))
        .arg(report)
        .arg(shots)
        .args(pages)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The demo run's first layer: 64 channels, 6 of them kept (`pipelines/demo.toml`).
const KEPT: [u32; 6] = [0, 11, 12, 27, 30, 34];

#[test]
fn every_channel_of_the_first_layer_shows_its_map_recomputed_where_the_run_did_not_keep_it() {
    let (_, out) = demo_report();
    let site = out.join("report");
    let layer = page(&site, "layer-0.html");
    assert!(
        layer.contains(
            "The run did not keep the maps of 464 examples: the report computed them again, \
             running their 31 images through the run's model (at most 256 per layer)."
        ),
        "58 channels x 8 examples"
    );
    let run = layerwise::view::read::StoredRun::open(out).unwrap();
    let images = run.images().unwrap();
    let photos = layerwise::view::photos::Photos::read(&run, images.iter());
    let mut resizer = fast_image_resize::Resizer::new();
    for channel in 0..64u32 {
        let html = page(&site, &format!("layer-0/channel-{channel}.html"));
        let examples = report_examples(&html);
        assert_eq!(examples.len(), 8, "channel {channel}");
        assert_eq!(html.matches("<figure class=\"example\"").count(), 8);
        assert_eq!(
            html.matches("<img src=\"c").count(),
            8,
            "channel {channel}: every example drawn"
        );
        let recomputed = html.matches("map recomputed by the report").count();
        let want = if KEPT.contains(&channel) { 0 } else { 8 };
        assert_eq!(recomputed, want, "channel {channel}");
        // Its best example is its map over the photo, not the photo alone.
        let drawn = image::open(site.join(format!("layer-0/c{channel}-0.jpg")))
            .unwrap()
            .to_rgb8();
        let image = images.iter().find(|i| i.image_id == examples[0].0).unwrap();
        let photo = photos
            .underlay(image, drawn.dimensions(), &mut resizer)
            .unwrap();
        let changed = drawn
            .pixels()
            .zip(photo.pixels())
            .filter(|(a, b)| {
                (0..3)
                    .map(|c| (a[c] as i32 - b[c] as i32).abs())
                    .sum::<i32>()
                    > 60
            })
            .count();
        assert!(
            changed * 200 > drawn.pixels().len(),
            "channel {channel}: only {changed} pixels differ from the photo"
        );
    }
}

#[test]
fn the_contour_channels_overlay_leaves_the_photo_where_it_is_silent() {
    let (_, out) = demo_report();
    let run = layerwise::view::read::StoredRun::open(out).unwrap();
    let query = layerwise::view::read::MapQuery {
        layer: "block1_conv1".into(),
        channels: Some([11].into()),
        images: Some([19].into()),
    };
    let map = run.maps(&query).unwrap().remove(0);
    let images = run.images().unwrap();
    let image = images.iter().find(|i| i.image_id == 19).unwrap();
    let photos = layerwise::view::photos::Photos::read(&run, [image]);
    let size = layerwise::report::figures::picture_size(Some(&map));
    let photo = photos
        .underlay(image, size, &mut fast_image_resize::Resizer::new())
        .unwrap();
    let values = map.values.clone();
    let drawn = layerwise::report::figures::draw(Some(&map), Some(&photo)).unwrap();
    assert_eq!(
        drawn.dimensions(),
        (224, 224),
        "224 x 224 maps are drawn 1:1"
    );
    let mut sorted: Vec<f32> = values.clone();
    sorted.sort_by(f32::total_cmp);
    let high = sorted[sorted.len() * 98 / 100];
    let (mut silent, mut firing) = (0, 0);
    for (i, v) in values.iter().enumerate() {
        let (x, y) = ((i % 224) as u32, (i / 224) as u32);
        let (got, under) = (drawn.get_pixel(x, y), photo.get_pixel(x, y));
        if *v == 0.0 {
            assert_eq!(got, under, "({x}, {y}): silent, the photo as it is");
            silent += 1;
        } else if *v >= high {
            let moved: i32 = (0..3)
                .map(|c| (got[c] as i32 - under[c] as i32).abs())
                .sum();
            assert!(
                moved > 30,
                "({x}, {y}): {v} of a top of {high}: {got:?} over {under:?}"
            );
            firing += 1;
        }
    }
    assert!(
        silent > 20_000 && firing > 1_000,
        "{silent} silent, {firing} firing"
    );
}

#[test]
fn recomputed_maps_equal_the_stored_ones() {
    let (_, out) = demo_report();
    let run = layerwise::view::read::StoredRun::open(out).unwrap();
    let images = run.images().unwrap();
    let by_id: std::collections::HashMap<u64, &layerwise::view::read::StoredImage> = images
        .iter()
        .filter(|i| i.ok)
        .map(|i| (i.image_id, i))
        .collect();
    let ids: Vec<u64> = by_id.keys().copied().filter(|id| id % 5 == 0).collect();
    let wanted: Vec<(u64, u32)> = ids
        .iter()
        .flat_map(|&id| KEPT.iter().map(move |&c| (id, c)))
        .collect();
    let recomputed =
        layerwise::view::recompute::maps(&run, "block1_conv1", &wanted, &by_id, 256).unwrap();
    assert_eq!(recomputed.len(), wanted.len());
    let query = layerwise::view::read::MapQuery {
        layer: "block1_conv1".into(),
        channels: Some(KEPT.into()),
        images: Some(ids.iter().copied().collect()),
    };
    let stored = run.maps(&query).unwrap();
    assert_eq!(stored.len(), wanted.len());
    for m in stored {
        let again = &recomputed[&(m.image_id, m.channel)];
        assert_eq!((again.height, again.width), (m.height, m.width));
        assert_close(
            &again.values,
            &m.values,
            &format!("image {} channel {}", m.image_id, m.channel),
        );
    }
}

#[test]
fn plot_top_of_a_vector_layer_says_it_has_no_maps() {
    let (_, out) = demo_report();
    let failed = layerwise()
        .args(["plot", "top", "--run"])
        .arg(out)
        .args(["--layer", "predictions", "--channel", "0"])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed));
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr).trim_end(),
        "error: `predictions` is a vector of 2 values: it has no maps to draw; `plot top` draws \
         the channels of a layer with maps"
    );
}

#[test]
fn the_demo_report_opens_in_a_browser() {
    let (_, out) = demo_report();
    let shots = root().join("target/report-shots");
    let pages = [
        "index.html",
        "layer-1.html",
        "layer-1/channel-164.html",
        "layer-0.html",
        "layer-0/channel-11.html",
    ];
    let checked = browser(&out.join("report"), &shots, &pages);
    let layer_ms = checked[1]["load_ms"].as_f64().unwrap();
    eprintln!("the 512-channel layer page loaded in {layer_ms} ms");
    assert_eq!(checked.len(), 5);
    assert_eq!(
        checked[0]["images"], 1,
        "the index's matrix of the layers' CKA"
    );
    assert_eq!(
        checked[3]["images"],
        64 + 2,
        "every tile and both study figures"
    );
    assert_eq!(checked[4]["images"], 8);
    assert_eq!(checked[1]["sorted_rows"], 512, "the layer table sorts");
    assert_eq!(
        checked[1]["images"].as_u64().unwrap(),
        512 + 2,
        "tiles and the two study figures"
    );
    assert_eq!(checked[2]["images"], 8);
}

#[test]
fn report_errors_say_what_to_do() {
    let (_, out) = demo_report();
    let failed = |args: &[&str]| {
        let o = layerwise().arg("report").args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        text(&o)
    };
    let msg = failed(&[out.to_str().unwrap(), "--layers", "block9"]);
    assert!(
        msg.contains(
            "the run has no layer `block9`; its layers are block1_conv1, block5_conv3, predictions"
        ),
        "{msg}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let msg = failed(&[out.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]);
    assert!(
        msg.contains("exists and is not a layerwise report; give another --out, or remove it"),
        "{msg}"
    );
    assert!(
        dir.path().join("notes.txt").exists(),
        "nothing of the user's is removed"
    );
    let msg = failed(&[dir.path().to_str().unwrap()]);
    assert!(
        msg.contains("is not a layerwise run: it has no run.json and no committed part yet"),
        "{msg}"
    );
}

#[test]
fn a_second_report_replaces_the_first_and_leaves_no_staging() {
    let dir = tempfile::tempdir().unwrap();
    let out = plain_run(dir.path(), &[("a.png", 20, 16)], 1000);
    let first = report(&out, &["--top", "1"]);
    std::fs::write(first.parent().unwrap().join("stale.txt"), "old").unwrap();
    let second = report(&out, &["--top", "1", "--layers", "conv"]);
    assert_eq!(first, second);
    assert!(!second.parent().unwrap().join("stale.txt").exists());
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");
}

#[test]
fn an_image_path_out_of_the_input_folder_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let out = plain_run(dir.path(), &[("a.png", 12, 10), ("b.png", 14, 9)], 1000);
    write_images(dir.path(), &[("outside.png", 12, 10)]);
    // The images table edited to send a.png's row out of the input folder.
    let images = part_files(&out, "images").remove(0);
    let table = images.display().to_string();
    duckdb(&format!(
        "COPY (SELECT * REPLACE (CASE WHEN path = 'a.png' THEN '../outside.png' ELSE path END \
         AS path) FROM read_parquet('{table}')) TO '{table}.edited' (FORMAT parquet)"
    ));
    std::fs::rename(format!("{table}.edited"), &images).unwrap();
    let output = layerwise()
        .args([
            "plot",
            "top",
            "--layer",
            "conv",
            "--channel",
            "1",
            "--k",
            "2",
            "--run",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let logged = String::from_utf8(output.stderr).unwrap();
    assert!(
        logged.contains(
            "../outside.png: not a path inside the run's input folder; drawing its map alone"
        ),
        "{logged}"
    );
    assert!(!logged.contains("b.png"), "b.png is drawn: {logged}");
}

/// A run over the tiny model with labels (folders `a` and `b`), a file in error, kept maps,
/// `top_k` and a vector layer, in `part_size` 3 parts; its output folder.
fn labelled_run(dir: &Path) -> PathBuf {
    write_images(
        &dir.join("images"),
        &[
            ("a/0.png", 20, 16),
            ("a/1.jpg", 24, 24),
            ("b/2.png", 16, 30),
            ("b/3.png", 18, 18),
        ],
    );
    std::fs::write(dir.join("images/b/broken.png"), b"not a png").unwrap();
    let config = tiny_config_with_layers(
        dir,
        "rewritten",
        "[run]\npart_size = 3\n[[layers]]\nname = \"conv\"\ntensor = \"conv1\"\nkeep = [1, 2]\n\
         top_k = 2\n[[layers]]\nname = \"logits\"\ntensor = \"logits\"\n",
    );
    run_quietly(&config).unwrap();
    dir.join("out")
}

/// Rewrites every part file of every table of `out` with `writer` (Polars, DuckDB or pandas),
/// reading it and writing it back in its place, as a user who filtered a table would.
fn rewrite_tables(out: &Path, writer: &str) {
    let script = r#"
import glob, os, sys
out, writer = sys.argv[1], sys.argv[2]
for f in sorted(glob.glob(os.path.join(out, "*", "part-*.parquet"))):
    if writer == "polars":
        import polars as pl
        pl.read_parquet(f).write_parquet(f)
    elif writer == "duckdb":
        import duckdb
        duckdb.sql(f"COPY (SELECT * FROM read_parquet('{f}')) TO '{f}.new' (FORMAT parquet)")
        os.replace(f + ".new", f)
    elif writer == "pandas":
        import pandas as pd
        pd.read_parquet(f).to_parquet(f)
# Every file is closed. Leave without the interpreter's teardown, where pyarrow's thread pool
# can abort the process ("terminate called without an active exception") on a loaded machine.
os._exit(0)
"#;
    succeeded(
        Command::new(python())
            .args(["-c", script])
            .arg(out)
            .arg(writer),
    );
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(dir).unwrap().to_owned(),
                std::fs::read(&f).unwrap(),
            )
        })
        .collect()
}

/// The report, three `plot` figures and `status` of the run in `out`, under `into`.
fn views(out: &Path, into: &Path) -> (std::collections::BTreeMap<PathBuf, Vec<u8>>, String) {
    report(out, &["--out", into.join("report").to_str().unwrap()]);
    for (figure, args) in [
        ("channels", &["--layer", "conv", "--image", "0"][..]),
        (
            "images",
            &["--layer", "conv", "--channel", "1", "--images", "label=b"],
        ),
        ("top", &["--layer", "conv", "--channel", "2", "--k", "3"]),
    ] {
        let png = into.join(format!("plots/{figure}.png"));
        succeeded(
            layerwise()
                .args(["plot", figure, "--run"])
                .arg(out)
                .args(args)
                .arg("--png")
                .arg(&png),
        );
    }
    let status = succeeded(layerwise().arg("status").arg(out));
    (files(into), status)
}

#[test]
fn tables_written_back_by_polars_duckdb_and_pandas_give_the_same_pages_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = labelled_run(dir.path());
    let pristine = dir.path().join("pristine");
    std::fs::create_dir(&pristine).unwrap();
    for table in ["images", "stats", "maps", "vectors", "top"] {
        copy_tree(&out.join(table), &pristine.join(table));
    }
    let (want, want_status) = views(&out, &dir.path().join("views-layerwise"));
    assert!(want.len() > 10, "{:?}", want.keys());
    for writer in ["polars", "duckdb", "pandas"] {
        for table in ["images", "stats", "maps", "vectors", "top"] {
            copy_tree(&pristine.join(table), &out.join(table));
        }
        rewrite_tables(&out, writer);
        let (got, status) = views(&out, &dir.path().join(format!("views-{writer}")));
        assert_eq!(status, want_status, "{writer}: status");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{writer}: the files written"
        );
        for (name, bytes) in &want {
            assert!(&got[name] == bytes, "{writer}: {} differs", name.display());
        }
    }
}

#[test]
fn a_column_dropped_or_of_a_wrong_type_is_named_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = labelled_run(dir.path());
    let stats = part_files(&out, "stats").remove(0).display().to_string();
    let original = std::fs::read(&stats).unwrap();
    for (select, says) in [
        (
            "* EXCLUDE (max)",
            "the `stats` table's column `max` is missing",
        ),
        (
            "* REPLACE (channel::VARCHAR AS channel)",
            "the `stats` table's column `channel` is of type Utf8, which cannot hold UInt32 values",
        ),
        (
            "* REPLACE (channel::BIGINT - 1 AS channel)",
            "the `stats` table's column `channel` is of type Int64 and holds -1, which does not \
             fit UInt32",
        ),
    ] {
        std::fs::write(&stats, &original).unwrap();
        duckdb(&format!(
            "COPY (SELECT {select} FROM read_parquet('{stats}')) TO '{stats}.new' (FORMAT parquet)"
        ));
        std::fs::rename(format!("{stats}.new"), &stats).unwrap();
        let done = layerwise().arg("report").arg(&out).output().unwrap();
        assert_eq!(done.status.code(), Some(2), "{}", text(&done));
        assert!(
            text(&done).contains(&format!("{stats}: {says}")),
            "{}",
            text(&done)
        );
        assert!(!text(&done).contains("panicked"), "{}", text(&done));
    }
}
