//! The pages of a report: the index, one page per layer and one per channel. Every string that
//! comes from the data is escaped here; file names are built from indices only.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::output::provenance::LayerInfo;
use crate::reduce::LayerKind;
use crate::report::figures::{sheet_position, Example, Source};
use crate::report::html::{self, escape, number, sql, Column, Td};
use crate::report::summary::{ChannelSummary, Labels};
use crate::view::read::{StoredImage, StoredRun};

/// At most this many failed images are listed on the index (the query lists them all).
pub const FAILURES_SHOWN: usize = 1000;

/// A layer as its pages show it.
pub struct LayerView<'a> {
    /// Its position in the run's layers (its pages are `layer-{index}...`).
    pub index: usize,
    /// What `run.json` says of it.
    pub layer: &'a LayerInfo,
    /// Per channel, its numbers.
    pub channels: &'a [ChannelSummary],
    /// Per channel, its best examples.
    pub examples: &'a [Vec<Example>],
    /// Per channel and example, whether its picture was drawn.
    pub drawn: &'a [Vec<bool>],
    /// Where the examples come from.
    pub source: Source,
    /// The classic study's figures that were drawn.
    pub study: &'a Study,
}

/// The classic study's figures of a layer page.
#[derive(Debug, Clone, Default)]
pub struct Study {
    /// Whether the first image's stored maps were drawn (`study-image.png`).
    pub one_image: bool,
    /// The channel drawn across the first images (`study-channel.png`), if it was.
    pub channel: Option<StudyChannel>,
}

/// The channel of a layer page's "one channel across images" figure.
#[derive(Debug, Clone)]
pub struct StudyChannel {
    /// The channel.
    pub channel: u32,
    /// Why this one, as the page says it (HTML).
    pub why: String,
    /// Whether its maps were computed again (the run did not keep them).
    pub recomputed: bool,
}

impl LayerView<'_> {
    /// The layer page's file name.
    pub fn page(&self) -> String {
        format!("layer-{}.html", self.index)
    }

    /// The folder of its channel pages and pictures.
    pub fn folder(&self) -> String {
        format!("layer-{}", self.index)
    }
}

/// What every page needs to know of the run.
pub struct Site<'a> {
    /// The run.
    pub run: &'a StoredRun,
    /// Its images, by id.
    pub images: &'a HashMap<u64, &'a StoredImage>,
    /// Its labels.
    pub labels: &'a Labels,
    /// The run folder as queries name it.
    pub run_dir: String,
}

impl Site<'_> {
    /// A table of the run, for a query: `read_parquet('RUN/TABLE/*.parquet')`.
    fn table(&self, name: &str) -> String {
        format!(
            "read_parquet({})",
            sql(&format!("{}/{name}/*.parquet", self.run_dir))
        )
    }

    /// The query naming a layer's per-image, per-channel numbers `obs(image_id, channel, mean,
    /// max, frac_positive)`, from `stats` or, for a vector layer, from `vectors`.
    fn observations(&self, layer: &LayerInfo) -> String {
        let name = sql(&layer.name);
        if layer.kind == LayerKind::Vector {
            format!(
                "WITH v AS (SELECT image_id, generate_subscripts(\"values\", 1) - 1 AS channel, \
                 unnest(\"values\") AS value FROM {} WHERE layer = {name}),\n\
                 obs AS (SELECT image_id, channel, value AS mean, value AS max, \
                 (value > 0)::INT AS frac_positive FROM v)\n",
                self.table("vectors")
            )
        } else {
            format!(
                "WITH obs AS (SELECT image_id, channel, mean, max, frac_positive FROM {} \
                 WHERE layer = {name})\n",
                self.table("stats")
            )
        }
    }

    fn caption(&self, image_id: u64) -> String {
        match self.images.get(&image_id) {
            Some(image) => {
                let label = image.label.as_deref().map_or(String::new(), |l| {
                    format!("<br>label: <span class=\"label\">{}</span>", escape(l))
                });
                format!(
                    "image {image_id}: <span class=\"path\">{}</span>{label}",
                    escape(&image.path)
                )
            }
            None => format!("image {image_id}"),
        }
    }
}

/// A similarity matrix drawn into the site: its picture and what it compares.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The picture's file in the site.
    pub file: String,
    /// What was compared.
    pub record: crate::compare::Record,
    /// The picture's width and height.
    pub size: (u32, u32),
}

/// The index page: the run, its images and failures, its layers and how they relate (the
/// within-run matrix, or why there is none, then a comparison's when one is given).
pub fn index(site: &Site, layers: &[LayerView], matrices: &[Result<Matrix, String>]) -> String {
    let run = site.run;
    let facts = &run.facts;
    let images: Vec<&&StoredImage> = {
        let mut all: Vec<&&StoredImage> = site.images.values().collect();
        all.sort_by_key(|i| i.image_id);
        all
    };
    let ok = images.iter().filter(|i| i.ok).count();
    let failed: Vec<&&StoredImage> = images.iter().filter(|i| !i.ok).copied().collect();
    let status = if facts.complete {
        "complete".to_owned()
    } else {
        format!(
            "partial: {} of {} parts committed",
            facts.parts.0, facts.parts.1
        )
    };
    let speed = facts.timings.as_ref().map(|t| {
        format!(
            "{} images/s ({} s)",
            number(Some(t.images_per_s)),
            number(Some(t.run_s))
        )
    });
    let rows = [
        ("run folder", escape(&site.run_dir)),
        ("status", escape(&status)),
        ("model", escape(&facts.model.path)),
        (
            "model SHA-256",
            format!("<code>{}</code>", escape(&facts.model.sha256)),
        ),
        (
            "ONNX Runtime",
            format!(
                "{} ({})",
                escape(&facts.onnxruntime.version),
                escape(&facts.onnxruntime.library)
            ),
        ),
        ("written by", escape(&facts.tool)),
        ("started", escape(&facts.started_at)),
        (
            "images",
            format!(
                "<span id=\"images-total\">{}</span>: <span id=\"images-ok\">{ok}</span> ok, \
                 <span id=\"images-error\">{}</span> in error",
                images.len(),
                failed.len()
            ),
        ),
        (
            "throughput",
            speed.unwrap_or_else(|| "- (the run is not complete)".into()),
        ),
        ("labels", escape(&site.labels.names.join(", "))),
    ];
    let mut body = format!("<h1>{}</h1>\n<dl class=\"facts\">\n", escape(&facts.name));
    for (term, value) in rows {
        let _ = writeln!(body, "<dt>{term}</dt><dd>{value}</dd>");
    }
    body.push_str("</dl>\n<h2>Layers</h2>\n");
    body.push_str(&html::table(
        "layers",
        &[
            Column::text("layer"),
            Column::text("kind"),
            Column::text("shape"),
            Column::number("channels"),
            Column::number("kept maps"),
        ],
        layers.iter().map(|l| {
            vec![
                Td::html(format!(
                    "<a href=\"{}\">{}</a>",
                    l.page(),
                    escape(&l.layer.name)
                )),
                Td::html(escape(l.layer.kind.name())),
                Td::html(escape(&l.layer.describe())),
                Td::count(l.layer.channels as u64),
                Td::count(l.layer.kept.len() as u64),
            ]
        }),
    ));
    for (i, matrix) in matrices.iter().enumerate() {
        body.push_str(&similarity(matrix, i > 0));
    }
    body.push_str(&failures(site, &failed));
    html::page(&facts.name, "", "layerwise report", &body)
}

/// A section with a similarity matrix: the run's own, or a comparison's.
fn similarity(matrix: &Result<Matrix, String>, comparison: bool) -> String {
    let heading = match comparison {
        false => "How the layers relate".to_owned(),
        true => match matrix {
            Ok(m) => format!("Comparison: {}", escape(&m.record.runs.join(" with "))),
            Err(_) => "Comparison".to_owned(),
        },
    };
    let mut out = format!(
        "<h2 id=\"{}\">{heading}</h2>\n",
        match comparison {
            false => "similarity",
            true => "comparison",
        }
    );
    let m = match matrix {
        Ok(m) => m,
        Err(why) => {
            let _ = writeln!(out, "<p class=\"note\">No matrix: {}</p>", escape(why));
            return out;
        }
    };
    let record = &m.record;
    let features = crate::compare::features::Features::parse(&record.features)
        .map_or("features", |f| f.describe());
    let left = &record.left_out;
    let matched = match record.runs.len() {
        1 => String::new(),
        _ => format!(
            " matched by source and path ({} only in the first run, {} only in the second, {} \
             failed in either)",
            left.only_a, left.only_b, left.failed
        ),
    };
    let made = match comparison {
        false => "computed for this page from the stats table; <code>layerwise compare</code> \
                  writes it as <code>similarity.parquet</code>"
            .to_owned(),
        true => "written by <code>layerwise compare</code>".to_owned(),
    };
    let _ = writeln!(
        out,
        "<figure class=\"study\"><img src=\"{}\" width=\"{}\" height=\"{}\" alt=\"linear CKA \
         of every pair of layers\"><figcaption>Linear CKA (standard, then debiased) of every \
         pair of layers over {} images{matched}, each layer standing as {} ({made}). 1: the \
         same representation up to a rotation and a scale; 0: unrelated.</figcaption></figure>",
        escape(&m.file),
        m.size.0,
        m.size.1,
        record.images,
        escape(features),
    );
    out
}

fn failures(site: &Site, failed: &[&&StoredImage]) -> String {
    let mut out = format!("<h2>Images in error ({})</h2>\n", failed.len());
    if failed.is_empty() {
        out.push_str("<p class=\"note\">Every image went through the model.</p>\n");
        return out;
    }
    if failed.len() > FAILURES_SHOWN {
        let _ = writeln!(
            out,
            "<p class=\"note\">The first {FAILURES_SHOWN} are listed; the query lists them all.</p>"
        );
    }
    out.push_str(&html::table(
        "failures",
        &[
            Column::number("image_id"),
            Column::text("path"),
            Column::text("reason"),
        ],
        failed.iter().take(FAILURES_SHOWN).map(|i| {
            vec![
                Td::count(i.image_id),
                Td::html(format!("<span class=\"path\">{}</span>", escape(&i.path))),
                Td::html(format!(
                    "<span class=\"error\">{}</span>",
                    escape(i.error.as_deref().unwrap_or(""))
                )),
            ]
        }),
    ));
    out.push_str(&html::query(&format!(
        "SELECT image_id, path, error FROM {} WHERE status <> 'ok' ORDER BY image_id",
        site.table("images")
    )));
    out
}

/// A layer page: its channels as tiles, the sortable table of their numbers, and the classic
/// study's figures.
pub fn layer(site: &Site, view: &LayerView) -> String {
    let l = view.layer;
    let folder = view.folder();
    let mut body = format!(
        "<h1>{}</h1>\n<p>{}; maps stored for {} channels; examples from {}.{}</p>\n",
        escape(&l.name),
        escape(&l.describe()),
        l.kept.len(),
        source_text(view),
        recomputed_text(view)
    );
    body.push_str("<h2>Channels</h2>\n<div class=\"tiles\">\n");
    for (at, (c, (examples, drawn))) in view
        .channels
        .iter()
        .zip(view.examples.iter().zip(view.drawn))
        .enumerate()
    {
        let score = examples.first().map(|e| f64::from(e.score));
        let picture = if drawn.first() == Some(&true) {
            let (x, y) = sheet_position(at);
            format!(
                "<img src=\"{folder}/tiles.jpg\" alt=\"channel {ch}\" \
                 style=\"object-position: -{x}px -{y}px\">",
                ch = c.channel
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            body,
            "<a href=\"{folder}/channel-{ch}.html\">{picture}<span>{ch}: {}</span></a>",
            number(score),
            ch = c.channel
        );
    }
    body.push_str("</div>\n<h2>Channel table</h2>\n");
    body.push_str(&channel_table(site, view));
    body.push_str(&study(view));
    let crumbs = format!(
        "<a href=\"index.html\">{}</a> / {}",
        escape(&site.run.facts.name),
        escape(&l.name)
    );
    html::page(
        &format!("{} - {}", l.name, site.run.facts.name),
        "",
        &crumbs,
        &body,
    )
}

/// What the page says of the maps the report computed again, if any.
fn recomputed_text(view: &LayerView) -> String {
    let (recomputed, images): (usize, BTreeSet<u64>) = view
        .examples
        .iter()
        .flatten()
        .filter(|e| e.recomputed)
        .fold((0, BTreeSet::new()), |(n, mut ids), e| {
            ids.insert(e.image_id);
            (n + 1, ids)
        });
    if recomputed == 0 {
        return String::new();
    }
    format!(
        " The run did not keep the maps of {recomputed} examples: the report computed them \
         again, running their {} images through the run's model (at most {} per layer).",
        images.len(),
        crate::view::recompute::MAX_IMAGES
    )
}

fn source_text(view: &LayerView) -> &'static str {
    match (view.source, view.layer.kind) {
        (_, LayerKind::Vector) => "<code>vectors</code>, ranked by each image's value",
        (Source::Top, _) => "the <code>top</code> table (score as the layer's <code>top_by</code>)",
        (Source::Stats, _) => "<code>stats</code>, ranked by each image's max",
    }
}

/// Up to this many labels, the layer table has a column of means per label; above it (an
/// ImageNet model's 1,000 classes would make a page 1,000 columns wide), it names each
/// channel's top label (the one with the highest mean) and that mean, and the channel pages
/// keep every label's mean.
pub const LABEL_COLUMNS: usize = 12;

/// The label with the highest mean (the first of equal ones), and that mean.
fn top_label<'a>(names: &'a [String], means: &[Option<f64>]) -> Option<(&'a str, f64)> {
    names
        .iter()
        .zip(means)
        .filter_map(|(name, mean)| Some((name.as_str(), (*mean)?)))
        .fold(None, |best: Option<(&str, f64)>, (name, mean)| match best {
            Some((_, m)) if m >= mean => best,
            _ => Some((name, mean)),
        })
}

fn channel_table(site: &Site, view: &LayerView) -> String {
    let labels = &site.labels.names;
    let wide = labels.len() > LABEL_COLUMNS;
    let mut columns = vec![
        Column::number("channel"),
        Column::number("images"),
        Column::number("mean"),
        Column::number("mean max"),
        Column::number("peak"),
        Column::number("frac > 0"),
    ];
    if wide {
        columns.push(Column::text("top label"));
        columns.push(Column::number("mean: top label"));
    } else {
        columns.extend(labels.iter().map(|l| Column::number(&format!("mean: {l}"))));
    }
    if labels.len() >= 2 {
        columns.push(Column::number("selectivity"));
    }
    let folder = view.folder();
    let rows = view.channels.iter().map(|c| {
        let mut row = vec![
            Td {
                html: format!("<a href=\"{folder}/channel-{0}.html\">{0}</a>", c.channel),
                value: Some(f64::from(c.channel)),
            },
            Td::count(c.images),
            Td::number(Some(c.mean)),
            Td::number(Some(c.mean_max)),
            Td::number(Some(f64::from(c.peak))),
            Td::number(Some(c.frac_positive)),
        ];
        if wide {
            let top = top_label(labels, &c.label_means);
            row.push(Td::html(top.map_or(String::new(), |(name, _)| {
                format!("<span class=\"label\">{}</span>", escape(name))
            })));
            row.push(Td::number(top.map(|(_, mean)| mean)));
        } else {
            row.extend(c.label_means.iter().map(|m| Td::number(*m)));
        }
        if labels.len() >= 2 {
            row.push(Td::number(c.selectivity));
        }
        row
    });
    let mut out = html::table("channels", &columns, rows);
    out.push_str(
        "<p class=\"note\">Click a heading to sort. Selectivity: (mu_max - mu_rest) / \
        (mu_max + mu_rest) over the label means of the channel's mean (Morcos et al., 2018); it \
        reads as intended for non-negative activations.</p>\n",
    );
    if wide {
        out.push_str(&format!(
            "<p class=\"note\">With {} labels (more than {LABEL_COLUMNS}), each channel shows its \
             top label, the one whose images it responds to most on average; its page lists the \
             mean of every label.</p>\n",
            labels.len()
        ));
    }
    let obs = site.observations(view.layer);
    out.push_str(&html::query(&format!(
        "{obs}SELECT channel, count(*) AS images, avg(mean) AS mean, avg(max) AS mean_max, \
         max(max) AS peak, avg(frac_positive) AS frac_positive\nFROM obs GROUP BY channel ORDER BY channel"
    )));
    if !labels.is_empty() {
        let per_label = format!(
            "SELECT channel, label, avg(mean) AS mean\nFROM obs JOIN {} USING (image_id) \
             WHERE label IS NOT NULL GROUP BY ALL",
            site.table("images")
        );
        out.push_str(&html::query(&if wide {
            format!(
                "{obs}SELECT channel, arg_max(label, mean) AS top_label, max(mean) AS mean\n\
                 FROM ({per_label}) GROUP BY channel ORDER BY channel"
            )
        } else {
            format!("{obs}{per_label} ORDER BY ALL")
        }));
    }
    out
}

fn study(view: &LayerView) -> String {
    let folder = view.folder();
    let mut out = String::from("<h2>The classic study</h2>\n");
    let study = view.study;
    if !study.one_image && study.channel.is_none() {
        out.push_str(
            "<p class=\"note\">No maps of this layer could be drawn; add <code>keep</code> \
            to the layer to store them.</p>\n",
        );
        return out;
    }
    if study.one_image {
        let _ = writeln!(
            out,
            "<figure class=\"study\"><img src=\"{folder}/study-image.png\" alt=\"stored maps of one image\">\
             <figcaption>The stored maps of the first image of the run, one per kept channel.</figcaption></figure>"
        );
    }
    if let Some(c) = &study.channel {
        let recomputed = match c.recomputed {
            true => " The run did not keep its maps: the report computed them again.",
            false => "",
        };
        let _ = writeln!(
            out,
            "<figure class=\"study\"><img src=\"{folder}/study-channel.png\" alt=\"channel {ch} across images\">\
             <figcaption>Channel {ch} across the first images of the run: {}.{recomputed}</figcaption></figure>",
            c.why,
            ch = c.channel
        );
    }
    out
}

/// A channel page: its examples, its histograms and its per-label means, each with the query
/// that reproduces it.
pub fn channel(site: &Site, view: &LayerView, at: usize) -> String {
    let (l, c) = (view.layer, &view.channels[at]);
    let mut body = format!("<h1>{} / channel {}</h1>\n", escape(&l.name), c.channel);
    body.push_str(&neighbours(view, at));
    body.push_str(&examples(site, view, at));
    let obs = site.observations(l);
    for (what, h, column) in [
        ("per-image max", &c.max_histogram, "max"),
        ("per-image mean", &c.mean_histogram, "mean"),
    ] {
        let _ = writeln!(body, "<h2>Histogram of the {what}</h2>");
        body.push_str(&html::histogram(
            h,
            &format!("histogram of the {what}"),
            &format!("{what} of the channel's map"),
        ));
        body.push_str(&html::query(&format!(
            "{obs}SELECT least(floor(({column}::DOUBLE - {lo}::DOUBLE) / ({hi}::DOUBLE - {lo}::DOUBLE) \
             * {bins}), {last}) AS bar, count(*) AS images\nFROM obs WHERE channel = {ch} \
             GROUP BY bar ORDER BY bar",
            lo = f64::from(h.lo),
            hi = f64::from(h.hi),
            bins = h.counts.len(),
            last = h.counts.len() - 1,
            ch = c.channel
        )));
    }
    body.push_str(&label_means(site, view, at));
    let crumbs = format!(
        "<a href=\"../index.html\">{}</a> / <a href=\"../{}\">{}</a> / channel {}",
        escape(&site.run.facts.name),
        view.page(),
        escape(&l.name),
        c.channel
    );
    html::page(
        &format!("{} channel {}", l.name, c.channel),
        "../",
        &crumbs,
        &body,
    )
}

fn neighbours(view: &LayerView, at: usize) -> String {
    let link = |i: usize, text: &str| {
        format!(
            "<a href=\"channel-{}.html\">{text}</a>",
            view.channels[i].channel
        )
    };
    let mut parts = Vec::new();
    if at > 0 {
        parts.push(link(at - 1, "previous channel"));
    }
    if at + 1 < view.channels.len() {
        parts.push(link(at + 1, "next channel"));
    }
    format!("<p>{}</p>\n", parts.join(" | "))
}

fn examples(site: &Site, view: &LayerView, at: usize) -> String {
    let c = &view.channels[at];
    let mut out = format!(
        "<h2>Top {} dataset examples</h2>\n<p class=\"note\">From {}; each map is drawn over its \
         input image where the image can be read, an image without a stored map alone.</p>\n<div class=\"examples\">\n",
        view.examples[at].len(),
        source_text(view)
    );
    for (rank, (e, drawn)) in view.examples[at].iter().zip(&view.drawn[at]).enumerate() {
        let picture = if *drawn {
            format!(
                "<img src=\"c{}-{rank}.jpg\" alt=\"example {}\">",
                c.channel,
                rank + 1
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<figure class=\"example\" data-image=\"{}\" data-score=\"{:e}\">{picture}\
             <figcaption>#{}, score <span class=\"score\">{}</span><br>{}{}</figcaption></figure>",
            e.image_id,
            e.score,
            rank + 1,
            number(Some(f64::from(e.score))),
            site.caption(e.image_id),
            if e.recomputed {
                "<br><span class=\"recomputed\">map recomputed by the report (not kept by the run)</span>"
            } else {
                ""
            }
        );
    }
    out.push_str("</div>\n");
    let k = view.examples[at].len().max(1);
    let query = match view.source {
        Source::Top => format!(
            "SELECT image_id, score FROM {} WHERE layer = {} AND channel = {}\nORDER BY score DESC, image_id LIMIT {k}",
            site.table("top"),
            sql(&view.layer.name),
            c.channel
        ),
        Source::Stats => format!(
            "{}SELECT image_id, max AS score FROM obs WHERE channel = {}\nORDER BY max DESC, image_id LIMIT {k}",
            site.observations(view.layer),
            c.channel
        ),
    };
    out.push_str(&html::query(&query));
    out
}

fn label_means(site: &Site, view: &LayerView, at: usize) -> String {
    let c = &view.channels[at];
    let names = &site.labels.names;
    if names.is_empty() {
        return "<p class=\"note\">The images have no labels.</p>\n".to_owned();
    }
    let mut out = String::from("<h2>Mean per label</h2>\n");
    out.push_str(&html::table(
        "label-means",
        &[Column::text("label"), Column::number("mean")],
        names.iter().zip(&c.label_means).map(|(name, mean)| {
            vec![
                Td::html(format!("<span class=\"label\">{}</span>", escape(name))),
                Td::number(*mean),
            ]
        }),
    ));
    if names.len() >= 2 {
        let _ = writeln!(
            out,
            "<p>Class selectivity index: <span id=\"selectivity\">{}</span></p>",
            number(c.selectivity)
        );
    }
    out.push_str(&html::query(&format!(
        "{}SELECT label, avg(mean) AS mean\nFROM obs JOIN {} USING (image_id) WHERE channel = {} \
         AND label IS NOT NULL GROUP BY label ORDER BY label",
        site.observations(view.layer),
        site.table("images"),
        c.channel
    )));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_label_is_the_first_highest_mean() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(
            top_label(&names, &[Some(1.0), None, Some(3.0), Some(3.0)]),
            Some(("c", 3.0))
        );
        assert_eq!(top_label(&names, &[None, None, None, None]), None);
        assert_eq!(
            top_label(&names, &[Some(-2.0), Some(-1.0), None, None]),
            Some(("b", -1.0))
        );
    }
}
