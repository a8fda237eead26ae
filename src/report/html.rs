//! Writing HTML safely: every string from the data goes through [`escape`] (or [`sql`] then
//! [`escape`] inside a query), and pages share one frame, one stylesheet and one script, all
//! local files.

use std::fmt::Write as _;

use crate::report::summary::{Histogram, BINS};

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references, safe as element
/// content and as a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as an SQL string literal (single quotes doubled).
pub fn sql(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A number for a table cell or caption: 4 significant digits, `-` for none.
pub fn number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v == 0.0 {
                "0".to_owned()
            } else if v.abs() >= 1e5 || v.abs() < 1e-3 {
                format!("{v:.3e}")
            } else {
                let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
                format!("{v:.digits$}")
            }
        }
        _ => "-".to_owned(),
    }
}

/// A whole page: the frame around `body`, with `root` the relative path to the report's top
/// folder (`""` or `"../"`).
pub fn page(title: &str, root: &str, breadcrumbs: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"stylesheet\" href=\"{root}assets/style.css\">\n\
         </head>\n<body>\n<nav>{breadcrumbs}</nav>\n<main>\n{body}</main>\n\
         <script src=\"{root}assets/sort.js\"></script>\n</body>\n</html>\n",
        title = escape(title),
    )
}

/// A table column: its heading, and whether the table can be sorted by it (numeric cells
/// carry their value in `data-v`).
pub struct Column {
    /// The heading (escaped here).
    pub heading: String,
    /// Sortable by number.
    pub sortable: bool,
}

impl Column {
    /// A numeric, sortable column.
    pub fn number(heading: &str) -> Column {
        Column {
            heading: heading.to_owned(),
            sortable: true,
        }
    }

    /// A column of text.
    pub fn text(heading: &str) -> Column {
        Column {
            heading: heading.to_owned(),
            sortable: false,
        }
    }
}

/// One table cell: HTML content, and the number it sorts by.
pub struct Td {
    /// Already escaped HTML.
    pub html: String,
    /// The value the column sorts by.
    pub value: Option<f64>,
}

impl Td {
    /// A cell showing `v`.
    pub fn number(v: Option<f64>) -> Td {
        Td {
            html: number(v),
            value: v,
        }
    }

    /// A cell showing a count.
    pub fn count(n: u64) -> Td {
        Td {
            html: n.to_string(),
            value: Some(n as f64),
        }
    }

    /// A cell of HTML (already escaped).
    pub fn html(html: String) -> Td {
        Td { html, value: None }
    }
}

/// A table with the `sortable` class; `id` names it for the page's script and tests.
pub fn table(id: &str, columns: &[Column], rows: impl Iterator<Item = Vec<Td>>) -> String {
    let mut out = format!(
        "<table class=\"sortable\" id=\"{}\">\n<thead><tr>",
        escape(id)
    );
    for c in columns {
        let heading = escape(&c.heading);
        if c.sortable {
            let _ = write!(out, "<th data-sort=\"number\" scope=\"col\">{heading}</th>");
        } else {
            let _ = write!(out, "<th scope=\"col\">{heading}</th>");
        }
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for td in row {
            match td.value.filter(|v| v.is_finite()) {
                Some(v) => {
                    let _ = write!(out, "<td data-v=\"{v:e}\">{}</td>", td.html);
                }
                None => {
                    let _ = write!(out, "<td>{}</td>", td.html);
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// A histogram as an inline SVG bar chart with axes (images up, `quantity` across, ticks at
/// its range's quarters), and its range and counts as text for readers and screen readers.
pub fn histogram(h: &Histogram, what: &str, quantity: &str) -> String {
    const BAR: u32 = 14;
    const LEFT: u32 = 46;
    const TOP: u32 = 8;
    const PLOT: u32 = 90;
    const BOTTOM: u32 = 36;
    let plot_w = BINS as u32 * BAR;
    let (width, height) = (LEFT + plot_w + 24, TOP + PLOT + BOTTOM);
    let base = TOP + PLOT;
    let top = h.counts.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = String::new();
    for (i, &count) in h.counts.iter().enumerate() {
        let bar = (count as f64 / top as f64 * f64::from(PLOT)).round() as u32;
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"{bar}\"><title>{count}</title></rect>",
            LEFT + i as u32 * BAR + 1,
            base - bar
        );
    }
    // Axes, with the counts' ticks on the left and the values' below.
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\"/>\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>",
        LEFT + plot_w
    );
    for count in [0, top] {
        let y = base - (count as f64 / top as f64 * f64::from(PLOT)).round() as u32;
        let _ = write!(
            svg,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{LEFT}\" y2=\"{y}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{count}</text>",
            LEFT - 4,
            LEFT - 6,
            y + 4
        );
    }
    let span = f64::from(h.hi) - f64::from(h.lo);
    for step in 0..=4u32 {
        let x = LEFT + step * plot_w / 4;
        let value = f64::from(h.lo) + span * f64::from(step) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{x}\" y1=\"{base}\" x2=\"{x}\" y2=\"{}\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            base + 4,
            base + 15,
            number(Some(value))
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text x=\"12\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {})\">images</text>",
        LEFT + plot_w / 2,
        base + 31,
        escape(quantity),
        TOP + PLOT / 2,
        TOP + PLOT / 2
    );
    let counts: Vec<String> = h.counts.iter().map(u64::to_string).collect();
    format!(
        "<svg class=\"histogram\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" aria-label=\"{label}\">{svg}</svg>\n\
         <p class=\"axis\">{lo} to {hi}, {BINS} bars: {counts}</p>\n",
        label = escape(what),
        lo = number(Some(f64::from(h.lo))),
        hi = number(Some(f64::from(h.hi))),
        counts = counts.join(" "),
    )
}

/// The DuckDB query that reproduces a figure, under it.
pub fn query(sql: &str) -> String {
    format!(
        "<details class=\"query\"><summary>DuckDB query</summary><pre><code>{}</code></pre></details>\n",
        escape(sql.trim())
    )
}

/// The report's stylesheet.
pub const STYLE: &str = include_str!("assets/style.css");
/// The report's one script: sorting tables by a column.
pub const SORT: &str = include_str!("assets/sort.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_inert() {
        let name = "<img src=x onerror=alert(1)>.jpg";
        assert_eq!(escape(name), "&lt;img src=x onerror=alert(1)&gt;.jpg");
        assert_eq!(escape("</script>\"'&"), "&lt;/script&gt;&quot;&#39;&amp;");
        assert_eq!(sql("it's"), "'it''s'");
        let page = page("</title><script>", "", "", "");
        assert!(page.contains("<title>&lt;/title&gt;&lt;script&gt;</title>"));
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(number(Some(1234.5678)), "1235");
        assert_eq!(number(Some(0.123456)), "0.1235");
        assert_eq!(number(Some(12.0)), "12.00");
        assert_eq!(number(Some(0.0)), "0");
        assert_eq!(number(Some(0.001234)), "0.001234");
        assert_eq!(number(Some(2.5e-5)), "2.500e-5");
        assert_eq!(number(None), "-");
        assert_eq!(number(Some(f64::NAN)), "-");
    }

    #[test]
    fn tables_carry_sort_values() {
        let t = table(
            "t",
            &[Column::text("a"), Column::number("b")],
            [vec![Td::html("x".into()), Td::number(Some(2.0))]].into_iter(),
        );
        assert!(t.contains("<th data-sort=\"number\" scope=\"col\">b</th>"));
        assert!(t.contains("<td>x</td><td data-v=\"2e0\">2.000</td>"));
    }
}
