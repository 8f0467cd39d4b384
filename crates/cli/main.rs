//! The `tally` command. Thin: it parses arguments and calls the library crates
//! (ingest, then score, then report; audit for `explain` and `diff`). Exit codes:
//! 0 success; 1 the input data, the epoch, the rules or the files of an output
//! directory are invalid (or an unknown account); 2 the invocation is wrong (bad
//! arguments, an existing output directory without --force); 3 the output could not
//! be written; 101 a panic, which is a bug (nothing is published: outputs are
//! renamed into place only after everything has been computed and written).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};

mod pipeline;
mod verify;

#[derive(Parser)]
#[command(
    name = "tally",
    version,
    about = "Deterministic settlement of GPU-network incentive epochs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Settle one epoch: read EPOCH_DIR, write the reports to OUT_DIR (all or nothing).
    Run {
        /// Directory holding epoch.toml and the input tables.
        epoch_dir: PathBuf,
        /// Output directory; must not exist unless --force.
        #[arg(long)]
        out: PathBuf,
        /// Rules file to use instead of <rules-dir>/<version named by epoch.toml>.toml.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Directory of rules versions. Published versions missing from the default
        /// `rules` are taken from the binary (the same bytes).
        #[arg(long, default_value = tally_ingest::DEFAULT_RULES_DIR)]
        rules_dir: PathBuf,
        /// Fail on any rejected input row.
        #[arg(long)]
        strict: bool,
        /// Replace OUT_DIR if it exists.
        #[arg(long)]
        force: bool,
        /// Also write measurements.csv, the per-device measurement table.
        #[arg(long)]
        emit_measurements: bool,
        /// No progress on stderr (it is shown only on a terminal, for runs over a second).
        #[arg(long)]
        quiet: bool,
        /// Worker threads reading the event logs (default: one per core). Outputs do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Explain one account of a settled run in plain words: each device's measured values
    /// against the rules, every reason with its evidence, the points formula with the
    /// numbers filled in, and how the points became tokens. Reads only OUT_DIR.
    Explain {
        /// Output directory of `tally run`.
        out_dir: PathBuf,
        /// The account to explain.
        account_id: String,
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
    },
    /// Re-run a published epoch and compare every file with its manifest: exit 0 only
    /// if inputs, rules and every output match.
    Verify {
        /// Output directory of `tally run`.
        out_dir: PathBuf,
        /// The epoch directory the run read.
        #[arg(long)]
        input: PathBuf,
        /// Directory of rules versions (published versions are also built in).
        #[arg(long, default_value = tally_ingest::DEFAULT_RULES_DIR)]
        rules_dir: PathBuf,
    },
    /// Rules files: validate one, or list the published versions.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// A campaign: the pool spread over several epochs. Checks that the epochs do not
    /// overlap and that their pools add up to --total; prints each account's units
    /// per epoch and in total (CSV).
    Campaign {
        /// Output directories of `tally run`, one per epoch.
        #[arg(required = true)]
        out_dirs: Vec<PathBuf>,
        /// The campaign's whole pool, in tokens (e.g. 32000000).
        #[arg(long)]
        total: String,
    },
    /// Write a synthetic epoch: realistic uptime, rentals and every SPEC anomaly, the
    /// same bytes for the same arguments. For tests and benchmarks.
    #[command(group(clap::ArgGroup::new("length").required(true).args(["days", "hours"])))]
    Gen {
        /// Registered devices (1 to 1,000,000).
        #[arg(long)]
        devices: u32,
        /// Length of the epoch in days.
        #[arg(long)]
        days: Option<u32>,
        /// Length of the epoch in hours (instead of --days).
        #[arg(long)]
        hours: Option<u32>,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// File format of the tables (epoch.toml is always TOML).
        #[arg(long, value_enum, default_value_t = GenFormat::Csv)]
        format: GenFormat,
        /// Epoch directory to write; must not exist unless --force.
        #[arg(long)]
        out: PathBuf,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
        /// Start of the epoch (RFC 3339).
        #[arg(long, default_value = tally_gen::DEFAULT_START)]
        start: String,
    },
    /// What changed from run A to run B, per account and device, largest token change
    /// first, with the inputs of the points formula that changed. Reads only the two
    /// output directories.
    Diff {
        /// Output directory of the earlier run.
        out_a: PathBuf,
        /// Output directory of the later run.
        out_b: PathBuf,
        /// `csv`: one row per account and per changed device, for publication.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate a rules file and say whether it matches its published version.
    Check { file: PathBuf },
    /// The published rules versions and their SHA-256 (rules/SHA256SUMS).
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExplainFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum GenFormat {
    Csv,
    Parquet,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Csv,
}

/// When this run started, for progress lines.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Progress on stderr: rows read per table and the stage, once the run has lasted a
/// second (a quick run stays silent).
fn progress(p: tally_ingest::Progress<'_>) {
    let elapsed = STARTED.get_or_init(Instant::now).elapsed();
    if elapsed.as_secs() < 1 {
        return;
    }
    let ms = elapsed.as_millis();
    let at = format!("{}.{} s", ms / 1000, ms % 1000 / 100);
    match p {
        tally_ingest::Progress::Rows { file, rows } => {
            eprintln!("tally: {at}: {file}: {rows} rows read")
        }
        tally_ingest::Progress::Stage(stage) => eprintln!("tally: {at}: {stage}"),
    }
}

const DATA: u8 = 1;
const USAGE: u8 = 2;
const OUTPUT: u8 = 3;

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("tally: error: {message}");
    ExitCode::from(code)
}

/// Writes a report to stdout; a closed or full stdout is exit code 3.
fn print(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(OUTPUT, format!("cannot write to standard output: {e}")),
    }
}

fn verify(out_dir: &Path, input: &Path, rules_dir: &Path) -> ExitCode {
    let report = match verify::verify(out_dir, input, rules_dir) {
        Ok(r) => r,
        Err(e) => return fail(DATA, e.0),
    };
    for line in &report.checked {
        println!("ok    {line}");
    }
    for line in &report.problems {
        println!("FAIL  {line}");
    }
    if report.problems.is_empty() {
        println!(
            "verified: every input, the rules and every output match the manifest and a re-run"
        );
        ExitCode::SUCCESS
    } else {
        fail(
            DATA,
            format!(
                "{} problem(s); the first: {}",
                report.problems.len(),
                report.problems[0]
            ),
        )
    }
}

fn rules_check(file: &Path) -> ExitCode {
    match tally_ingest::check_rules_file(file) {
        Err(e) => fail(DATA, e),
        Ok((rules, sha256, publication)) => {
            println!("{}: valid rules, version {}", file.display(), rules.version);
            println!(
                "features: {}",
                if rules.features.is_empty() {
                    "none".into()
                } else {
                    rules.features.join(", ")
                }
            );
            println!("sha256: {sha256}");
            match publication {
                tally_ingest::Publication::Matches => {
                    println!("published: yes, {} with this exact hash", rules.version);
                    ExitCode::SUCCESS
                }
                tally_ingest::Publication::NotPublished => {
                    println!("published: no, {} is not a published version", rules.version);
                    ExitCode::SUCCESS
                }
                tally_ingest::Publication::Differs(h) => fail(
                    DATA,
                    format!("{} is published with SHA-256 {h}; this file differs, so tally run refuses it", rules.version),
                ),
            }
        }
    }
}

fn rules_list() -> ExitCode {
    let mut text = String::from("version sha256\n");
    for (version, _) in tally_ingest::PUBLISHED_RULES {
        let hash = tally_ingest::published_sha256(version).unwrap_or("?");
        text.push_str(&format!("{version} {hash}\n"));
    }
    print(text.as_bytes())
}

fn campaign(out_dirs: &[PathBuf], total: &str) -> ExitCode {
    use tally_audit::campaign;
    let epochs: Result<Vec<_>, _> = out_dirs.iter().map(|d| campaign::read_epoch(d)).collect();
    match epochs.and_then(|e| campaign::check(e, total)) {
        Ok((epochs, _)) => print(&campaign::table(&epochs)),
        Err(e) => fail(DATA, e),
    }
}

fn explain(out_dir: &Path, account_id: &str, format: ExplainFormat) -> ExitCode {
    let explained = tally_audit::Published::load(out_dir)
        .and_then(|p| tally_audit::explain::explain(&p, account_id));
    match (explained, format) {
        (Ok(e), ExplainFormat::Text) => print(e.to_text().as_bytes()),
        (Ok(e), ExplainFormat::Json) => print(e.to_json().as_bytes()),
        (Err(e), _) => fail(DATA, e),
    }
}

fn diff(out_a: &Path, out_b: &Path, format: DiffFormat) -> ExitCode {
    let compared = tally_audit::Published::load(out_a).and_then(|a| {
        let b = tally_audit::Published::load(out_b)?;
        tally_audit::diff::diff(&a, &b)
    });
    match (compared, format) {
        (Ok(d), DiffFormat::Text) => print(d.to_text().as_bytes()),
        (Ok(d), DiffFormat::Csv) => print(&d.to_csv()),
        (Err(e), _) => fail(DATA, e),
    }
}

fn generate(
    params: Result<tally_gen::Params, tally_gen::GenError>,
    out: &Path,
    force: bool,
) -> ExitCode {
    use tally_gen::GenError;
    match params.and_then(|p| tally_gen::generate(&p, out, force)) {
        Ok(report) => {
            eprintln!("{report}");
            ExitCode::SUCCESS
        }
        Err(e @ (GenError::Invalid(_) | GenError::Exists(_))) => fail(USAGE, e),
        Err(e) => fail(OUTPUT, e),
    }
}

/// Whether `out` is the epoch directory, inside it, or holds it: the reports would
/// become an unexpected entry of the epoch, or `--force` would replace the inputs.
fn overlaps(epoch: &Path, out: &Path) -> bool {
    let Ok(epoch) = epoch.canonicalize() else {
        return false;
    };
    // `out` need not exist yet: resolve its parent.
    let out = out
        .canonicalize()
        .or_else(|e| match (out.parent(), out.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                parent.canonicalize().map(|p| p.join(name))
            }
            _ => Err(e),
        });
    out.is_ok_and(|out| epoch.starts_with(&out) || out.starts_with(&epoch))
}

/// Large buffers (a decoded Parquet row group, a CSV block) are allocated and freed
/// over and over by several threads. glibc's malloc serves them from per-thread
/// heaps that fragment: on a billion-row epoch the process grew past 4 GiB where it
/// needs a few hundred MiB (and a fixed mmap threshold, which cures that, spends as
/// long in page faults as in reading). mimalloc reuses and returns such memory well.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A panic is a bug of tally (its inputs are all validated): it is reported as one,
/// with exit code 101, after the unwinding has removed any staging directory.
fn main() -> ExitCode {
    STARTED.get_or_init(Instant::now);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // A panic inside a library call that tally contains (polars' Parquet reader
        // on a corrupt file) becomes an error naming the file: nothing to print here.
        if !tally_ingest::panic_is_contained() {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(run) {
        Ok(code) => code,
        Err(_) => fail(
            101,
            "internal error: this is a bug in tally, not in your data, and nothing was published; \
             please report it with the epoch and the message above",
        ),
    }
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify {
            out_dir,
            input,
            rules_dir,
        } => verify(&out_dir, &input, &rules_dir),
        Command::Rules(RulesCommand::Check { file }) => rules_check(&file),
        Command::Rules(RulesCommand::List) => rules_list(),
        Command::Campaign { out_dirs, total } => campaign(&out_dirs, &total),
        Command::Explain {
            out_dir,
            account_id,
            format,
        } => explain(&out_dir, &account_id, format),
        Command::Diff {
            out_a,
            out_b,
            format,
        } => diff(&out_a, &out_b, format),
        Command::Gen {
            devices,
            days,
            hours,
            seed,
            format,
            out,
            force,
            start,
        } => {
            let params = tally_gen::parse_start(&start).map(|start| tally_gen::Params {
                devices,
                length: match (days, hours) {
                    (Some(d), _) => tally_gen::Length::Days(d),
                    (None, h) => tally_gen::Length::Hours(h.unwrap_or(0)),
                },
                seed,
                format: match format {
                    GenFormat::Csv => tally_gen::Format::Csv,
                    GenFormat::Parquet => tally_gen::Format::Parquet,
                },
                start,
            });
            generate(params, &out, force)
        }
        Command::Run {
            epoch_dir,
            out,
            rules,
            rules_dir,
            strict,
            force,
            emit_measurements,
            threads,
            quiet,
        } => {
            if let Some(n) = threads {
                // Polars decodes Parquet with its own pool, sized once at first use.
                std::env::set_var("POLARS_MAX_THREADS", n.max(1).to_string());
            }
            if overlaps(&epoch_dir, &out) {
                return fail(
                    USAGE,
                    format!(
                        "the output directory {} and the epoch directory {} overlap; \
                         write the reports outside the epoch (--force would replace the inputs)",
                        out.display(),
                        epoch_dir.display()
                    ),
                );
            }
            if let Err(e) = tally_report::check_target(&out, force) {
                return fail(USAGE, e);
            }
            let show = !quiet && std::io::stderr().is_terminal();
            let opts = tally_ingest::Options {
                rules_file: rules,
                rules_dir,
                strict,
                progress: show.then_some(progress as tally_ingest::ProgressHook),
                threads: threads.unwrap_or(0).max(usize::from(threads.is_some())),
            };
            let pipeline::Settled {
                loaded,
                settlement,
                files,
            } = match pipeline::settle(&epoch_dir, &opts, emit_measurements) {
                Ok(s) => s,
                Err(e) => return fail(DATA, e),
            };
            if loaded.rules.version != loaded.epoch.rules {
                eprintln!(
                    "tally: note: the epoch names rules {}; settling with {} (version {}) as --rules asks",
                    loaded.epoch.rules, loaded.rules_file.file, loaded.rules.version
                );
            }
            match tally_report::write_atomically(&out, force, &files) {
                Ok(()) => {
                    eprintln!(
                        "tally: epoch {}: {} devices ({} eligible), {} accounts, {} of {} units allocated; wrote {}",
                        loaded.epoch.id,
                        settlement.devices.len(),
                        settlement.devices.iter().filter(|d| d.eligible).count(),
                        settlement.accounts.len(),
                        settlement.allocated_units,
                        settlement.pool_units,
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e @ tally_report::ReportError::Exists(_)) => fail(USAGE, e),
                Err(e) => fail(OUTPUT, e),
            }
        }
    }
}
