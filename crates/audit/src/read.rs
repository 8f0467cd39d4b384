//! Reading a published OUT_DIR: `allocations.csv`, `devices.csv`, `exclusions.csv`,
//! `summary.json`, `rules.toml` and the inputs of `manifest.json`, nothing else, so anyone holding the files can
//! audit them. Every value is parsed exactly (decimals as `Decimal`, units as
//! integers), every text field has its control characters escaped on the way in, and
//! the files are checked against each other: a set of files `tally run` did not
//! write together is refused rather than explained.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use tally_core::exact::units_text;
use tally_core::limits::{
    MAX_EPOCH_SECONDS, MAX_GPU_COUNT, MAX_POOL_UNITS_DIGITS, MAX_TOKEN_DECIMALS, MIN_SLOT_SECONDS,
};
use tally_core::value::excerpt;
use tally_core::Rules;

use crate::error::{AuditError, Result};

/// Longest text field kept from a file; longer ones end in `…`.
const MAX_FIELD_CHARS: usize = 2_000;

/// One row of `allocations.csv`.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub line: u64,
    pub account_id: String,
    pub devices: u64,
    pub eligible_devices: u64,
    pub points: Decimal,
    pub token_units: u128,
    pub tokens: String,
    pub floor_units: u128,
    pub leftover_unit: bool,
}

/// One row of `devices.csv`: the columns an audit needs.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub line: u64,
    pub device_id: String,
    pub account_id: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    pub registered_at: String,
    pub heartbeats: u64,
    pub online_slots: u64,
    pub longest_streak_slots: u64,
    pub total_slots: u64,
    pub uptime_ratio: Decimal,
    pub speedtests: u64,
    pub median_download_mbps: Option<Decimal>,
    pub median_upload_mbps: Option<Decimal>,
    pub median_latency_ms: Option<Decimal>,
    pub bandwidth_tier: Option<String>,
    pub bandwidth_multiplier: Decimal,
    pub benchmarks: u64,
    pub median_tflops: Option<Decimal>,
    pub perf_ratio: Option<Decimal>,
    pub perf_factor: Decimal,
    pub rental_seconds: u64,
    pub self_rental_seconds: u64,
    pub uptime_points: Decimal,
    pub rental_points: Decimal,
    pub points: Decimal,
    pub eligible: bool,
    /// Sorted codes: exclusion reasons, notes and dispute decisions.
    pub reasons: Vec<String>,
}

/// One row of `exclusions.csv`.
#[derive(Debug, Clone)]
pub struct ExclusionRow {
    pub device_id: String,
    pub reason: String,
    pub effect: String,
    pub evidence: String,
}

/// The epoch and the totals of `summary.json`.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub epoch_id: String,
    pub start: String,
    pub end: String,
    pub slot_seconds: i64,
    pub total_slots: u64,
    pub pool: String,
    pub decimals: u32,
    pub rules_version: String,
    pub total_points: Decimal,
    /// `T`, the sum of every account's `P(a)`.
    pub total_weight: u128,
    pub pool_units: u128,
    pub allocated_units: u128,
}

/// One input file of the run, as `manifest.json` names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InputFile {
    pub file: String,
    pub sha256: String,
}

/// Everything an audit reads from one OUT_DIR.
#[derive(Debug, Clone)]
pub struct Published {
    /// Where the files were read from; used in error messages only.
    pub dir: PathBuf,
    pub info: RunInfo,
    pub rules: Rules,
    pub rules_text: String,
    /// Sorted by `account_id`.
    pub accounts: Vec<AccountRow>,
    /// Sorted by `device_id`.
    pub devices: Vec<DeviceRow>,
    pub exclusions: Vec<ExclusionRow>,
    /// The inputs `manifest.json` lists, by file name.
    pub inputs: Vec<InputFile>,
}

impl Published {
    pub fn load(dir: &Path) -> Result<Published> {
        let info = read_summary(dir)?;
        let rules_path = dir.join("rules.toml");
        let rules_text = read_text(&rules_path)?;
        let rules = Rules::parse(&rules_path.display().to_string(), &rules_text)?;
        let p = Published {
            dir: dir.to_path_buf(),
            accounts: read_accounts(dir)?,
            devices: read_devices(dir)?,
            exclusions: read_exclusions(dir)?,
            inputs: read_manifest_inputs(dir)?,
            info,
            rules,
            rules_text,
        };
        p.check_agreement()?;
        Ok(p)
    }

    /// The path of one of the files, for messages.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn account(&self, account_id: &str) -> Option<&AccountRow> {
        self.accounts.iter().find(|a| a.account_id == account_id)
    }

    pub fn devices_of<'a>(&'a self, account_id: &'a str) -> impl Iterator<Item = &'a DeviceRow> {
        self.devices
            .iter()
            .filter(move |d| d.account_id == account_id)
    }

    pub fn exclusions_of<'a>(
        &'a self,
        device_id: &'a str,
    ) -> impl Iterator<Item = &'a ExclusionRow> {
        self.exclusions
            .iter()
            .filter(move |e| e.device_id == device_id)
    }

    /// The files must tell one story: every device's account is allocated, the
    /// account rows add up their devices, the units add up to `allocated_units`,
    /// and the number formats are those of the rules.
    fn check_agreement(&self) -> Result<()> {
        let alloc = self.file("allocations.csv");
        let devices = self.file("devices.csv");
        let pd = self.rules.points_decimals;
        let mut sums: BTreeMap<&str, (u64, u64, Decimal)> = BTreeMap::new();
        for d in &self.devices {
            if d.points.scale() != pd || d.uptime_points.scale() != pd {
                return Err(line_err(
                    &devices,
                    d.line,
                    format!("points must have points_decimals = {pd} places"),
                ));
            }
            if d.total_slots != self.info.total_slots {
                return Err(line_err(
                    &devices,
                    d.line,
                    format!(
                        "total_slots differs from summary.json's {}",
                        self.info.total_slots
                    ),
                ));
            }
            if d.points != d.uptime_points + d.rental_points {
                return Err(line_err(
                    &devices,
                    d.line,
                    "points is not uptime_points + rental_points",
                ));
            }
            let s = sums.entry(&d.account_id).or_insert((0, 0, Decimal::ZERO));
            s.0 += 1;
            s.1 += u64::from(d.eligible);
            s.2 += d.points;
        }
        for a in &self.accounts {
            let (n, eligible, points) =
                sums.remove(a.account_id.as_str())
                    .unwrap_or((0, 0, Decimal::ZERO));
            if (n, eligible, points) != (a.devices, a.eligible_devices, a.points)
                || a.points.scale() != pd
            {
                return Err(line_err(
                    &alloc,
                    a.line,
                    format!(
                        "account {} does not add up: devices.csv has {n} devices, {eligible} eligible, \
                         {points} points; allocations.csv says {}, {}, {}",
                        a.account_id, a.devices, a.eligible_devices, a.points
                    ),
                ));
            }
            if a.tokens != units_text(a.token_units, self.info.decimals) {
                return Err(line_err(
                    &alloc,
                    a.line,
                    format!(
                        "tokens {} is not token_units {} with {} decimals",
                        a.tokens, a.token_units, self.info.decimals
                    ),
                ));
            }
            if a.token_units != a.floor_units + u128::from(a.leftover_unit) {
                return Err(line_err(
                    &alloc,
                    a.line,
                    "token_units is not floor_units + leftover_unit",
                ));
            }
        }
        if let Some((account, _)) = sums.into_iter().next() {
            return Err(file_err(
                &alloc,
                format!("no row for account {account}, which owns devices in devices.csv"),
            ));
        }
        let allocated = self
            .accounts
            .iter()
            .try_fold(0u128, |sum, a| sum.checked_add(a.token_units))
            .ok_or_else(|| file_err(&alloc, "token_units add up to more than any pool"))?;
        let total: Decimal = self.accounts.iter().map(|a| a.points).sum();
        if allocated != self.info.allocated_units || total != self.info.total_points {
            return Err(file_err(
                &alloc,
                format!(
                    "the accounts add up to {allocated} units and {total} points; summary.json says \
                     allocated_units {} and total_points {}",
                    self.info.allocated_units, self.info.total_points
                ),
            ));
        }
        Ok(())
    }
}

fn line_err(file: &str, line: u64, message: impl Into<String>) -> AuditError {
    AuditError::Line {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

fn file_err(file: &str, message: impl Into<String>) -> AuditError {
    AuditError::File {
        file: file.to_string(),
        message: message.into(),
    }
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| AuditError::Io {
        file: path.display().to_string(),
        source,
    })
}

/// A text field as it may be printed: control characters escaped, length bounded.
pub fn clean(s: &str) -> String {
    excerpt(s, MAX_FIELD_CHARS)
}

/// One CSV record, its fields looked up by column name.
struct Record<'a> {
    file: &'a str,
    line: u64,
    columns: &'a HashMap<String, usize>,
    fields: csv::StringRecord,
}

impl Record<'_> {
    fn err(&self, column: &str, message: impl std::fmt::Display) -> AuditError {
        line_err(self.file, self.line, format!("column {column}: {message}"))
    }

    /// The field as tally wrote it, before the formula escape of published CSV.
    fn raw(&self, column: &str) -> &str {
        // `read_csv` checked that every column asked for exists.
        tally_report::unescape_cell(&self.fields[self.columns[column]])
    }

    fn text(&self, column: &str) -> String {
        clean(self.raw(column))
    }

    fn int<T: FromStr>(&self, column: &str) -> Result<T> {
        let s = self.raw(column);
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(v) = s.parse() {
                return Ok(v);
            }
        }
        Err(self.err(
            column,
            format!("expected a whole number, got {:?}", clean(s)),
        ))
    }

    /// A points value or a ratio: at most 20 digits before the point.
    fn dec(&self, column: &str) -> Result<Decimal> {
        self.opt_dec(column, 20)?
            .ok_or_else(|| self.err(column, "expected a decimal, got an empty field"))
    }

    /// A median of an input column: at most 12 digits before the point (SPEC 2.1).
    fn median(&self, column: &str) -> Result<Option<Decimal>> {
        self.opt_dec(column, 12)
    }

    /// A plain, non-negative decimal with at most `max_int` digits before the point
    /// and 9 after, or an empty field. The bounds keep every sum and product exact.
    fn opt_dec(&self, column: &str, max_int: usize) -> Result<Option<Decimal>> {
        let s = self.raw(column);
        if s.is_empty() {
            return Ok(None);
        }
        let plain = s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && s.bytes().filter(|&b| b == b'.').count() <= 1
            && s.split('.').all(|part| !part.is_empty())
            && s.split('.').next().is_some_and(|int| int.len() <= max_int)
            && s.split('.').nth(1).is_none_or(|frac| frac.len() <= 9);
        match Decimal::from_str_exact(s) {
            Ok(d) if plain => Ok(Some(d)),
            _ => Err(self.err(
                column,
                format!("expected a plain decimal, got {:?}", clean(s)),
            )),
        }
    }

    fn boolean(&self, column: &str) -> Result<bool> {
        match self.raw(column) {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(self.err(
                column,
                format!("expected true or false, got {:?}", clean(other)),
            )),
        }
    }

    fn bounded(&self, column: &str, value: u64, max: u64) -> Result<u64> {
        if value > max {
            return Err(self.err(column, format!("{value} is above {max}")));
        }
        Ok(value)
    }
}

/// Reads a CSV output; `columns` must all be in its header (others are ignored).
fn read_csv<T>(
    path: &Path,
    columns: &[&str],
    mut row: impl FnMut(&Record) -> Result<T>,
) -> Result<Vec<T>> {
    let file = path.display().to_string();
    let bytes = fs::read(path).map_err(|source| AuditError::Io {
        file: file.clone(),
        source,
    })?;
    let csv_err = |e: csv::Error| match e.position() {
        Some(p) => line_err(&file, p.line(), e.to_string()),
        None => file_err(&file, e.to_string()),
    };
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header = reader.headers().map_err(csv_err)?.clone();
    let index: HashMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_string(), i))
        .collect();
    for c in columns {
        if !index.contains_key(*c) {
            return Err(file_err(&file, format!("no column {c} in the header")));
        }
    }
    let mut out = Vec::new();
    for rec in reader.records() {
        let fields = rec.map_err(csv_err)?;
        let line = fields.position().map_or(0, |p| p.line());
        out.push(row(&Record {
            file: &file,
            line,
            columns: &index,
            fields,
        })?);
    }
    Ok(out)
}

fn read_accounts(dir: &Path) -> Result<Vec<AccountRow>> {
    let columns = tally_report::render::ALLOCATION_COLUMNS;
    let rows = read_csv(&dir.join("allocations.csv"), &columns, |r| {
        Ok(AccountRow {
            line: r.line,
            account_id: r.text("account_id"),
            devices: r.int("devices")?,
            eligible_devices: r.int("eligible_devices")?,
            points: r.dec("points")?,
            token_units: r.int("token_units")?,
            tokens: r.text("tokens"),
            floor_units: r.int("floor_units")?,
            leftover_unit: r.boolean("leftover_unit")?,
        })
    })?;
    sorted_unique(dir, "allocations.csv", rows, |a| (&a.account_id, a.line))
}

/// Most slots an epoch can have, and most seconds in one (`limits.rs`).
const MAX_SLOTS: u64 = (MAX_EPOCH_SECONDS / MIN_SLOT_SECONDS) as u64;
const MAX_SECONDS: u64 = MAX_EPOCH_SECONDS as u64;

fn read_devices(dir: &Path) -> Result<Vec<DeviceRow>> {
    // The published layout has one definition: the report crate's.
    let rows = read_csv(
        &dir.join("devices.csv"),
        &tally_report::render::DEVICE_COLUMNS,
        |r| {
            let total_slots = r.bounded("total_slots", r.int("total_slots")?, MAX_SLOTS)?;
            let gpu_count: u32 = r.int("gpu_count")?;
            if !(1..=MAX_GPU_COUNT).contains(&gpu_count) {
                return Err(r.err("gpu_count", format!("expected 1 to {MAX_GPU_COUNT}")));
            }
            let perf_factor = r.dec("perf_factor")?;
            if perf_factor > Decimal::ONE {
                return Err(r.err("perf_factor", "is above 1"));
            }
            let tier = r.text("bandwidth_tier");
            let reasons = r.text("reasons");
            Ok(DeviceRow {
                line: r.line,
                device_id: r.text("device_id"),
                account_id: r.text("account_id"),
                gpu_model: r.text("gpu_model"),
                gpu_count,
                registered_at: r.text("registered_at"),
                heartbeats: r.int("heartbeats")?,
                online_slots: r.bounded("online_slots", r.int("online_slots")?, total_slots)?,
                longest_streak_slots: r.int("longest_streak_slots")?,
                total_slots,
                uptime_ratio: r.dec("uptime_ratio")?,
                speedtests: r.int("speedtests")?,
                median_download_mbps: r.median("median_download_mbps")?,
                median_upload_mbps: r.median("median_upload_mbps")?,
                median_latency_ms: r.median("median_latency_ms")?,
                bandwidth_tier: (!tier.is_empty()).then_some(tier),
                bandwidth_multiplier: r.dec("bandwidth_multiplier")?,
                benchmarks: r.int("benchmarks")?,
                median_tflops: r.median("median_tflops")?,
                perf_ratio: r.opt_dec("perf_ratio", 20)?,
                perf_factor,
                rental_seconds: r.bounded(
                    "rental_seconds",
                    r.int("rental_seconds")?,
                    MAX_SECONDS,
                )?,
                self_rental_seconds: r.bounded(
                    "self_rental_seconds",
                    r.int("self_rental_seconds")?,
                    MAX_SECONDS,
                )?,
                uptime_points: r.dec("uptime_points")?,
                rental_points: r.dec("rental_points")?,
                points: r.dec("points")?,
                eligible: r.boolean("eligible")?,
                reasons: if reasons.is_empty() {
                    Vec::new()
                } else {
                    reasons.split(';').map(String::from).collect()
                },
            })
        },
    )?;
    sorted_unique(dir, "devices.csv", rows, |d| (&d.device_id, d.line))
}

fn read_exclusions(dir: &Path) -> Result<Vec<ExclusionRow>> {
    let columns = ["device_id", "reason", "effect", "evidence"];
    read_csv(&dir.join("exclusions.csv"), &columns, |r| {
        Ok(ExclusionRow {
            device_id: r.text("device_id"),
            reason: r.text("reason"),
            effect: r.text("effect"),
            evidence: r.text("evidence"),
        })
    })
}

/// Rows in `key` order, each key once, as `tally run` writes them.
fn sorted_unique<T>(
    dir: &Path,
    name: &str,
    rows: Vec<T>,
    key: impl Fn(&T) -> (&String, u64),
) -> Result<Vec<T>> {
    for pair in rows.windows(2) {
        let ((a, _), (b, line)) = (key(&pair[0]), key(&pair[1]));
        if a >= b {
            return Err(line_err(
                &dir.join(name).display().to_string(),
                line,
                format!("{b} is out of order or repeated; tally writes each once, sorted"),
            ));
        }
    }
    Ok(rows)
}

#[derive(Deserialize)]
struct RawSummary {
    epoch: RawEpoch,
    rules: RawRules,
    total_points: String,
    total_points_units: String,
    pool_units: String,
    allocated_units: String,
}

#[derive(Deserialize)]
struct RawEpoch {
    id: String,
    start: String,
    end: String,
    slot_seconds: i64,
    total_slots: u64,
    pool: String,
    decimals: u32,
}

#[derive(Deserialize)]
struct RawRules {
    version: String,
}

#[derive(Deserialize)]
struct RawManifest {
    inputs: Vec<InputFile>,
}

fn read_manifest_inputs(dir: &Path) -> Result<Vec<InputFile>> {
    let path = dir.join("manifest.json");
    let raw: RawManifest = serde_json::from_str(&read_text(&path)?)
        .map_err(|e| file_err(&path.display().to_string(), e.to_string()))?;
    Ok(raw
        .inputs
        .into_iter()
        .map(|i| InputFile {
            file: clean(&i.file),
            sha256: clean(&i.sha256),
        })
        .collect())
}

fn read_summary(dir: &Path) -> Result<RunInfo> {
    let path = dir.join("summary.json");
    let file = path.display().to_string();
    let raw: RawSummary =
        serde_json::from_str(&read_text(&path)?).map_err(|e| file_err(&file, e.to_string()))?;
    let int = |key: &str, s: &str| -> Result<u128> {
        s.parse()
            .map_err(|_| file_err(&file, format!("{key}: expected a whole number, got {s:?}")))
    };
    let total_points = Decimal::from_str_exact(&raw.total_points)
        .map_err(|_| file_err(&file, "total_points: expected a decimal"))?;
    let decimals = raw.epoch.decimals;
    if decimals > MAX_TOKEN_DECIMALS {
        return Err(file_err(
            &file,
            format!("epoch.decimals: at most {MAX_TOKEN_DECIMALS}, got {decimals}"),
        ));
    }
    let pool_units = int("pool_units", &raw.pool_units)?;
    let allocated_units = int("allocated_units", &raw.allocated_units)?;
    if raw.pool_units.len() > MAX_POOL_UNITS_DIGITS || allocated_units > pool_units {
        return Err(file_err(
            &file,
            format!(
                "pool_units must have at most {MAX_POOL_UNITS_DIGITS} digits and allocated_units \
                 must not exceed it"
            ),
        ));
    }
    Ok(RunInfo {
        epoch_id: clean(&raw.epoch.id),
        start: clean(&raw.epoch.start),
        end: clean(&raw.epoch.end),
        slot_seconds: raw.epoch.slot_seconds,
        total_slots: raw.epoch.total_slots,
        pool: clean(&raw.epoch.pool),
        decimals,
        rules_version: clean(&raw.rules.version),
        total_points,
        total_weight: int("total_points_units", &raw.total_points_units)?,
        pool_units,
        allocated_units,
    })
}
