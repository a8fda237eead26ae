//! The pipeline: the part loop of a run. The plan is made ready ([`crate::engine`]), the listing
//! is cut into parts, each part's batches go through the engine into a part file per table,
//! committed with its marker; the process that finds every part committed writes `run.json`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cpu;
use crate::engine::{Batcher, Prepared, StageTimes};
use crate::error::RunStop;
use crate::input;
use crate::output::dataset::{Dataset, Listed, Manifest, PartMarker};
use crate::output::encode::Encoders;
use crate::output::provenance::{self, Counts, RunRecord, Timings};
use crate::output::sink::{BackgroundPart, Sink, TableCounts};
use crate::output::store::Store;
use crate::output::tables::{Rows, Table};
use crate::plan::{ConfigSource, Overrides};
use crate::progress::Progress;
use crate::shard::Shard;

/// How a run behaves, beyond what the plan says.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replace a run already in the output folder.
    pub overwrite: bool,
    /// No progress bar or progress lines.
    pub quiet: bool,
    /// The parts this process does.
    pub shard: Shard,
    /// Where the shard came from, for the log (`--shard`, a scheduler's variables).
    pub shard_source: &'static str,
    /// When set (by a signal handler, say), the run stops after the batch in progress,
    /// drops the part in progress and returns [`RunStop::Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
    /// Counts of the images done that another thread reads while the run goes on (a binding
    /// drawing its own progress bar).
    pub watch: Option<Arc<Watch>>,
}

/// How far a run is, updated after every batch.
#[derive(Debug, Default)]
pub struct Watch {
    /// Images this process has done.
    pub done: AtomicU64,
    /// Images it has to do; 0 until known (never, for shards).
    pub total: AtomicU64,
    /// Images that failed so far.
    pub errors: AtomicU64,
}

impl RunOptions {
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// [`RunStop::TooManyErrors`] when more of the run's images failed than its config's
/// `[run] max_error_fraction` allows.
pub fn check_error_fraction(record: &RunRecord) -> Result<(), RunStop> {
    let max = record.provenance.config.run.max_error_fraction;
    let c = &record.counts;
    let images = c.ok + c.error;
    if images > 0 && c.error as f64 > max * images as f64 {
        return Err(RunStop::TooManyErrors {
            error: c.error,
            images,
            max,
        });
    }
    Ok(())
}

/// Runs this shard's uncommitted parts of a config and returns the state of the whole run;
/// the process that finds every part committed writes `run.json`.
pub fn run(config: &Path, overrides: &Overrides, options: RunOptions) -> Result<RunRecord> {
    run_source(&config.into(), overrides, options)
}

/// [`run`] for a config from anywhere.
pub fn run_source(
    source: &ConfigSource,
    overrides: &Overrides,
    options: RunOptions,
) -> Result<RunRecord> {
    let started = Instant::now();
    let config = source.path();
    let prepared = Prepared::load_source(source, overrides)?;
    // Logged once the config and model are known good, so that a mistake is the first line.
    match options.shard_source {
        "" => tracing::info!("shard {}", options.shard),
        source => tracing::info!("shard {} (from {source})", options.shard),
    }
    let provenance = prepared.provenance();
    let identity = prepared.identity();
    let pool = prepared.pool()?;
    let Prepared {
        plan,
        mut extractor,
        reducers,
        formats,
        ..
    } = prepared;
    let plan = &plan;
    let listed = Instant::now();
    let listing = input::list(&plan.input).map_err(|e| crate::error::in_config(e, config))?;
    let listing_s = listed.elapsed().as_secs_f64();
    let part_size = plan.run.part_size;
    let summary = Listed {
        hash: listing.hash(),
        images: listing.images(),
        parts: listing.parts(part_size),
    };
    let manifest = Manifest::new(plan, identity, config, &summary)?;
    let dataset = Dataset::open(&plan.output.location, manifest, options.overwrite)?;
    let staging = Staging::for_store(&dataset.store)?;
    let encoders = Encoders::new(plan.run.threads)?;
    let sink = Sink::new(
        staging.dir(),
        &plan.output,
        formats,
        serde_json::to_string(&provenance)?,
        &encoders,
    )?;
    let setup_s = started.elapsed().as_secs_f64() - listing_s;

    let shard = options.shard;
    let committed = dataset.markers()?;
    let todo: Vec<usize> = (0..summary.parts)
        .filter(|p| shard.owns(*p) && !committed.contains_key(p))
        .collect();
    let todo_images: Option<u64> = todo
        .iter()
        .map(|&p| listing.images_in(p, part_size).map(|n| n as u64))
        .sum();
    tracing::info!(
        "{}; shard {shard} does {} parts{}, {} already committed; batches of {}, {} threads",
        listing.describe(part_size),
        todo.len(),
        todo_images.map_or_else(String::new, |n| format!(" ({n} images)")),
        committed.len(),
        extractor.batch_size(),
        plan.run.threads
    );

    let running = Instant::now();
    let (process_started, main_started) = (cpu::process_time(), cpu::own_time());
    let mut batcher = Batcher::new(plan, &mut extractor, &reducers, formats, &pool);
    let ledger = batcher.cpu().clone();
    let mut progress = Progress::new(todo_images, options.quiet);
    if let Some(watch) = &options.watch {
        watch
            .total
            .store(todo_images.unwrap_or(0), Ordering::Relaxed);
    }
    let (mut errors, mut done_images) = (0, 0);
    let mut write_wait = Duration::ZERO;
    let mut interrupted = false;
    // The part whose files are being finished (footers, sync) while the next one runs.
    let mut closing: Option<Closing> = None;
    for &part in &todo {
        if options.stopped() {
            interrupted = true;
            break;
        }
        let mut samples = listing.open(part, part_size, plan.input.limit, &ledger);
        let begun = sink.begin_part(part)?;
        let mut writer = BackgroundPart::start(begun, part, plan.run.queue_depth, &ledger);
        let (mut ok, mut error) = (0u64, 0u64);
        let mut ids: Option<(u64, u64)> = None;
        let outcome = batcher.process_all(samples.as_mut(), |done| {
            let waiting = Instant::now();
            let images = done.ok + done.error;
            writer.write(done.rows)?;
            write_wait += waiting.elapsed();
            ok += done.ok;
            error += done.error;
            errors += done.error;
            done_images += images;
            ids = Some((ids.map_or(done.ids.0, |i| i.0), done.ids.1));
            progress.advance(images, errors);
            if let Some(watch) = &options.watch {
                watch.done.fetch_add(images, Ordering::Relaxed);
                watch.errors.store(errors, Ordering::Relaxed);
            }
            if closing.as_ref().is_some_and(|c| c.writer.is_done()) {
                commit(&dataset, closing.take().expect("checked"), shard)?;
            }
            if options.stopped() {
                anyhow::bail!("stopped");
            }
            Ok(())
        });
        if let Some(previous) = closing.take() {
            commit(&dataset, previous, shard)?;
        }
        if options.stopped() {
            interrupted = true;
            break;
        }
        outcome?;
        let mut rows = Rows::new(&formats);
        batcher.drain_top(&mut rows);
        writer.write(rows)?;
        writer.close();
        let first = listing.first_image(part, part_size);
        let (first, last) = ids.unwrap_or((first, first));
        let done = Done {
            part,
            ids: first..last,
            ok,
            error,
        };
        closing = Some(Closing { writer, done });
    }
    if let Some(last) = closing.take() {
        commit(&dataset, last, shard)?;
    }
    progress.finish();
    if interrupted {
        let committed = dataset.markers()?.len();
        return Err(RunStop::Interrupted { committed }.into());
    }
    let run_s = running.elapsed().as_secs_f64();
    for (worker, own) in pool.broadcast(|b| (b.index(), cpu::own_time())) {
        ledger.thread(format!("{}-{worker}", cpu::WORKER), own);
    }
    for (encoder, used) in encoders.thread_times() {
        ledger.write.add(used);
        ledger.thread(encoder, used);
    }
    ledger.thread(
        "layerwise-main",
        cpu::own_time().saturating_sub(main_started),
    );
    let cpu = ledger.report(
        done_images,
        cpu::process_time().saturating_sub(process_started),
    );
    let times = StageTimes {
        write_wait,
        ..batcher.times()
    };
    tracing::info!(
        "time in stages: decode {:.2} s, model {:.2} s, reduce {:.2} s, waiting for the writer {:.2} s",
        times.decode.as_secs_f64(),
        times.model.as_secs_f64(),
        times.reduce.as_secs_f64(),
        times.write_wait.as_secs_f64()
    );

    let markers = dataset.markers()?;
    let complete = markers.len() == dataset.manifest.parts;
    let mut tables = TableCounts::default();
    let (mut ok, mut error) = (0, 0);
    for m in markers.values() {
        tables.add(&m.counts());
        ok += m.ok;
        error += m.error;
    }
    let record = RunRecord {
        format: RunRecord::FORMAT,
        provenance,
        shard: shard.to_string(),
        complete,
        counts: Counts::new(ok, error, markers.len(), dataset.manifest.parts, &tables),
        timings: Timings {
            setup_s,
            listing_s,
            run_s,
            images: done_images,
            images_per_s: done_images as f64 / run_s.max(1e-9),
            decode_s: times.decode.as_secs_f64(),
            model_s: times.model.as_secs_f64(),
            reduce_s: times.reduce.as_secs_f64(),
            write_wait_s: times.write_wait.as_secs_f64(),
            cpu,
        },
    };
    // A rerun that found every part committed leaves the record of the run that did the work
    // (its timings) as it is; it writes one only where none was written.
    let recorded = done_images == 0 && dataset.store.read("run.json")?.is_some();
    if complete && !recorded {
        dataset.store.write("run.json", record.to_json()?)?;
    }
    Ok(record)
}

/// Where part files are written before they are published: the output folder itself, or a
/// local folder removed at the end when the output is an object store.
enum Staging {
    InPlace(PathBuf),
    Scratch(PathBuf),
}

impl Staging {
    fn for_store(store: &Store) -> Result<Staging> {
        Ok(match store {
            Store::Local(dir) => Staging::InPlace(dir.clone()),
            Store::Remote(_) => {
                let dir =
                    std::env::temp_dir().join(format!("layerwise-upload-{}", std::process::id()));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                Staging::Scratch(dir)
            }
        })
    }

    fn dir(&self) -> &Path {
        match self {
            Staging::InPlace(dir) | Staging::Scratch(dir) => dir,
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Staging::Scratch(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What a finished part holds.
struct Done {
    part: usize,
    /// Its image ids (a range: files are numbered in order, and so are a shard's samples).
    ids: std::ops::Range<u64>,
    ok: u64,
    error: u64,
}

/// A part whose rows are all written, its files being finished by its writer thread.
struct Closing {
    writer: BackgroundPart,
    done: Done,
}

/// Waits for a closing part's files, publishes them and commits the part's marker: from then
/// on a rerun skips it.
fn commit(dataset: &Dataset, closing: Closing, shard: Shard) -> Result<()> {
    let counts = closing.writer.finish()?.publish(&dataset.store)?;
    dataset.commit(&marker(dataset, &closing.done, &counts, shard))?;
    cpu::release_free_memory();
    Ok(())
}

/// The marker of a part just committed.
fn marker(dataset: &Dataset, done: &Done, counts: &TableCounts, shard: Shard) -> PartMarker {
    let per_table = |values: &[u64; Table::COUNT]| {
        Table::ALL
            .iter()
            .zip(values)
            .map(|(t, v)| (t.name().to_owned(), *v))
            .collect()
    };
    PartMarker {
        part: done.part,
        first_image: done.ids.start,
        end_image: done.ids.end,
        ok: done.ok,
        error: done.error,
        rows: per_table(&counts.rows),
        bytes: per_table(&counts.bytes),
        config_hash: dataset.manifest.config_hash.clone(),
        listing_hash: dataset.manifest.listing_hash.clone(),
        shard: shard.to_string(),
        committed_at: provenance::now_rfc3339(),
    }
}
