//! Fuzz target bodies for tally: one function per target, each taking the fuzzer's
//! bytes. They never panic by design: a panic (or an abort, a hang, an unbounded
//! allocation) found through them is a bug of tally.
//!
//! The cargo-fuzz project in `fuzz/` wraps each in a one-line `fuzz_target!`; the
//! workspace test `tests/fuzz_corpus.rs` replays the regression corpus in `corpus/`
//! through them on stable Rust, and `tests/never_panics.rs` proptests the engine.
//!
//! Every call builds its epoch in a temporary directory of its own (under `/dev/shm`
//! when there is one: tmpfs keeps a fuzzer fast) and removes it on return.

use std::path::{Path, PathBuf};

use tally_core::{Epoch, Rules};
use tally_ingest::{IngestError, LoadedEpoch, Options};

pub mod gen;

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the cargo-fuzz target and the corpus directory) and body.
pub const TARGETS: &[(&str, Body)] = &[
    ("csv_table", csv_table),
    ("parquet_table", parquet_table),
    ("epoch_toml", epoch_toml),
    ("rules", rules),
    ("run", run),
];

/// The fixed small valid epoch the table targets put their bytes into: two hours of
/// 300-second slots, four devices of two accounts (a hardware id and an IP shared),
/// with enough events that some devices are eligible.
pub const BASE_EPOCH: &str = "id = \"fuzz\"\n\
start = \"2024-03-01T00:00:00Z\"\n\
end = \"2024-03-01T02:00:00Z\"\n\
pool = \"1000\"\n\
decimals = 2\n\
rules = \"v1\"\n";

/// The base epoch's tables, in [`tally_ingest::TABLES`] order (`overrides` last).
pub const BASE_TABLES: [(&str, &str); 6] = [
    (
        "devices",
        "device_id,account_id,gpu_model,gpu_count,hardware_id,ip,registered_at\n\
d01,acct-a,RTX-4090,1,hw01,10.0.0.1,2024-02-01T00:00:00Z\n\
d02,acct-a,H100-80GB,2,hw02,2001:db8::2,2024-02-01T00:00:00Z\n\
d03,acct-b,T4,1,hw03,10.0.0.3,1706745600\n\
d04,acct-b,L40S,1,hw01,10.0.0.3,2024-03-01T01:00:00Z\n",
    ),
    (
        "heartbeats",
        "device_id,ts\n\
d01,2024-03-01T00:00:00Z\n\
d01,2024-03-01T00:05:00Z\n\
d01,2024-03-01T00:10:30Z\n\
d01,2024-03-01T01:59:59Z\n\
d02,2024-03-01T00:00:01Z\n\
d02,2024-03-01T00:30:00+01:00\n\
d02,1709251500\n\
d02,2024-03-01t00:15:00.999z\n\
d03,2024-03-01T00:20:00Z\n\
d03,2024-03-01T00:25:00Z\n\
d03,2024-03-01T00:30:00Z\n\
d04,2024-03-01T00:40:00Z\n\
d04,2024-03-01T01:40:00Z\n\
d04,2024-03-02T00:00:00Z\n",
    ),
    (
        "speedtests",
        "device_id,ts,download_mbps,upload_mbps,latency_ms\n\
d01,2024-03-01T00:10:00Z,500,250,30\n\
d01,2024-03-01T01:10:00Z,500.0,250.000,30\n\
d02,2024-03-01T00:10:00Z,100,50,60\n\
d02,2024-03-01T00:50:00Z,200.5,75,10.25\n\
d03,2024-03-01T00:10:00Z,25,10,120\n\
d03,2024-03-01T00:11:00Z,24.999999999,10,120\n\
d04,2024-03-01T01:45:00Z,1000,1000,1\n",
    ),
    (
        "benchmarks",
        "device_id,ts,gpu_model,hardware_id,tflops\n\
d01,2024-03-01T00:15:00Z,RTX-4090,hw01,165.2\n\
d02,2024-03-01T00:15:00Z,H100-80GB,hw02,1137.81\n\
d03,2024-03-01T00:15:00Z,T4,hw09,30\n\
d04,2024-03-01T01:15:00Z,RTX-4090,hw01,362.0\n",
    ),
    (
        "rentals",
        "rental_id,device_id,renter_account_id,start,end\n\
r1,d01,renter-x,2024-02-29T23:00:00Z,2024-03-01T01:00:00Z\n\
r2,d01,renter-y,2024-03-01T00:30:00Z,2024-03-01T01:30:00Z\n\
r3,d02,acct-a,2024-03-01T00:00:00Z,2024-03-01T01:00:00Z\n\
r4,d03,renter-x,1709254800,1709258400\n",
    ),
    (
        "overrides",
        "device_id,action,ticket,note\n\
d04,reinstate,T-1,\"shared hardware, \"\"checked\"\" on a call\"\n",
    ),
];

/// libfuzzer-sys's panic hook aborts at once, before any unwinding, so a panic that
/// tally catches at a boundary (polars' Parquet reader, see `tally_ingest`'s
/// `polars_call`) would still end the fuzzer. The default hook lets it unwind; a panic
/// that leaves the body still aborts, in libfuzzer-sys's `catch_unwind` around it.
fn unwinding_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| drop(std::panic::take_hook()));
}

/// A temporary directory for one call, on tmpfs when there is one.
fn tempdir() -> tempfile::TempDir {
    unwinding_panics();
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("tally-fuzz-");
        b
    };
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    };
    dir.expect("cannot create a temporary directory (not an input-dependent failure)")
}

/// The epoch directory inside a scratch directory: it holds only the epoch's files
/// (tally refuses any other entry); rules and the like go beside it.
fn epoch_in(dir: &tempfile::TempDir) -> PathBuf {
    let epoch = dir.path().join("epoch");
    std::fs::create_dir(&epoch).expect("cannot create the epoch directory");
    epoch
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes)
        .unwrap_or_else(|e| panic!("cannot write {} (not input-dependent): {e}", path.display()));
}

/// Writes the published rules into `<dir>/rules/` and returns options reading them
/// from there (so runs do not depend on the working directory).
fn options(dir: &Path, threads: usize) -> Options {
    let rules_dir = dir.join("rules");
    std::fs::create_dir(&rules_dir).expect("cannot create the rules directory");
    for (version, text) in tally_ingest::PUBLISHED_RULES {
        write(&rules_dir.join(format!("{version}.toml")), text.as_bytes());
    }
    Options {
        rules_dir,
        threads,
        ..Options::default()
    }
}

/// Writes the base epoch into `dir` (which must exist), leaving out table `skip`.
fn write_base(dir: &Path, skip: Option<&str>) {
    write(&dir.join("epoch.toml"), BASE_EPOCH.as_bytes());
    for (stem, text) in BASE_TABLES {
        if Some(stem) != skip {
            write(&dir.join(format!("{stem}.csv")), text.as_bytes());
        }
    }
}

/// The table a table target's first byte selects.
pub fn table_of(selector: u8) -> &'static str {
    BASE_TABLES[usize::from(selector) % BASE_TABLES.len()].0
}

/// The whole pipeline of `tally run` (crates/cli/pipeline.rs), in memory: load,
/// settle (which splits), render. Checks the invariants of a successful run.
pub fn settle_and_render(
    dir: &Path,
    opts: &Options,
) -> Result<Vec<(String, Vec<u8>)>, IngestError> {
    let loaded = tally_ingest::load(dir, opts)?;
    Ok(check_and_render(&loaded))
}

/// Settles and renders a loaded epoch, asserting what must hold of every run:
/// - the split allocates exactly the pool when any account has points, nothing
///   otherwise (SPEC 4), and the accounts' units add up to what is allocated;
/// - rendering is deterministic (twice, the same bytes).
pub fn check_and_render(loaded: &LoadedEpoch) -> Vec<(String, Vec<u8>)> {
    let settlement = loaded.settle();
    let units: u128 = settlement.accounts.iter().map(|a| a.share.units()).sum();
    assert_eq!(units, settlement.allocated_units, "account units add up");
    let eligible_points = settlement.accounts.iter().any(|a| a.weight > 0);
    assert_eq!(eligible_points, settlement.total_weight > 0);
    if eligible_points {
        assert_eq!(
            settlement.allocated_units, settlement.pool_units,
            "the whole pool is allocated when any account has points"
        );
    } else {
        assert_eq!(
            settlement.allocated_units, 0,
            "nothing allocated without points"
        );
    }
    assert_eq!(settlement.pool_units, loaded.epoch.pool_units);
    for d in &settlement.devices {
        assert!(
            d.eligible || d.points.is_zero(),
            "an excluded device earns nothing"
        );
    }
    assert_eq!(loaded.settle(), settlement, "settling is deterministic");
    let render = |s: &tally_core::Settlement| {
        let run = tally_report::Run {
            epoch: &loaded.epoch,
            rules: &loaded.rules,
            rules_file: &loaded.rules_file,
            rules_text: &loaded.rules_text,
            settlement: s,
            rejected: &loaded.rejected,
            counts: &loaded.counts,
            inputs: &loaded.inputs,
        };
        tally_report::render_all(&run, "fuzz", true)
    };
    let files = render(&settlement);
    assert!(files == render(&settlement), "rendering is deterministic");
    files
}

/// `csv_table`: the bytes after the first are one CSV table of the base epoch (the
/// first byte picks which); the full load, settle and render.
pub fn csv_table(data: &[u8]) {
    let _ = table_run(data, "csv");
}

/// `parquet_table`: as [`csv_table`], the bytes after the first being a `.parquet`
/// file in place of the CSV table.
pub fn parquet_table(data: &[u8]) {
    let _ = table_run(data, "parquet");
}

/// The run of a table target (`extension` "csv" or "parquet"): `None` for an empty
/// input, else the outcome, an error as its message.
pub fn table_run(data: &[u8], extension: &str) -> Option<Result<(), String>> {
    let (&selector, table) = data.split_first()?;
    let stem = table_of(selector);
    let dir = tempdir();
    let epoch = epoch_in(&dir);
    write_base(&epoch, Some(stem));
    write(&epoch.join(format!("{stem}.{extension}")), table);
    // Two workers: the hand-over between threads is exercised too.
    let r = settle_and_render(&epoch, &options(dir.path(), 2));
    Some(r.map(drop).map_err(|e| e.to_string()))
}

/// `epoch_toml`: the bytes as `epoch.toml`, through the core parser. Text that is not
/// UTF-8 is refused before parsing (as `tally_ingest` does); a parsed epoch is checked
/// against both published rules.
pub fn epoch_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(epoch) = Epoch::parse("epoch.toml", text) else {
        return;
    };
    assert!(epoch.start < epoch.end);
    assert!(epoch.pool_units > 0);
    let pool = epoch.pool_text();
    assert_eq!(
        tally_core::epoch::pool_units(&pool, epoch.decimals),
        Some(epoch.pool_units),
        "the pool's text reads back as the same units"
    );
    for (version, rules_text) in tally_ingest::PUBLISHED_RULES {
        let rules = Rules::parse(&format!("{version}.toml"), rules_text).expect("published rules");
        let _ = epoch.total_slots(&rules);
    }
}

/// `rules`: the bytes as a rules file. Parsed and validated; when valid, the base epoch
/// is settled with it (given as `--rules`, so any version is taken), which checks the
/// promise of `limits.rs` that validated rules cannot overflow the scoring.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = Rules::parse("rules.toml", text) else {
        return;
    };
    let _ = tally_ingest::publication(&rules, "00");
    let dir = tempdir();
    let epoch = epoch_in(&dir);
    write_base(&epoch, None);
    let file = dir.path().join("fuzz-rules.toml");
    write(&file, data);
    let opts = Options {
        rules_file: Some(file),
        threads: 1,
        ..options(dir.path(), 1)
    };
    let _ = settle_and_render(&epoch, &opts);
}

/// `run`: the bytes drive a small generator of epochs ([`gen`]) whose values are
/// mostly valid with invalid ones mixed in; the whole run, checked, then loaded again
/// with another number of threads, which must give the same bytes (SPEC 5).
pub fn run(data: &[u8]) {
    let dir = tempdir();
    let epoch = epoch_in(&dir);
    gen::write_epoch(data, &epoch);
    let one = settle_and_render(&epoch, &options_in(dir.path(), "rules-1", 1));
    let three = settle_and_render(&epoch, &options_in(dir.path(), "rules-3", 3));
    match (one, three) {
        (Ok(a), Ok(b)) => assert!(a == b, "outputs do not depend on the thread count"),
        (Err(a), Err(b)) => assert_eq!(
            a.to_string(),
            b.to_string(),
            "errors do not depend on the thread count"
        ),
        (a, b) => panic!(
            "one thread and three disagree: {:?} vs {:?}",
            a.err().map(|e| e.to_string()),
            b.err().map(|e| e.to_string())
        ),
    }
}

/// [`options`] with the rules in a sub-directory of its own.
fn options_in(dir: &Path, sub: &str, threads: usize) -> Options {
    let d: PathBuf = dir.join(sub);
    std::fs::create_dir(&d).expect("cannot create a directory");
    options(&d, threads)
}

/// The seed corpus of the table targets for one epoch directory: each of its CSV
/// tables prefixed with the byte that selects it.
pub fn table_seeds(epoch_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (i, (stem, _)) in BASE_TABLES.iter().enumerate() {
        if let Ok(bytes) = std::fs::read(epoch_dir.join(format!("{stem}.csv"))) {
            let mut seed = vec![i as u8];
            seed.extend(bytes);
            seeds.push((stem.to_string(), seed));
        }
    }
    seeds
}
