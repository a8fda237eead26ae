//! The `layerwise` command line: its arguments, and what each command prints and exits with.
//! `main.rs` and the Python package's `layerwise` command both call [`main`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::PlanError;
use crate::output::provenance::RunRecord;
use crate::output::tables::Table;
use crate::pipeline::RunOptions;
use crate::plan::Overrides;
use crate::shard::Shard;
use anyhow::Context;
use clap::{Parser, Subcommand};

/// Extract what the layers of a vision model respond to, across whole image datasets.
///
/// layerwise walks an image folder, runs the images in batches through an ONNX model whose
/// chosen intermediate tensors are exposed, and writes per-channel statistics and the chosen
/// channels' activation maps to Parquet, ready for DuckDB, Polars or any dataframe tool.
#[derive(Debug, Parser)]
#[command(name = "layerwise", version, about, long_about)]
#[command(
    after_help = "Exit codes: 0 done; 1 failed (I/O, runtime: may succeed when retried); \
2 wrong usage, config or model (retrying will not help); 3 (status) the run is not complete; \
4 more images failed than [run] max_error_fraction allows (every part was written); \
130 interrupted by a signal (committed parts are kept: rerun to finish)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the tensors of a model that can be extracted, in graph order.
    ///
    /// Each row: index (what a name's `{index}` counts; `op:Type#n` counts the tensors of one
    /// operator, from 0, so `op:Conv#1` is the second Conv's), tensor name, producing operator,
    /// element type and shape; graph inputs and outputs are marked. Given a config,
    /// the shapes are the real ones from one probe run on a zero input built from its
    /// [preprocess]; given a model, they are as declared in the file unless --shapes.
    #[command(
        after_help = "Examples:\n  layerwise layers model.onnx --shapes --match 'block*_conv*'\n  \
        layerwise layers pipelines/demo.toml --json"
    )]
    Layers {
        /// An ONNX model, or a pipeline config.
        target: PathBuf,
        /// Probe the real shapes (for a model with a static input; a config always does).
        #[arg(long)]
        shapes: bool,
        /// Only tensors whose names match this glob, e.g. 'block*_conv*', or whose operator
        /// matches the glob after `op:`, e.g. 'op:Conv*'. No match is an error (exit 2).
        #[arg(long = "match", value_name = "GLOB")]
        pattern: Option<String>,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a starter config for a model and an image folder.
    ///
    /// Reads the model and runs it once on a zero input to learn its tensors' real shapes, then
    /// writes a config that `check` and `run` take as it is: the image folder (its subfolders'
    /// names as labels), `[preprocess]` sized from the model's input, the first and last
    /// convolutions after their activations (a transformer's residual stream after its first
    /// and last blocks), the model's output when it is a vector, each key explained. Relative
    /// paths in it are taken from the config's folder: the current folder on standard output,
    /// FILE's with --out.
    #[command(
        after_help = "Example: layerwise init model.onnx images/ --out study.toml && \
layerwise check study.toml"
    )]
    Init {
        /// The ONNX model.
        model: PathBuf,
        /// The image folder (walked recursively).
        images: PathBuf,
        /// Write the config to FILE (not overwritten) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a config without running it: what a run validates, then what it will take.
    ///
    /// Validates the config, the model, the runtime, the layer selectors and kept channels,
    /// lists the images, and runs a sample batch through the real pipeline into a scratch
    /// folder to measure bytes per image of each table. Prints each layer's shape and bytes,
    /// the estimated output size of the whole run and its peak memory.
    #[command(after_help = "Example: layerwise check pipelines/demo.toml")]
    Check {
        /// The pipeline config (TOML).
        config: PathBuf,
        /// Only the first N images of the sorted listing, as `run --limit`.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a config's listing once, as a Parquet file that `input.list` takes.
    ///
    /// Walks `input.root` (or reads `input.list`) as a run would and writes the sorted paths,
    /// with their labels, to FILE. Point `input.list` at it (keeping `root`) and every task of
    /// a job array reads that one file instead of walking the whole tree itself, which is slow
    /// on a parallel file system and what cluster admins ask to avoid.
    #[command(
        after_help = "Example:\n  layerwise list pipelines/demo.toml --out files.parquet\n  \
        then, in the config's [input]: list = \"files.parquet\" (keep root)"
    )]
    List {
        /// The pipeline config (TOML), with a folder or list input.
        config: PathBuf,
        /// The Parquet file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Draw feature maps as PNG grids in viridis, from a run (or on the fly from a config).
    #[command(subcommand)]
    Plot(Figure),
    /// Run a pipeline config: images in (a folder, a list or shards), Parquet tables out.
    ///
    /// Writes OUT/images, OUT/stats, OUT/maps and OUT/vectors (folders of part-NNNNN.parquet
    /// files) and OUT/run.json. Query them with e.g.
    /// duckdb -c "SELECT * FROM 'OUT/stats/*.parquet' LIMIT 5".
    #[command(after_help = "Example: layerwise run pipelines/demo.toml --limit 10")]
    Run {
        /// The pipeline config (TOML); see pipelines/ for examples.
        config: PathBuf,
        /// Output folder, instead of the config's [output] dir.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Only the first N images of the sorted listing, or of each shard (for a quick look).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Replace a run already in the output folder.
        #[arg(long)]
        overwrite: bool,
        /// No progress bar or progress lines.
        #[arg(long, short)]
        quiet: bool,
        /// Do shard I of N: the parts p with p % N == I (default: from SLURM_ARRAY_TASK_* or
        /// JOB_COMPLETION_INDEX, else the whole run).
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// The number of shards of a Kubernetes Indexed Job (else LAYERWISE_SHARDS).
        #[arg(long, value_name = "N")]
        shards: Option<usize>,
    },
    /// Check this node: the ONNX Runtime library found (where, and where it looked), its
    /// version and providers, a session run on each, the CPUs and the GPUs a run would use.
    ///
    /// Exits 0 when a run can start (on the CPU, or on the config's [run] provider), 2 when it
    /// cannot, after saying what to install. Given a config, its [run] onnxruntime, provider
    /// and device are the ones checked.
    #[command(
        after_help = "Examples:\n  layerwise doctor\n  layerwise doctor pipelines/demo.toml --json"
    )]
    Doctor {
        /// A pipeline config whose [run] settings to check (default: a CPU run).
        config: Option<PathBuf>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of pipeline configs, for editors and CI.
    ///
    /// The schema (JSON Schema draft 2020-12, also checked in as schemas/config.schema.json)
    /// gives editors completion, hover docs and validation of pipeline TOML files: with taplo
    /// or VS Code's "Even Better TOML", put `#:schema ../schemas/config.schema.json` (a path
    /// relative to the TOML file) on the file's first line. CI can validate configs against
    /// it with any JSON Schema validator. It checks keys, types, values and simple limits;
    /// `layerwise check` also checks the config against the model and the files.
    #[command(after_help = "Example: layerwise schema > schemas/config.schema.json")]
    Schema,
    /// Write a run as a static HTML site (the atlas) that opens from file:// with no server.
    ///
    /// index.html lists the run (model, runtime, images ok and in error with their reasons,
    /// speed, parts) and its layers; each layer page shows every channel as a tile (its best
    /// dataset example) and a table sortable by mean, max, frac > 0, per-label means and class
    /// selectivity, with the classic study's figures; each channel page shows its top dataset
    /// examples over their images, histograms of its per-image max and mean, and its
    /// per-label means, each with the DuckDB query that reproduces it. Works on a partial run
    /// too (its committed parts).
    #[command(
        after_help = "Examples:\n  layerwise report out/demo            (writes out/demo/report/index.html)\n  \
        layerwise report out/demo --layers block5_conv3 --top 16 --out /tmp/atlas\n  \
        layerwise report out/demo --compare out/demo/compare-vit"
    )]
    Report {
        /// The run's output folder, or its s3://bucket/prefix.
        #[arg(value_name = "OUT")]
        run: PathBuf,
        /// The site's folder or s3:// prefix (default: OUT/report); an earlier report in a
        /// folder is replaced.
        #[arg(long = "out", value_name = "DIR")]
        dest: Option<PathBuf>,
        /// Only these layers, comma-separated (default: all).
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        layers: Option<Vec<String>>,
        /// Dataset examples per channel.
        #[arg(long, value_name = "K", default_value_t = crate::report::DEFAULT_TOP)]
        top: usize,
        /// The channel each layer page draws across images (default: the one with the highest
        /// mean of its per-image max; maps the run did not keep are computed again).
        #[arg(long, value_name = "N")]
        channel: Option<u32>,
        /// A folder `layerwise compare` wrote: the index shows its matrix too (the run's own,
        /// layer with layer, is always there).
        #[arg(long, value_name = "DIR")]
        compare: Option<PathBuf>,
    },
    /// Report a run's progress: parts committed and missing, images, rows and bytes.
    ///
    /// Exits 0 only when every part is committed; otherwise prints the command that finishes
    /// the missing parts and exits 3.
    #[command(after_help = "Example: layerwise status out/demo")]
    Status {
        /// The run's output folder.
        out: PathBuf,
    },
    /// Compare layers: the linear CKA of every pair, within a run or across two runs.
    ///
    /// Each image's features are read from what the runs stored (no model pass): a map
    /// layer's per-channel mean or max from stats, a vector layer's vector, a token layer's
    /// class token from positions (--features prefix). They stream into sums whose size is set
    /// by the layers' widths, not by the images; from them the standard and the debiased
    /// (unbiased HSIC) linear CKA of every pair are exact. With OUT_B, the first run's layers
    /// are compared with the second's over the images ok in both, matched by (source, path).
    /// Writes DIR/similarity.parquet (a row per pair), DIR/similarity.png (the heat map) and
    /// DIR/compare.json, and prints the matrices.
    #[command(after_help = "Examples:
  layerwise compare out/demo --layers block1_conv1,block5_conv3
  layerwise compare out/vgg16 out/vit --rsa 1000
  layerwise compare out/big --shard 0/8 --out cmp   (one per array task; then:)
  layerwise compare --merge cmp")]
    Compare(CompareArgs),
}

/// The arguments of `layerwise compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The run's output folder (finished or partial: its committed parts).
    #[arg(value_name = "OUT", required_unless_present = "merge")]
    run: Option<PathBuf>,
    /// A second run, whose layers are compared with the first's (it may use another model,
    /// input size and preprocessing).
    #[arg(value_name = "OUT_B", conflicts_with = "merge")]
    other: Option<PathBuf>,
    /// Only these layers, comma-separated, each from the runs that have it (default: every
    /// layer the features apply to).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    layers: Option<Vec<String>>,
    /// What stands for a map layer on an image: each channel's `mean` (global average
    /// pooling; a token layer's patch mean), its `max` (global max pooling), or a token
    /// layer's class token (`prefix`, from the positions table). A vector layer is its vector.
    #[arg(long, default_value = "mean", value_parser = ["mean", "max", "prefix"])]
    features: String,
    /// Also RSA on a seeded sample of N images (1000 when N is left out): the Spearman
    /// correlation of the layers' dissimilarity matrices (1 - Pearson correlation).
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1000")]
    rsa: Option<usize>,
    /// The seed that draws the RSA sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compare only shard I of N (the first run's parts p with p % N == I) and write its sums
    /// to DIR/shards; when every shard is written, `compare --merge DIR` adds them up.
    #[arg(long, value_name = "I/N", conflicts_with = "merge")]
    shard: Option<String>,
    /// Add up the shards' sums in DIR/shards and write DIR's results.
    #[arg(long, value_name = "DIR")]
    merge: Option<PathBuf>,
    /// Where the results go (default: OUT/compare; with OUT_B, OUT/compare-NAME, NAME the
    /// second run's folder name).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// The figures of `layerwise plot`.
#[derive(Debug, Subcommand)]
enum Figure {
    /// One image, many channels of a layer, each cell titled `channel i`.
    #[command(
        after_help = "Examples:\n  layerwise plot channels --run out/demo --layer block1_conv1 --image 0\n  \
        layerwise plot channels --config pipelines/demo.toml --image photo.jpg --layer block1_conv1 --channels 0..49"
    )]
    Channels {
        /// A finished run's output folder.
        #[arg(
            long,
            value_name = "OUT",
            required_unless_present = "config",
            conflicts_with = "config"
        )]
        run: Option<PathBuf>,
        /// Compute the maps on the fly for one image with this config, without a run.
        #[arg(long, value_name = "CONFIG")]
        config: Option<PathBuf>,
        /// The layer's name.
        #[arg(long)]
        layer: String,
        /// With --run: an image_id or a path as the images table has it; with --config: a file.
        #[arg(long, value_name = "ID|PATH")]
        image: String,
        /// Channels: 0..49 (half-open), 0,11,12 or 5 (default: the stored ones, up to 49).
        #[arg(long, value_name = "LIST")]
        channels: Option<String>,
        #[command(flatten)]
        look: Look,
    },
    /// One channel across many images, each cell titled `image: i` with its label.
    #[command(
        after_help = "Example: layerwise plot images --run out/demo --layer block1_conv1 --channel 11 --images label=cat"
    )]
    Images {
        #[command(flatten)]
        of: ChannelOf,
        /// Images: 0..49 (image_ids, half-open) or label=NAME (default: the first 49).
        #[arg(long, value_name = "RANGE|label=NAME")]
        images: Option<String>,
        #[command(flatten)]
        look: Look,
    },
    /// The images that excite a channel most, each under its map (from `top_k`, or from stats
    /// and stored maps).
    #[command(
        after_help = "Example: layerwise plot top --run out/demo --layer block5_conv3 --channel 7 --k 16"
    )]
    Top {
        #[command(flatten)]
        of: ChannelOf,
        /// How many images.
        #[arg(long, default_value_t = 16)]
        k: usize,
        #[command(flatten)]
        look: Look,
    },
}

/// One channel of a layer of a run.
#[derive(Debug, clap::Args)]
struct ChannelOf {
    /// A finished run's output folder.
    #[arg(long, value_name = "OUT")]
    run: PathBuf,
    /// The layer's name.
    #[arg(long)]
    layer: String,
    /// The channel.
    #[arg(long)]
    channel: u32,
}

/// How a figure looks, and where it goes.
#[derive(Debug, clap::Args)]
struct Look {
    /// Cells per row.
    #[arg(long, default_value_t = 7)]
    cols: usize,
    /// Band each map into N levels, like contourf(..., N).
    #[arg(long, value_name = "N")]
    levels: Option<u32>,
    /// One colour range for the whole grid instead of one per map.
    #[arg(long)]
    shared_scale: bool,
    /// The PNG to write (default: OUT/plots/..., or plots/... with --config).
    #[arg(long, value_name = "PATH")]
    png: Option<PathBuf>,
}

/// Runs the command line `args` (the program's name first, as `std::env::args_os` gives it)
/// and returns the exit status the README's table gives. `--help`, `--version` and wrong usage
/// print and exit the process, as a command does.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    crate::cpu::tune_allocator();
    let cli = Cli::parse_from(args);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    match cli.command {
        Command::Plot(figure) => report(plot(figure)),
        Command::Check {
            config,
            limit,
            json,
        } => report(check(&config, limit, json)),
        Command::Init { model, images, out } => report(init(&model, &images, out.as_deref())),
        Command::Layers {
            target,
            shapes,
            pattern,
            json,
        } => report(layers(&target, shapes, pattern.as_deref(), json)),
        Command::Run {
            config,
            out,
            limit,
            overwrite,
            quiet,
            shard,
            shards,
        } => report(run(
            &config,
            Overrides { out, limit },
            overwrite,
            quiet,
            shard.as_deref(),
            shards,
        )),
        Command::Schema => report(schema()),
        Command::Doctor { config, json } => match doctor(config.as_deref(), json) {
            Ok(code) => code,
            Err(err) => report(Err(err)),
        },
        Command::Report {
            run,
            dest,
            layers,
            top,
            channel,
            compare,
        } => {
            let choices = crate::report::Choices {
                layers,
                top: top.max(1),
                channel,
                compare,
            };
            report(write_report(&run, dest, choices))
        }
        Command::List { config, out } => report(list(&config, &out)),
        Command::Compare(args) => report(compare(args)),
        Command::Status { out } => {
            match crate::output::dataset::Dataset::read(&crate::location::Location::of(&out))
                .and_then(|d| d.status())
            {
                Ok(status) => {
                    print!("{}", status.to_text());
                    if status.complete() {
                        0
                    } else {
                        3
                    }
                }
                Err(err) => {
                    eprintln!("error: {}", crate::error::describe(&err));
                    crate::error::exit_code(&err)
                }
            }
        }
    }
}

/// Runs a config as the shard the flags or the scheduler's environment say.
fn run(
    config: &Path,
    overrides: Overrides,
    overwrite: bool,
    quiet: bool,
    shard: Option<&str>,
    shards: Option<usize>,
) -> anyhow::Result<()> {
    let (shard, source) = match shard {
        Some(text) => (Shard::parse(text)?, "--shard"),
        None => Shard::from_env(shards, |name| std::env::var(name).ok())?,
    };
    let record = crate::run(
        config,
        &overrides,
        RunOptions {
            overwrite,
            quiet,
            shard,
            shard_source: source,
            stop: Some(stop_on_signal()),
            watch: None,
        },
    )?;
    print_summary(&record);
    crate::pipeline::check_error_fraction(&record)?;
    Ok(())
}

/// A flag that SIGINT (Ctrl-C), SIGTERM (what Slurm and Kubernetes send before killing a job)
/// and SIGHUP set, so the run stops after its batch in progress; a second signal exits at
/// once (committed parts are safe either way: a part is committed whole or not at all).
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("stopping after the batch in progress (signal again to stop at once)");
    });
    if let Err(e) = installed {
        tracing::warn!("cannot handle Ctrl-C and SIGTERM: {e}");
    }
    stop
}

/// Examines the node for a run (of `config`, or on the CPU) and prints what it found; the
/// exit status says whether a run can start.
fn doctor(config: Option<&Path>, json: bool) -> anyhow::Result<u8> {
    let run = match config {
        Some(path) => crate::plan::read_config(path)?.run,
        None => crate::config::RunConfig::default(),
    };
    let search = crate::model::runtime::SearchPath::standard(run.onnxruntime);
    let diagnosis = crate::doctor::Diagnosis {
        config: config.map(Path::to_path_buf),
        ..crate::doctor::diagnose(&search, run.provider, run.device)
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    } else {
        print!("{}", diagnosis.to_text());
    }
    Ok(diagnosis.exit_code())
}

/// Draws a figure and says where it went.
fn plot(figure: Figure) -> anyhow::Result<()> {
    use crate::view::plot::{self as p, ImageRef, ImageSet};
    let (cells, look, default) = match figure {
        Figure::Channels {
            run,
            config,
            layer,
            image,
            channels,
            look,
        } => {
            let channels = channels.as_deref().map(p::parse_channels).transpose()?;
            match (run, config) {
                (Some(run), _) => {
                    let stored = crate::view::read::StoredRun::open(&run)?;
                    let cells = p::channels_from_run(
                        &stored,
                        &layer,
                        &ImageRef::parse(&image),
                        channels.as_deref(),
                    )?;
                    (
                        cells,
                        look,
                        p::default_png(&run, &format!("channels-{layer}-{image}")),
                    )
                }
                (None, Some(config)) => {
                    let cells = p::channels_from_config(
                        &config,
                        Path::new(&image),
                        &layer,
                        channels.as_deref(),
                    )?;
                    let stem = Path::new(&image)
                        .file_stem()
                        .map_or("image".into(), |s| s.to_string_lossy());
                    (
                        cells,
                        look,
                        PathBuf::from(format!("plots/channels-{layer}-{stem}.png")),
                    )
                }
                (None, None) => unreachable!("clap requires --run or --config"),
            }
        }
        Figure::Images { of, images, look } => {
            let ChannelOf {
                run,
                layer,
                channel,
            } = of;
            let which = images.as_deref().map(ImageSet::parse).transpose()?;
            let stored = crate::view::read::StoredRun::open(&run)?;
            let cells = p::images_from_run(&stored, &layer, channel, which.as_ref())?;
            (
                cells,
                look,
                p::default_png(&run, &format!("images-{layer}-{channel}")),
            )
        }
        Figure::Top { of, k, look } => {
            let ChannelOf {
                run,
                layer,
                channel,
            } = of;
            let stored = crate::view::read::StoredRun::open(&run)?;
            let cells = p::top_from_run(&stored, &layer, channel, k)?;
            (
                cells,
                look,
                p::default_png(&run, &format!("top-{layer}-{channel}")),
            )
        }
    };
    let path = look.png.unwrap_or(default);
    let style = crate::view::render::Style {
        cols: look.cols,
        levels: look.levels,
        shared_scale: look.shared_scale,
    };
    let image = p::write_png(&cells, style, &path)?;
    println!(
        "wrote {} ({} cells, {} x {} px)",
        path.display(),
        cells.len(),
        image.width(),
        image.height()
    );
    Ok(())
}

/// Writes the report of the run in `run` and prints where its entry page is.
fn write_report(
    run: &Path,
    dest: Option<PathBuf>,
    choices: crate::report::Choices,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let written = crate::report::write_from(run, dest, choices)?;
    tracing::info!(
        "{} pages and {} pictures in {:.1} s",
        written.pages,
        written.pictures,
        started.elapsed().as_secs_f64()
    );
    println!("{}", written.dir.join("index.html").display());
    Ok(())
}

fn check(config: &Path, limit: Option<usize>, json: bool) -> anyhow::Result<()> {
    let overrides = Overrides { out: None, limit };
    let report = crate::check::check(config, &overrides)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// Prints, or writes to `out`, a starter config for `model` and `images`.
fn init(model: &Path, images: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    if !images.is_dir() {
        crate::mistake!(
            "{}: not a folder; `layerwise init MODEL IMAGES` takes the folder of images to study",
            images.display()
        );
    }
    let Some(out) = out else {
        print!("{}", crate::init::starter(model, images, Path::new("."))?);
        return Ok(());
    };
    if out.exists() {
        crate::mistake!(
            "{} exists and is left as it is: give --out another name, or remove it",
            out.display()
        );
    }
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let text = crate::init::starter(model, images, folder)?;
    anyhow::Context::with_context(std::fs::write(out, text), || {
        format!("writing {}", out.display())
    })?;
    eprintln!(
        "wrote {}: check it with `layerwise check {}`",
        out.display(),
        out.display()
    );
    Ok(())
}

/// Compares layers (or a shard of them, or merges shards) and writes the results.
fn compare(args: CompareArgs) -> anyhow::Result<()> {
    use crate::compare::{features::Features, store, Request};
    if let Some(dir) = args.merge {
        let (record, sums) = store::merge(&dir)?;
        return compared(&record, &sums, &dir);
    }
    let run = args.run.context("compare takes a run's folder")?;
    let dir = match (&args.out, &args.other) {
        (Some(dir), _) => dir.clone(),
        (None, None) => run.join("compare"),
        (None, Some(other)) => {
            let name = other.file_name().map(|n| n.to_string_lossy().into_owned());
            run.join(format!("compare-{}", name.unwrap_or_else(|| "b".into())))
        }
    };
    let request = Request {
        runs: std::iter::once(run).chain(args.other).collect(),
        layers: args.layers,
        features: Features::parse(&args.features)?,
        rsa: args.rsa,
        seed: args.seed,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let Some(shard) = args.shard else {
        let (record, sums) = crate::compare::pass(&request, Shard::default(), &dir)?;
        return compared(&record, &sums, &dir);
    };
    let shard = Shard::parse(&shard)?;
    let (record, sums) = crate::compare::pass(&request, shard, &dir)?;
    let file = store::write(&dir, &record, shard, &sums)?;
    println!(
        "shard {shard}: the sums of {} of {} images{}, written to {}",
        sums.sums.images(),
        record.images,
        record.partial(),
        file.display()
    );
    println!(
        "when every shard is written: layerwise compare --merge {}",
        dir.display()
    );
    Ok(())
}

/// Prints a comparison's matrices and writes its files into `dir`.
fn compared(
    record: &crate::compare::Record,
    sums: &crate::compare::accumulate::Accumulator,
    dir: &Path,
) -> anyhow::Result<()> {
    use crate::compare::{features::Features, matrix_text};
    let rows = crate::compare::finish(record, sums)?;
    // Written before anything is printed: a closed pipe (`| head`) does not lose them.
    let written = crate::compare::write(&rows, record, dir)?;
    let features = Features::parse(&record.features)?;
    println!(
        "linear CKA over {} images{}, features: {}",
        record.images,
        record.partial(),
        features.describe()
    );
    if record.runs.len() == 2 {
        let left = &record.left_out;
        println!(
            "matched by (source, path): {} only in {}, {} only in {}, {} failed in either, {} repeated",
            left.only_a, record.runs[0], left.only_b, record.runs[1], left.failed, left.repeated
        );
    }
    print!("{}", matrix_text(&rows, |r| r.cka));
    println!("debiased:");
    print!("{}", matrix_text(&rows, |r| r.cka_debiased));
    if let Some(sample) = &record.rsa {
        println!(
            "RSA (Spearman) over a sample of {} images, seed {}:",
            sample.images.len(),
            sample.seed
        );
        print!("{}", matrix_text(&rows, |r| r.rsa.unwrap_or(f64::NAN)));
    }
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
    Ok(())
}

/// Writes a config's listing to a Parquet file.
fn list(config: &Path, out: &Path) -> anyhow::Result<()> {
    let written = crate::input::listing::write_config_list(config, out)?;
    println!("wrote {written} paths to {}", out.display());
    Ok(())
}

/// Prints the JSON Schema of pipeline configs.
fn schema() -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::config::config_schema())?
    );
    Ok(())
}

/// Prints the tensors of a model or config.
fn layers(target: &Path, shapes: bool, pattern: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut listing = crate::model::inspect::for_path(target, shapes)?;
    if let Some(pattern) = pattern {
        let (by_op, text) = match pattern.strip_prefix("op:") {
            Some(op) => (true, op),
            None => (false, pattern),
        };
        let glob = glob::Pattern::new(text).map_err(|e| PlanError::Argument {
            option: "--match",
            problem: format!("`{pattern}` is not a valid glob: {e}"),
        })?;
        listing.retain_matching(&glob, by_op);
        if listing.tensors.is_empty() {
            let what = match by_op {
                true => "operator",
                false => "name",
            };
            return Err(PlanError::Argument {
                option: "--match",
                problem: format!(
                    "`{pattern}`: no tensor of {} has a{} {what} that matches; a glob matches \
                     tensor names ('block*_conv*'), and after `op:` operator types \
                     ('op:Conv*'); `layerwise layers {}` lists them all",
                    target.display(),
                    if by_op { "n" } else { "" },
                    target.display()
                ),
            }
            .into());
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
    } else {
        print!("{}", listing.to_table());
    }
    Ok(())
}

/// Exit status for a command's result, printing the error.
fn report(result: anyhow::Result<()>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {}", crate::error::describe(&err));
            crate::error::exit_code(&err)
        }
    }
}

fn print_summary(record: &RunRecord) {
    let c = &record.counts;
    let t = &record.timings;
    let dir = record
        .provenance
        .config
        .output
        .dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    if record.complete && t.images == 0 {
        println!(
            "{}: nothing to do, every part is committed: {} images ({} ok, {} failed); \
             `--overwrite` runs it again",
            record.provenance.name, c.images, c.ok, c.error
        );
    } else {
        println!(
            "{}: {} images ({} ok, {} failed) in {:.1} s, {:.1} images/s [shard {}]",
            record.provenance.name, c.images, c.ok, c.error, t.run_s, t.images_per_s, record.shard
        );
    }
    for table in Table::ALL.map(Table::name) {
        let rows = c.rows[table].as_u64().unwrap_or(0);
        let bytes = c.bytes[table].as_u64().unwrap_or(0);
        println!(
            "  {table:<8} {rows:>10} rows {:>12}",
            crate::progress::bytes(bytes)
        );
    }
    if record.complete {
        println!("  written to {dir}");
    } else {
        println!(
            "  written to {dir}: {} of {} parts committed, the rest is other shards' \
             (layerwise status {dir})",
            c.parts, c.parts_total
        );
    }
}
