//! Progress: a bar on a terminal, periodic log lines otherwise (cluster logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Reports how many images are done.
pub struct Progress {
    /// The images to do, when known before reading (not for shards).
    total: Option<u64>,
    done: u64,
    started: Instant,
    display: Display,
}

enum Display {
    Bar(ProgressBar),
    Log { last: Instant },
    Quiet,
}

impl Progress {
    /// A bar when stderr is a terminal, log lines when it is not; nothing when `quiet`.
    /// Without a `total` (shards, whose samples are counted as they are read) the bar and the
    /// lines give the count and the rate.
    pub fn new(total: Option<u64>, quiet: bool) -> Progress {
        let display = if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = match total {
                Some(_) => "{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}  {msg}",
                None => "{spinner} {pos} images  {per_sec}  {msg}",
            };
            bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
            Display::Bar(bar)
        } else {
            Display::Log {
                last: Instant::now(),
            }
        };
        Progress {
            total,
            done: 0,
            started: Instant::now(),
            display,
        }
    }

    /// Records `n` more images done, `errors` of them failed so far in all.
    pub fn advance(&mut self, n: u64, errors: u64) {
        self.done += n;
        match &mut self.display {
            Display::Bar(bar) => {
                bar.set_position(self.done);
                if errors > 0 {
                    bar.set_message(format!("{errors} errors"));
                }
            }
            Display::Log { last }
                if last.elapsed() >= LOG_EVERY || Some(self.done) == self.total =>
            {
                *last = Instant::now();
                tracing::info!("{}", self.line(errors));
            }
            _ => {}
        }
    }

    /// `done/total images (pct), rate, ETA`.
    fn line(&self, errors: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = self.done as f64 / secs.max(1e-9);
        let Some(total) = self.total else {
            return format!("{} images, {errors} errors, {rate:.1} images/s", self.done);
        };
        let left = total.saturating_sub(self.done) as f64 / rate.max(1e-9);
        format!(
            "{}/{} images ({:.1}%), {errors} errors, {rate:.1} images/s, ETA {}",
            self.done,
            total,
            100.0 * self.done as f64 / (total.max(1)) as f64,
            clock(left)
        )
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Display::Bar(bar) = self.display {
            bar.finish_and_clear();
        }
    }
}

/// Bytes as `512 B`, `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    let mut value = n as f64;
    let mut unit = "B";
    for next in ["KiB", "MiB", "GiB", "TiB"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    if unit == "B" {
        format!("{n} B")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// Seconds as `1h02m03s`, `2m03s` or `3s`.
fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn clock_formats() {
        assert_eq!(clock(3.2), "3s");
        assert_eq!(clock(123.0), "2m03s");
        assert_eq!(clock(3723.0), "1h02m03s");
    }

    #[test]
    fn log_line_has_count_rate_and_eta() {
        let mut p = Progress::new(Some(10), true);
        p.advance(5, 1);
        let line = p.line(1);
        assert!(
            line.starts_with("5/10 images (50.0%), 1 errors, "),
            "{line}"
        );
        assert!(line.contains(" images/s, ETA "), "{line}");
    }
}
