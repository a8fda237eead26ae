//! The `layerwise` command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use layerwise::provenance::RunRecord;
use layerwise::tables::Table;
use layerwise::{Overrides, PlanError, RunOptions};

/// Extract what the layers of a vision model respond to, across whole image datasets.
///
/// layerwise walks an image folder, runs the images in batches through an ONNX model whose
/// chosen intermediate tensors are exposed, and writes per-channel statistics and the chosen
/// channels' activation maps to Parquet, ready for DuckDB, Polars or any dataframe tool.
#[derive(Debug, Parser)]
#[command(name = "layerwise", version, about, long_about)]
#[command(
    after_help = "Exit codes: 0 done; 1 failed (I/O, runtime: may succeed when retried); \
2 wrong usage, config or model (retrying will not help)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the tensors of a model that can be extracted, in graph order.
    ///
    /// Each row: index (what `op:Type#n` and a name's `{index}` count), tensor name, producing
    /// operator, element type and shape; graph inputs and outputs are marked. Given a config,
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
        /// Only tensors whose names match this glob, e.g. 'block*_conv*'.
        #[arg(long = "match", value_name = "GLOB")]
        pattern: Option<String>,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
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
    /// Run a pipeline config: images in, Parquet tables and run.json out.
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
        /// Only the first N images of the sorted listing (for a quick look).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Replace a run already in the output folder.
        #[arg(long)]
        overwrite: bool,
        /// No progress bar or progress lines.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Check {
            config,
            limit,
            json,
        } => report(check(&config, limit, json)),
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
        } => report(
            layerwise::run(
                &config,
                &Overrides { out, limit },
                RunOptions { overwrite, quiet },
            )
            .map(|record| print_summary(&record)),
        ),
    }
}

/// Prints what a run of a config will take.
fn check(config: &Path, limit: Option<usize>, json: bool) -> anyhow::Result<()> {
    let overrides = Overrides { out: None, limit };
    let report = layerwise::check::check(config, &overrides)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// Prints the tensors of a model or config.
fn layers(target: &Path, shapes: bool, pattern: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut listing = layerwise::inspect::for_path(target, shapes)?;
    if let Some(pattern) = pattern {
        let glob = glob::Pattern::new(pattern).map_err(|e| {
            PlanError::invalid("--match", format!("`{pattern}` is not a valid glob: {e}"))
        })?;
        listing.retain_matching(&glob);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
    } else {
        print!("{}", listing.to_table());
    }
    Ok(())
}

/// Exit status for a command's result, printing the error.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// 2 for mistakes in the config or model (retrying will not help), 1 for the rest.
fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<PlanError>()) {
        2
    } else {
        1
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
    println!(
        "{}: {} images ({} ok, {} failed) in {:.1} s, {:.1} images/s",
        record.provenance.name, c.images, c.ok, c.error, t.run_s, t.images_per_s
    );
    for table in Table::ALL.map(Table::name) {
        let rows = c.rows[table].as_u64().unwrap_or(0);
        let bytes = c.bytes[table].as_u64().unwrap_or(0);
        println!(
            "  {table:<8} {rows:>10} rows {:>12}",
            layerwise::progress::bytes(bytes)
        );
    }
    println!("  written to {dir}");
}
