//! The bytes of every output file, rendered in memory from a settlement. Pure: the
//! same inputs give the same bytes. Every CSV is sorted, every number exact.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use tally_core::exact::{fixed, int_ratio_rounded, units_text};
use tally_core::run::{InputFile, RejectedRow, TableCounts};
use tally_core::score::{decision_code, RATIO_PLACES};
use tally_core::value::format_ts;
use tally_core::{Action, DeviceScore, Epoch, Measurement, Note, Reason, Rules, Settlement};

/// Everything a report is rendered from.
pub struct Run<'a> {
    pub epoch: &'a Epoch,
    pub rules: &'a Rules,
    pub rules_file: &'a InputFile,
    /// The rules file, byte for byte: published as `rules.toml` so that the reports
    /// carry the thresholds they were judged by.
    pub rules_text: &'a str,
    pub settlement: &'a Settlement,
    pub rejected: &'a [RejectedRow],
    pub counts: &'a [TableCounts],
    pub inputs: &'a [InputFile],
}

fn csv_bytes(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Vec<u8> {
    let mut out = crate::cells::CsvOut::new(header);
    for r in rows {
        out.row(r);
    }
    out.finish()
}

fn opt_dec(d: Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// The columns of `allocations.csv`: SPEC 5's, then how the split got there.
pub const ALLOCATION_COLUMNS: [&str; 8] = [
    "account_id",
    "devices",
    "eligible_devices",
    "points",
    "token_units",
    "tokens",
    "floor_units",
    "leftover_unit",
];

/// `allocations.csv`: one row per account, sorted by `account_id`.
pub fn allocations(run: &Run) -> Vec<u8> {
    let pd = run.rules.points_decimals;
    let dec = run.epoch.decimals;
    csv_bytes(
        &ALLOCATION_COLUMNS,
        run.settlement.accounts.iter().map(|a| {
            vec![
                a.account_id.clone(),
                a.devices.to_string(),
                a.eligible_devices.to_string(),
                fixed(a.points, pd),
                a.share.units().to_string(),
                units_text(a.share.units(), dec),
                a.share.floor_units.to_string(),
                u8::from(a.share.leftover_unit).to_string(),
            ]
        }),
    )
}

/// The columns of `devices.csv`: SPEC 5's, in its order, then the intermediates.
pub const DEVICE_COLUMNS: [&str; 27] = [
    "device_id",
    "account_id",
    "gpu_model",
    "gpu_count",
    "online_slots",
    "total_slots",
    "uptime_ratio",
    "speedtests",
    "median_download_mbps",
    "median_upload_mbps",
    "median_latency_ms",
    "bandwidth_tier",
    "bandwidth_multiplier",
    "benchmarks",
    "median_tflops",
    "perf_ratio",
    "rental_seconds",
    "self_rental_seconds",
    "uptime_points",
    "rental_points",
    "points",
    "eligible",
    "reasons",
    "perf_factor",
    "heartbeats",
    "longest_streak_slots",
    "registered_at",
];

fn device_row(s: &DeviceScore, pd: u32) -> Vec<String> {
    let m = &s.measurement;
    vec![
        s.device.device_id.clone(),
        s.device.account_id.clone(),
        s.device.gpu_model.clone(),
        s.device.gpu_count.to_string(),
        m.online_slots.to_string(),
        s.total_slots.to_string(),
        fixed(s.uptime_ratio, RATIO_PLACES),
        m.speedtests.to_string(),
        opt_dec(m.median_download_mbps),
        opt_dec(m.median_upload_mbps),
        opt_dec(m.median_latency_ms),
        s.tier.clone().unwrap_or_default(),
        fixed(s.bandwidth_multiplier, RATIO_PLACES),
        m.benchmarks.to_string(),
        opt_dec(m.median_tflops),
        s.perf_ratio
            .map(|r| fixed(r, RATIO_PLACES))
            .unwrap_or_default(),
        s.rental_seconds.to_string(),
        m.self_rental_seconds.to_string(),
        fixed(s.uptime_points, pd),
        fixed(s.rental_points, pd),
        fixed(s.points, pd),
        s.eligible.to_string(),
        s.reason_codes().join(";"),
        fixed(s.perf_factor, RATIO_PLACES),
        m.heartbeats.to_string(),
        m.longest_streak_slots.to_string(),
        format_ts(s.device.registered_at),
    ]
}

/// `devices.csv`: one row per registry device, sorted by `device_id`.
pub fn devices(run: &Run) -> Vec<u8> {
    let pd = run.rules.points_decimals;
    csv_bytes(
        &DEVICE_COLUMNS,
        run.settlement.devices.iter().map(|s| device_row(s, pd)),
    )
}

/// `exclusions.csv`: one row per (device, reason), sorted by device then reason.
/// `effect` says what the row did: `excludes`, `overruled` (an automatic reason a
/// reinstatement overrode), or `reinstates`.
pub fn exclusions(run: &Run) -> Vec<u8> {
    let mut rows = Vec::new();
    for s in &run.settlement.devices {
        let reinstated = matches!(
            s.decision.as_ref().map(|o| o.action),
            Some(Action::Reinstate)
        );
        let mut mine: Vec<Vec<String>> = s
            .exclusions
            .iter()
            .map(|e| {
                let effect = if reinstated { "overruled" } else { "excludes" };
                vec![
                    s.device.device_id.clone(),
                    s.device.account_id.clone(),
                    e.reason.code().into(),
                    effect.into(),
                    e.evidence.clone(),
                ]
            })
            .collect();
        if let Some(o) = &s.decision {
            let effect = if reinstated { "reinstates" } else { "excludes" };
            let note = if o.note.is_empty() {
                String::new()
            } else {
                format!(": {}", o.note)
            };
            mine.push(vec![
                s.device.device_id.clone(),
                s.device.account_id.clone(),
                decision_code(o),
                effect.into(),
                format!("dispute decision, ticket {}{note}", o.ticket),
            ]);
        }
        mine.sort();
        rows.extend(mine);
    }
    csv_bytes(
        &["device_id", "account_id", "reason", "effect", "evidence"],
        rows,
    )
}

/// `rejected_rows.csv`, sorted by file and line.
pub fn rejected_rows(run: &Run) -> Vec<u8> {
    csv_bytes(
        &["file", "line", "reason", "raw"],
        run.rejected.iter().map(|r| {
            vec![
                r.file.clone(),
                r.line.to_string(),
                r.reason.clone(),
                r.raw.clone(),
            ]
        }),
    )
}

/// The measurement table (`--emit-measurements`): the contract between aggregation
/// and scoring, one row per registry device. Lists are joined by `;`.
pub const MEASUREMENT_COLUMNS: [&str; 17] = [
    "device_id",
    "heartbeats",
    "online_slots",
    "longest_streak_slots",
    "speedtests",
    "median_download_mbps",
    "median_upload_mbps",
    "median_latency_ms",
    "benchmarks",
    "median_tflops",
    "benchmarks_other_model",
    "other_models",
    "benchmarks_other_hardware",
    "other_hardware_ids",
    "rental_seconds",
    "self_rental_seconds",
    "rental_online_seconds",
];

pub fn measurements(run: &Run) -> Vec<u8> {
    let row = |id: &str, m: &Measurement| {
        vec![
            id.to_string(),
            m.heartbeats.to_string(),
            m.online_slots.to_string(),
            m.longest_streak_slots.to_string(),
            m.speedtests.to_string(),
            opt_dec(m.median_download_mbps),
            opt_dec(m.median_upload_mbps),
            opt_dec(m.median_latency_ms),
            m.benchmarks.to_string(),
            opt_dec(m.median_tflops),
            m.benchmarks_other_model.to_string(),
            m.other_models.join(";"),
            m.benchmarks_other_hardware.to_string(),
            m.other_hardware_ids.join(";"),
            m.rental_seconds.to_string(),
            m.self_rental_seconds.to_string(),
            m.rental_online_seconds.to_string(),
        ]
    };
    csv_bytes(
        &MEASUREMENT_COLUMNS,
        run.settlement
            .devices
            .iter()
            .map(|s| row(&s.device.device_id, &s.measurement)),
    )
}

#[derive(Serialize)]
struct Summary<'a> {
    epoch: SummaryEpoch<'a>,
    rules: SummaryRules<'a>,
    devices: SummaryDevices,
    exclusion_reasons: BTreeMap<&'static str, u64>,
    notes: BTreeMap<&'static str, u64>,
    tables: BTreeMap<&'static str, SummaryTable>,
    accounts: u64,
    accounts_with_tokens: u64,
    gpu_slots_online: u64,
    gpu_hours_online: String,
    eligible_gpu_hours_online: String,
    rental_hours: String,
    eligible_rental_hours: String,
    total_points: String,
    total_points_units: String,
    pool_units: String,
    allocated_units: String,
    unallocated_units: String,
    allocated_tokens: String,
    unallocated_tokens: String,
}

#[derive(Serialize)]
struct SummaryEpoch<'a> {
    id: &'a str,
    start: String,
    end: String,
    slot_seconds: i64,
    total_slots: u64,
    pool: String,
    decimals: u32,
}

#[derive(Serialize)]
struct SummaryRules<'a> {
    version: &'a str,
    file: &'a str,
    features: &'a [String],
}

#[derive(Serialize)]
struct SummaryDevices {
    registered: u64,
    eligible: u64,
    excluded: u64,
    reinstated: u64,
    manually_excluded: u64,
}

#[derive(Serialize)]
struct SummaryTable {
    file: Option<String>,
    rows: u64,
    rejected: u64,
    ignored: u64,
    used: u64,
}

fn json_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("serialisable");
    b.push(b'\n');
    b
}

/// `summary.json`: the epoch at a glance. Large numbers are strings so that no JSON
/// reader rounds them.
pub fn summary(run: &Run) -> Vec<u8> {
    let s = run.settlement;
    let pd = run.rules.points_decimals;
    let count = |f: &dyn Fn(&DeviceScore) -> bool| s.devices.iter().filter(|d| f(d)).count() as u64;
    let mut reasons: BTreeMap<&'static str, u64> =
        Reason::in_force(run.rules).map(|r| (r.code(), 0)).collect();
    let mut notes: BTreeMap<&'static str, u64> = Note::ALL.iter().map(|n| (n.code(), 0)).collect();
    for d in &s.devices {
        for e in &d.exclusions {
            *reasons.get_mut(e.reason.code()).expect("all codes") += 1;
        }
        for n in &d.notes {
            *notes.get_mut(n.code()).expect("all codes") += 1;
        }
    }
    let gpu_slots = |eligible_only: bool| -> u64 {
        s.devices
            .iter()
            .filter(|d| !eligible_only || d.eligible)
            .map(|d| u64::from(d.device.gpu_count) * d.measurement.online_slots)
            .sum()
    };
    let rental = |eligible_only: bool| -> u64 {
        s.devices
            .iter()
            .filter(|d| !eligible_only || d.eligible)
            .map(|d| d.rental_seconds)
            .sum()
    };
    let slot = run.rules.slot_seconds as u64;
    let hours = |seconds: u64| fixed(int_ratio_rounded(seconds, 3600, RATIO_PLACES), RATIO_PLACES);
    let tables = run
        .counts
        .iter()
        .map(|c| {
            (
                c.table,
                SummaryTable {
                    file: c.file.clone(),
                    rows: c.read,
                    rejected: c.rejected,
                    ignored: c.ignored,
                    used: c.read - c.rejected - c.ignored,
                },
            )
        })
        .collect();
    let summary = Summary {
        epoch: SummaryEpoch {
            id: &run.epoch.id,
            start: format_ts(run.epoch.start),
            end: format_ts(run.epoch.end),
            slot_seconds: run.rules.slot_seconds,
            total_slots: s.total_slots,
            pool: run.epoch.pool_text(),
            decimals: run.epoch.decimals,
        },
        rules: SummaryRules {
            version: &run.rules.version,
            file: &run.rules_file.file,
            features: &run.rules.features,
        },
        devices: SummaryDevices {
            registered: s.devices.len() as u64,
            eligible: count(&|d| d.eligible),
            excluded: count(&|d| !d.eligible),
            reinstated: count(&|d| {
                matches!(
                    d.decision.as_ref().map(|o| o.action),
                    Some(Action::Reinstate)
                )
            }),
            manually_excluded: count(&|d| {
                matches!(d.decision.as_ref().map(|o| o.action), Some(Action::Exclude))
            }),
        },
        exclusion_reasons: reasons,
        notes,
        tables,
        accounts: s.accounts.len() as u64,
        accounts_with_tokens: s.accounts.iter().filter(|a| a.share.units() > 0).count() as u64,
        gpu_slots_online: gpu_slots(false),
        gpu_hours_online: hours(gpu_slots(false) * slot),
        eligible_gpu_hours_online: hours(gpu_slots(true) * slot),
        rental_hours: hours(rental(false)),
        eligible_rental_hours: hours(rental(true)),
        total_points: fixed(s.total_points, pd),
        total_points_units: s.total_weight.to_string(),
        pool_units: s.pool_units.to_string(),
        allocated_units: s.allocated_units.to_string(),
        unallocated_units: s.unallocated_units().to_string(),
        allocated_tokens: units_text(s.allocated_units, run.epoch.decimals),
        unallocated_tokens: units_text(s.unallocated_units(), run.epoch.decimals),
    };
    json_bytes(&summary)
}

#[derive(Serialize)]
struct Manifest<'a> {
    engine: ManifestEngine,
    epoch: &'a str,
    rules: ManifestFile<'a>,
    inputs: Vec<ManifestFile<'a>>,
    outputs: Vec<ManifestFile<'a>>,
}

#[derive(Serialize)]
struct ManifestEngine {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct ManifestFile<'a> {
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<u64>,
}

/// `manifest.json`: what went in and what came out, by SHA-256. `outputs` are
/// (file name, hash) pairs sorted by name.
pub fn manifest(run: &Run, engine_version: &'static str, outputs: &[(String, String)]) -> Vec<u8> {
    let m = Manifest {
        engine: ManifestEngine {
            name: "tally",
            version: engine_version,
        },
        epoch: &run.epoch.id,
        rules: ManifestFile {
            file: &run.rules_file.file,
            version: Some(&run.rules.version),
            sha256: &run.rules_file.sha256,
            rows: None,
        },
        inputs: run
            .inputs
            .iter()
            .map(|i| ManifestFile {
                file: &i.file,
                version: None,
                sha256: &i.sha256,
                rows: i.rows,
            })
            .collect(),
        outputs: outputs
            .iter()
            .map(|(f, h)| ManifestFile {
                file: f,
                version: None,
                sha256: h,
                rows: None,
            })
            .collect(),
    };
    json_bytes(&m)
}
