//! `tally gen`: a deterministic synthetic epoch, in the format of SPEC 2, for tests,
//! demos and benchmarks of the engine at any scale (up to a million devices and a
//! billion heartbeats).
//!
//! The same parameters give byte-identical files on any machine: every value comes
//! from ChaCha8 streams keyed by the seed (one per device and purpose, so nothing
//! depends on generation order or threads), probabilities are integers, written
//! numbers are built from integers, and the Parquet settings are fixed. CSV and
//! Parquet epochs of one seed hold the same rows, so the engine settles them to the
//! same reports. The realism model (heavy-tailed accounts, diurnal and bursty
//! uptime, the anomalies of SPEC 3.2) is described in [`model`].
//!
//! Heartbeats, the only big table, are streamed minute by minute: memory grows with
//! the number of devices, never with the number of rows.
//!
//! Architecture invariant: the generator only writes synthetic inputs. It never
//! reads an epoch, rules or outputs, and nothing in the engine depends on it.

pub mod model;
mod write;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use model::{Flags, HourPlan, Network};
pub use write::{format_ts, Format};
use write::{Kind, Table, Val};

/// Most devices: the engine's own bound (`tally_core::limits::MAX_DEVICES`).
pub const MAX_DEVICES: u32 = 1_000_000;
/// Longest epoch: the engine's bound of 366 days.
pub const MAX_DAYS: u32 = 366;

/// Malformed rows per table are at most this many: enough to exercise
/// `rejected_rows.csv`, far below v1's `max_rejected_ratio` of 0.001.
const MAX_MALFORMED: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Days(u32),
    Hours(u32),
}

#[derive(Debug, Clone)]
pub struct Params {
    pub devices: u32,
    pub length: Length,
    pub seed: u64,
    pub format: Format,
    /// Unix seconds.
    pub start: i64,
}

/// The default `--start`.
pub const DEFAULT_START: &str = "2024-03-01T00:00:00Z";

impl Params {
    pub fn seconds(&self) -> i64 {
        match self.length {
            Length::Days(d) => i64::from(d) * 86_400,
            Length::Hours(h) => i64::from(h) * 3_600,
        }
    }

    /// `gen-s{seed}-{devices}x{length}`: says how to make the epoch again.
    pub fn epoch_id(&self) -> String {
        let length = match self.length {
            Length::Days(d) => format!("{d}d"),
            Length::Hours(h) => format!("{h}h"),
        };
        format!("gen-s{}-{}x{length}", self.seed, self.devices)
    }

    fn check(&self) -> Result<(), GenError> {
        let bad = |m: String| Err(GenError::Invalid(m));
        if !(1..=MAX_DEVICES).contains(&self.devices) {
            return bad(format!("--devices must be 1 to {MAX_DEVICES}"));
        }
        if !(1..=i64::from(MAX_DAYS) * 86_400).contains(&self.seconds()) {
            return bad(format!("the epoch must last 1 hour to {MAX_DAYS} days"));
        }
        // Registrations go back 400 days and forward 3 past the end; keep every
        // timestamp within 1970..9999.
        let (lo, hi) = (401 * 86_400, 253_402_300_799 - 4 * 86_400);
        if self.start < lo || self.start + self.seconds() > hi {
            return bad("--start must be between 1971-02-06 and 9999-12-27".into());
        }
        Ok(())
    }
}

/// `--start`: an RFC 3339 time, to Unix seconds.
pub fn parse_start(text: &str) -> Result<i64, GenError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|e| GenError::Invalid(format!("--start {text:?}: not an RFC 3339 time: {e}")))
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {message}")]
    Parquet { path: PathBuf, message: String },
}

impl From<tally_report::ReportError> for GenError {
    fn from(e: tally_report::ReportError) -> Self {
        match e {
            tally_report::ReportError::Exists(path) => GenError::Exists(path),
            tally_report::ReportError::Io { path, source } => GenError::Io { path, source },
        }
    }
}

impl GenError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
        move |source| GenError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What one table got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub file: String,
    /// Data rows, malformed ones included.
    pub rows: u64,
    pub malformed: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct GenReport {
    pub id: String,
    pub out: PathBuf,
    pub devices: u32,
    pub accounts: usize,
    pub tables: Vec<TableReport>,
    pub seconds: f64,
}

impl fmt::Display for GenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tally gen: {}: {} accounts", self.id, self.accounts)?;
        for t in &self.tables {
            write!(f, "; {} {} rows", t.file, t.rows)?;
            if t.malformed > 0 {
                write!(f, " ({} malformed)", t.malformed)?;
            }
        }
        let bytes: u64 = self.tables.iter().map(|t| t.bytes).sum();
        write!(
            f,
            "; {:.1} MB written to {} in {:.1} s",
            bytes as f64 / 1e6,
            self.out.display(),
            self.seconds
        )
    }
}

const DEVICES: &[(&str, Kind)] = &[
    ("device_id", Kind::Str),
    ("account_id", Kind::Str),
    ("gpu_model", Kind::Str),
    ("gpu_count", Kind::Int),
    ("hardware_id", Kind::Str),
    ("ip", Kind::Str),
    ("registered_at", Kind::Time),
];
const HEARTBEATS: &[(&str, Kind)] = &[("device_id", Kind::Str), ("ts", Kind::Time)];
const SPEEDTESTS: &[(&str, Kind)] = &[
    ("device_id", Kind::Str),
    ("ts", Kind::Time),
    ("download_mbps", Kind::Str),
    ("upload_mbps", Kind::Str),
    ("latency_ms", Kind::Str),
];
const BENCHMARKS: &[(&str, Kind)] = &[
    ("device_id", Kind::Str),
    ("ts", Kind::Time),
    ("gpu_model", Kind::Str),
    ("hardware_id", Kind::Str),
    ("tflops", Kind::Str),
];
const RENTALS: &[(&str, Kind)] = &[
    ("rental_id", Kind::Str),
    ("device_id", Kind::Str),
    ("renter_account_id", Kind::Str),
    ("start", Kind::Time),
    ("end", Kind::Time),
];
const OVERRIDES: &[(&str, Kind)] = &[
    ("device_id", Kind::Str),
    ("action", Kind::Str),
    ("ticket", Kind::Str),
    ("note", Kind::Str),
];

/// An integer count of `10^-places` as an exact decimal: (52317, 2) is `523.17`.
fn decimal(v: u64, places: u32) -> String {
    let p = 10u64.pow(places);
    format!("{}.{:0w$}", v / p, v % p, w = places as usize)
}

/// Where a table's malformed rows go: `n` of them, evenly after positions of
/// `0..positions` (minutes for heartbeats, devices for the others).
struct Malformed {
    n: u64,
    positions: u64,
    done: u64,
}

impl Malformed {
    /// One malformed row per `per` of `units` (device-minutes, devices), at most
    /// [`MAX_MALFORMED`].
    fn new(units: u64, per: u64, positions: u64) -> Malformed {
        Malformed {
            n: (units / per).min(MAX_MALFORMED),
            positions,
            done: 0,
        }
    }

    /// The kinds (0, 1, 2, ...) of the malformed rows due after position `at`.
    fn due(&mut self, at: u64) -> impl Iterator<Item = u64> + '_ {
        std::iter::from_fn(move || {
            let next = (self.done + 1) * self.positions / (self.n + 1);
            (self.done < self.n && next == at).then(|| {
                self.done += 1;
                self.done - 1
            })
        })
    }
}

/// Writes the epoch into `out`, all or nothing: built in a temporary directory
/// beside it, then renamed (the reports' [`tally_report::Staging`]). Refuses an
/// existing `out` unless `force`.
///
/// The tables are not fsynced: a generated epoch can always be generated again, and
/// syncing gigabytes would double the run time.
pub fn generate(params: &Params, out: &Path, force: bool) -> Result<GenReport, GenError> {
    let began = Instant::now();
    params.check()?;
    if !force && fs::symlink_metadata(out).is_ok() {
        return Err(GenError::Exists(out.to_path_buf()));
    }
    let staging = tally_report::Staging::new(out)?;
    let dir = staging.path();

    let start = params.start;
    let end = start + params.seconds();
    let net = Network::new(params.seed, params.devices, start, end);
    let epoch_toml = format!(
        "# Synthetic epoch written by `tally gen --devices {} --{} --seed {} --start {}`.\n\
         id = \"{}\"\nstart = \"{}\"\nend = \"{}\"\npool = \"32000000\"\ndecimals = 8\nrules = \"v1\"\n",
        params.devices,
        match params.length {
            Length::Days(d) => format!("days {d}"),
            Length::Hours(h) => format!("hours {h}"),
        },
        params.seed,
        format_ts(start),
        params.epoch_id(),
        format_ts(start),
        format_ts(end),
    );
    let toml_path = dir.join("epoch.toml");
    fs::write(&toml_path, epoch_toml).map_err(GenError::io(&toml_path))?;

    let f = params.format;
    let tables = vec![
        devices(&net, dir, f)?,
        heartbeats(&net, dir, f)?,
        speedtests(&net, dir, f)?,
        benchmarks(&net, dir, f)?,
        rentals(&net, dir, f)?,
        overrides(&net, dir, f)?,
    ];
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(GenError::io(dir))?;
    }
    staging.publish(force)?;
    Ok(GenReport {
        id: params.epoch_id(),
        out: out.to_path_buf(),
        devices: params.devices,
        accounts: net.accounts.len(),
        tables: tables.into_iter().flatten().collect(),
        seconds: began.elapsed().as_secs_f64(),
    })
}

fn report(
    table: Table,
    stem: &str,
    format: Format,
    malformed: u64,
) -> Result<TableReport, GenError> {
    let (rows, bytes) = table.finish()?;
    Ok(TableReport {
        file: format!("{stem}.{}", format.extension()),
        rows,
        malformed,
        bytes,
    })
}

fn devices(net: &Network, dir: &Path, format: Format) -> Result<Option<TableReport>, GenError> {
    let mut t = Table::create(dir, "devices", format, DEVICES)?;
    for (i, d) in net.devices.iter().enumerate() {
        let i = i as u32;
        t.row(&[
            Val::Str(net.device_id(i)),
            Val::Str(&net.accounts[d.account as usize].id),
            Val::Str(model::model_name(d.model)),
            Val::Int(i32::from(d.gpu_count)),
            Val::Str(&net.hardware_id(d.hardware_of)),
            Val::Str(&d.ip.to_string()),
            Val::Time(d.registered_at),
        ])?;
    }
    report(t, "devices", format, 0).map(Some)
}

/// An id that is not in the registry (a deregistered machine still reporting).
fn unknown_device(net: &Network, k: u64) -> String {
    model::device_id(net.devices.len() as u32 + 17 + k as u32)
}

/// Streams the heartbeats minute by minute: for each hour, every device's chain
/// is stepped through the hour (a 64-bit mask of its online minutes), then each
/// minute writes one row per device online in it. Memory: one plan per device.
fn heartbeats(net: &Network, dir: &Path, format: Format) -> Result<Option<TableReport>, GenError> {
    let n = net.devices.len();
    let hours = ((net.end - net.start) / 3_600) as u32;
    let minutes = u64::from(hours) * 60;
    let mut plans: Vec<HourPlan> = net.devices.iter().map(HourPlan::new).collect();
    let mut bad = Malformed::new(n as u64 * minutes, 50_000, minutes);
    let mut t = Table::create(dir, "heartbeats", format, HEARTBEATS)?;
    for hour in 0..hours {
        for (i, plan) in plans.iter_mut().enumerate() {
            net.plan_hour(i as u32, hour, plan);
        }
        for m in 0..60u32 {
            let minute = u64::from(hour * 60 + m);
            let t0 = net.start + minute as i64 * 60;
            for (i, plan) in plans.iter().enumerate() {
                if plan.mask >> m & 1 == 1 {
                    let ts = t0 + i64::from(plan.second(m));
                    t.row(&[Val::Str(net.device_id(i as u32)), Val::Time(ts)])?;
                }
            }
            for kind in bad.due(minute) {
                let ts = t0 + 30;
                let device = net.device_id((minute as usize * 7_919 % n) as u32);
                match kind % 3 {
                    0 => t.row(&[Val::Str(&unknown_device(net, kind)), Val::Time(ts)])?,
                    // Milliseconds where seconds belong: 13 digits.
                    1 => t.row(&[Val::Str(device), Val::BadTime(&(ts * 1_000).to_string())])?,
                    _ => {
                        let text = format_ts(ts).replace('T', " ").replace('Z', "");
                        t.row(&[Val::Str(device), Val::BadTime(&text)])?
                    }
                }
            }
        }
    }
    let malformed = bad.n;
    report(t, "heartbeats", format, malformed).map(Some)
}

fn speedtests(net: &Network, dir: &Path, format: Format) -> Result<Option<TableReport>, GenError> {
    let mut t = Table::create(dir, "speedtests", format, SPEEDTESTS)?;
    let mut bad = Malformed::new(net.devices.len() as u64, 1_000, net.devices.len() as u64);
    let mut rows = Vec::new();
    for i in 0..net.devices.len() as u32 {
        let id = net.device_id(i);
        net.speedtests(i, &mut rows);
        for s in &rows {
            t.row(&[
                Val::Str(id),
                Val::Time(s.ts),
                Val::Str(&decimal(s.download, 2)),
                Val::Str(&decimal(s.upload, 2)),
                Val::Str(&decimal(s.latency, 1)),
            ])?;
        }
        for kind in bad.due(u64::from(i)) {
            let ts = net.start + 600;
            let (dev, time, down, lat) = match kind % 3 {
                0 => (unknown_device(net, kind), Val::Time(ts), "310.50", "18.0"),
                1 => (id.to_string(), Val::Time(ts), "NaN", "18.0"),
                _ => (
                    id.to_string(),
                    Val::BadTime("03/01/2024 10:15"),
                    "310.50",
                    "-1",
                ),
            };
            t.row(&[
                Val::Str(&dev),
                time,
                Val::Str(down),
                Val::Str("95.20"),
                Val::Str(lat),
            ])?;
        }
    }
    let malformed = bad.n;
    report(t, "speedtests", format, malformed).map(Some)
}

fn benchmarks(net: &Network, dir: &Path, format: Format) -> Result<Option<TableReport>, GenError> {
    let mut t = Table::create(dir, "benchmarks", format, BENCHMARKS)?;
    let mut bad = Malformed::new(net.devices.len() as u64, 2_000, net.devices.len() as u64);
    let mut rows = Vec::new();
    for i in 0..net.devices.len() as u32 {
        let id = net.device_id(i);
        net.benchmarks(i, &mut rows);
        for b in &rows {
            t.row(&[
                Val::Str(id),
                Val::Time(b.ts),
                Val::Str(model::model_name(b.model)),
                Val::Str(&b.hardware),
                Val::Str(&decimal(b.tflops, 2)),
            ])?;
        }
        for kind in bad.due(u64::from(i)) {
            let hw = net.hardware_id(i);
            let (dev, model, tflops) = match kind % 3 {
                0 => (unknown_device(net, kind), "RTX-4090", "160.31"),
                1 => (id.to_string(), "RTX 4090", "160.31"),
                _ => (id.to_string(), "RTX-4090", "1.6e2"),
            };
            let ts = Val::Time(net.start + 900);
            t.row(&[
                Val::Str(&dev),
                ts,
                Val::Str(model),
                Val::Str(&hw),
                Val::Str(tflops),
            ])?;
        }
    }
    let malformed = bad.n;
    report(t, "benchmarks", format, malformed).map(Some)
}

fn rentals(net: &Network, dir: &Path, format: Format) -> Result<Option<TableReport>, GenError> {
    let mut t = Table::create(dir, "rentals", format, RENTALS)?;
    let mut bad = Malformed::new(net.devices.len() as u64, 20_000, net.devices.len() as u64);
    let mut rows = Vec::new();
    for i in 0..net.devices.len() as u32 {
        let id = net.device_id(i);
        net.rentals(i, &mut rows);
        for r in &rows {
            t.row(&[
                Val::Str(&r.id),
                Val::Str(id),
                Val::Str(&r.renter),
                Val::Time(r.start),
                Val::Time(r.end),
            ])?;
        }
        for kind in bad.due(u64::from(i)) {
            let start = net.start + 3_600;
            let (dev, end) = match kind % 3 {
                // Ends when it starts.
                0 => (id.to_string(), Val::Time(start)),
                1 => (unknown_device(net, kind), Val::Time(start + 7_200)),
                _ => (id.to_string(), Val::BadTime("never")),
            };
            let rental = format!("rent-bad-{kind}");
            let renter = &net.renters[0];
            t.row(&[
                Val::Str(&rental),
                Val::Str(&dev),
                Val::Str(renter),
                Val::Time(start),
                end,
            ])?;
        }
    }
    let malformed = bad.n;
    report(t, "rentals", format, malformed).map(Some)
}

/// Two dispute decisions, for epochs of 100 devices or more: a device whose card
/// was swapped under warranty (HARDWARE_MISMATCH) reinstated, and an ordinary one
/// excluded by hand.
fn overrides(net: &Network, dir: &Path, format: Format) -> Result<Option<TableReport>, GenError> {
    if net.devices.len() < 100 {
        return Ok(None);
    }
    let swapped = net
        .devices
        .iter()
        .position(|d| d.flags == Flags(Flags::HARDWARE_MISMATCH) && d.registered_at < net.start);
    let resold = net
        .devices
        .iter()
        .position(|d| d.flags == Flags::default() && !d.farm && d.registered_at < net.start);
    let mut t = Table::create(dir, "overrides", format, OVERRIDES)?;
    if let Some(i) = swapped {
        t.row(&[
            Val::Str(net.device_id(i as u32)),
            Val::Str("reinstate"),
            Val::Str("DSP-1042"),
            Val::Str("GPU replaced under warranty, new serial confirmed by support"),
        ])?;
    }
    if let Some(i) = resold {
        t.row(&[
            Val::Str(net.device_id(i as u32)),
            Val::Str("exclude"),
            Val::Str("DSP-1077"),
            Val::Str(
                "owner reported the machine stolen on day 1; \"online\" since then is not theirs",
            ),
        ])?;
    }
    report(t, "overrides", format, 0).map(Some)
}
