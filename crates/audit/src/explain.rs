//! `tally explain OUT_DIR ACCOUNT_ID`: one account, in words a miner understands.
//!
//! For each device: its measured values against every threshold of the rules the run
//! used (`rules.toml`), every reason and note with its evidence, and the points
//! formula with the numbers filled in; then how the account's points became its
//! tokens (SPEC 4). Everything is recomputed from the published files with the
//! core's exact arithmetic and must agree with what they say; a disagreement is an
//! error naming the file and line, never a silent explanation of something else.

use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde::Serialize;
use tally_core::exact::{fixed, int_less_than_product, product_rounded, ratio_rounded, to_units};
use tally_core::rules::{ModelRule, Tier};
use tally_core::score::RATIO_PLACES;
use tally_core::split::split;
use tally_core::value::parse_timestamp;
use tally_core::Note;

use crate::error::{AuditError, Result};
use crate::read::{clean, AccountRow, DeviceRow, Published};

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub epoch: EpochView,
    pub rules_version: String,
    pub account: AccountView,
    pub devices: Vec<DeviceExplanation>,
    pub split: SplitView,
}

#[derive(Debug, Serialize)]
pub struct EpochView {
    pub id: String,
    pub start: String,
    pub end: String,
    pub slot_seconds: i64,
    pub total_slots: u64,
    pub pool: String,
    pub decimals: u32,
}

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub account_id: String,
    pub devices: u64,
    pub eligible_devices: u64,
    pub points: String,
    pub token_units: String,
    pub tokens: String,
}

#[derive(Debug, Serialize)]
pub struct DeviceExplanation {
    pub device_id: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    pub registered_at: String,
    pub eligible: bool,
    /// Why it is eligible or not, in one sentence.
    pub verdict: String,
    /// Registry, uptime, bandwidth, performance, rentals: measured values and checks.
    pub sections: Vec<Section>,
    /// Every code of the device's `reasons`, with its effect and evidence.
    pub reasons: Vec<ReasonView>,
    pub points: PointsView,
}

#[derive(Debug, Serialize)]
pub struct Section {
    pub topic: &'static str,
    pub measured: String,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// One measured value against one threshold.
#[derive(Debug, Serialize)]
pub struct Check {
    pub outcome: Outcome,
    pub text: String,
    /// The reason or note this check guards: it applies when the outcome is `fail`
    /// or `note`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The threshold is met.
    Pass,
    /// The threshold is missed: an exclusion reason applies.
    Fail,
    /// The threshold is missed: a note applies (it does not exclude).
    Note,
    /// A bandwidth tier whose conditions are not all met.
    Unmet,
}

#[derive(Debug, Serialize)]
pub struct ReasonView {
    pub code: String,
    /// `excludes`, `overruled`, `reinstates` (from `exclusions.csv`) or `note`.
    pub effect: String,
    pub evidence: String,
}

#[derive(Debug, Serialize)]
pub struct PointsView {
    /// Whether the formulas count: only an eligible device earns points.
    pub counted: bool,
    pub inputs: FormulaInputs,
    pub uptime_formula: String,
    pub rental_formula: String,
    pub uptime_points: String,
    pub rental_points: String,
    pub points: String,
}

/// The numbers that go into the points formula (SPEC 3.2 step 6).
#[derive(Debug, Serialize)]
pub struct FormulaInputs {
    /// Of the device's model in the rules; 0 for a model not in the table.
    pub base: String,
    pub rental: String,
    pub gpu_count: u32,
    pub online_slots: u64,
    pub bandwidth_multiplier: String,
    pub perf_factor: String,
    pub rental_seconds: u64,
}

/// SPEC 4 for this account. Big integers are strings, as in `summary.json`.
#[derive(Debug, Serialize)]
pub struct SplitView {
    /// `points(account)` as the sum of its devices' points.
    pub points_sum: String,
    /// `P(a) = points * 10^points_decimals`.
    pub weight: String,
    /// `T`, the sum of every account's `P`.
    pub total_weight: String,
    pub accounts: usize,
    pub total_points: String,
    /// `P / T` in percent, rounded to 6 places; absent when `T = 0`.
    pub share_percent: Option<String>,
    pub pool_units: String,
    pub floor_units: String,
    pub remainder: String,
    /// `pool_units - sum of every account's floor`.
    pub leftover_units: String,
    /// Rank of this account's remainder (largest first, ties by `account_id`).
    pub remainder_rank: usize,
    pub leftover_unit: bool,
    pub token_units: String,
    pub tokens: String,
}

/// Explains `account_id` from the files of one run.
pub fn explain(p: &Published, account_id: &str) -> Result<Explanation> {
    let account = p
        .account(account_id)
        .ok_or_else(|| AuditError::UnknownAccount {
            account: clean(account_id),
            file: p.file("allocations.csv"),
            accounts: p.accounts.len(),
        })?;
    let devices: Vec<&DeviceRow> = p.devices_of(&account.account_id).collect();
    let i = &p.info;
    Ok(Explanation {
        epoch: EpochView {
            id: i.epoch_id.clone(),
            start: i.start.clone(),
            end: i.end.clone(),
            slot_seconds: i.slot_seconds,
            total_slots: i.total_slots,
            pool: i.pool.clone(),
            decimals: i.decimals,
        },
        rules_version: p.rules.version.clone(),
        account: AccountView {
            account_id: account.account_id.clone(),
            devices: account.devices,
            eligible_devices: account.eligible_devices,
            points: account.points.to_string(),
            token_units: account.token_units.to_string(),
            tokens: account.tokens.clone(),
        },
        devices: devices
            .iter()
            .map(|d| explain_device(p, d))
            .collect::<Result<_>>()?,
        split: explain_split(p, account, &devices)?,
    })
}

/// A device row that disagrees with the rules it names.
fn device_err(p: &Published, d: &DeviceRow, message: String) -> AuditError {
    AuditError::Line {
        file: p.file("devices.csv"),
        line: d.line,
        message: format!("device {}: {message}", d.device_id),
    }
}

/// A published value that is not what the rules in `rules.toml` give.
fn disagree(
    p: &Published,
    d: &DeviceRow,
    what: &str,
    published: impl ToString,
    computed: impl ToString,
) -> AuditError {
    device_err(
        p,
        d,
        format!(
            "{what} is published as {:?}, but rules.toml and the measured values give {:?}",
            published.to_string(),
            computed.to_string()
        ),
    )
}

/// `1 benchmark`, `2 benchmarks`.
fn count(n: u64, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

fn opt(d: Option<Decimal>) -> String {
    d.map_or_else(|| "none".to_string(), |d| d.to_string())
}

fn check(passed: bool, missed: Outcome, text: String, code: &str) -> Check {
    Check {
        outcome: if passed { Outcome::Pass } else { missed },
        text,
        code: Some(code.to_string()),
    }
}

/// A check decided on evidence the outputs carry only as a reason (the registry's
/// hardware ids and addresses, the benchmarks' models): it fails when listed.
fn listed(d: &DeviceRow, code: &str, pass: String, fail: &str) -> Check {
    let applies = d.reasons.iter().any(|r| r == code);
    check(
        !applies,
        Outcome::Fail,
        if applies { fail.to_string() } else { pass },
        code,
    )
}

fn explain_device(p: &Published, d: &DeviceRow) -> Result<DeviceExplanation> {
    let rules = &p.rules;
    let model = rules.models.get(&d.gpu_model);
    let sections = vec![
        registry_section(p, d, model)?,
        uptime_section(p, d),
        bandwidth_section(p, d)?,
        performance_section(p, d, model)?,
        rentals_section(p, d),
    ];
    for c in sections.iter().flat_map(|s| &s.checks) {
        if let Some(code) = &c.code {
            let applies = matches!(c.outcome, Outcome::Fail | Outcome::Note);
            if applies != d.reasons.contains(code) {
                let does = if applies { "applies" } else { "does not apply" };
                return Err(device_err(
                    p,
                    d,
                    format!(
                        "by rules.toml {code} {does} ({}), but its reasons are {:?}",
                        c.text,
                        d.reasons.join(";")
                    ),
                ));
            }
        }
    }
    let (verdict, eligible) = verdict(d);
    if eligible != d.eligible {
        return Err(disagree(p, d, "eligible", d.eligible, eligible));
    }
    Ok(DeviceExplanation {
        device_id: d.device_id.clone(),
        gpu_model: d.gpu_model.clone(),
        gpu_count: d.gpu_count,
        registered_at: d.registered_at.clone(),
        eligible: d.eligible,
        verdict,
        sections,
        reasons: reasons(p, d),
        points: points(p, d, model)?,
    })
}

fn registry_section(p: &Published, d: &DeviceRow, model: Option<&ModelRule>) -> Result<Section> {
    let rules = &p.rules;
    let end = &p.info.end;
    let before_end = match (parse_timestamp(&d.registered_at), parse_timestamp(end)) {
        (Ok(r), Ok(e)) => r < e,
        _ => {
            let what = format!("registered_at {:?} is not a time", d.registered_at);
            return Err(device_err(p, d, what));
        }
    };
    let not = if before_end { "" } else { "not " };
    let model_check = match model {
        Some(m) => check(
            true,
            Outcome::Fail,
            format!(
                "gpu_model {} is in the model table: base {}, tflops {}, rental {}",
                d.gpu_model, m.base, m.tflops, m.rental
            ),
            "UNKNOWN_GPU_MODEL",
        ),
        None => check(
            false,
            Outcome::Fail,
            format!(
                "gpu_model {} is not in the model table of rules {}",
                d.gpu_model, rules.version
            ),
            "UNKNOWN_GPU_MODEL",
        ),
    };
    let cap = rules.max_devices_per_ip;
    Ok(Section {
        topic: "registry",
        measured: format!(
            "{} × {}, registered_at {}",
            d.gpu_count, d.gpu_model, d.registered_at
        ),
        checks: vec![
            check(
                before_end,
                Outcome::Fail,
                format!("registered_at {} is {not}before the epoch end {end}", d.registered_at),
                "REGISTERED_AFTER_EPOCH",
            ),
            model_check,
            listed(
                d,
                "DUPLICATE_HARDWARE",
                "no device registered earlier holds the same hardware_id".into(),
                "a device registered earlier holds the same hardware_id",
            ),
            listed(
                d,
                "IP_CAP",
                format!(
                    "its IP address is shared by at most max_devices_per_ip {cap} devices, or it is among \
                     the first {cap}"
                ),
                &format!(
                    "more than max_devices_per_ip {cap} devices share its IP address, and it is not among \
                     the first {cap}"
                ),
            ),
        ],
        result: None,
    })
}

fn uptime_section(p: &Published, d: &DeviceRow) -> Section {
    let r = &p.rules;
    let need = (r.min_uptime * Decimal::from(d.total_slots)).normalize();
    let low = int_less_than_product(d.online_slots, r.min_uptime, d.total_slots);
    let sign = if low { "<" } else { ">=" };
    let mut checks = vec![check(
        !low,
        Outcome::Fail,
        format!(
            "online_slots {} {sign} min_uptime {} × total_slots {} = {need}",
            d.online_slots, r.min_uptime, d.total_slots
        ),
        "LOW_UPTIME",
    )];
    if let Some(min) = r.min_streak_slots {
        let short = d.longest_streak_slots < min;
        checks.push(check(
            !short,
            Outcome::Fail,
            format!(
                "longest_streak_slots {} {} min_streak_slots {min}",
                d.longest_streak_slots,
                if short { "<" } else { ">=" }
            ),
            "SHORT_STREAK",
        ));
    }
    Section {
        topic: "uptime",
        measured: format!(
            "{}; online in {} of {} slots (uptime_ratio {}); longest streak {} slots",
            count(d.heartbeats, "heartbeat"),
            d.online_slots,
            d.total_slots,
            d.uptime_ratio,
            d.longest_streak_slots
        ),
        checks,
        result: None,
    }
}

/// Whether the medians meet all three conditions of `t`, and the comparison in words.
fn tier_check(d: &DeviceRow, t: &Tier) -> (bool, String) {
    let cond = |name: &str, v: Option<Decimal>, op: &str, limit: Decimal, ok: bool| {
        format!(
            "{name} {} {op} {limit} {}",
            opt(v),
            if ok { "yes" } else { "no" }
        )
    };
    let down = d
        .median_download_mbps
        .is_some_and(|v| v >= t.min_download_mbps);
    let up = d.median_upload_mbps.is_some_and(|v| v >= t.min_upload_mbps);
    let lat = d.median_latency_ms.is_some_and(|v| v <= t.max_latency_ms);
    let text = format!(
        "tier {} (multiplier {}): {}, {}, {}",
        t.name,
        t.multiplier,
        cond(
            "download",
            d.median_download_mbps,
            ">=",
            t.min_download_mbps,
            down
        ),
        cond("upload", d.median_upload_mbps, ">=", t.min_upload_mbps, up),
        cond("latency", d.median_latency_ms, "<=", t.max_latency_ms, lat),
    );
    (down && up && lat, text)
}

fn bandwidth_section(p: &Published, d: &DeviceRow) -> Result<Section> {
    let r = &p.rules;
    let enough = d.speedtests >= r.min_speedtests;
    let sign = if enough { ">=" } else { "<" };
    let mut checks = vec![check(
        enough,
        Outcome::Note,
        format!(
            "speedtests {} {sign} min_speedtests {}",
            d.speedtests, r.min_speedtests
        ),
        "INSUFFICIENT_SPEEDTESTS",
    )];
    let mut tier = None;
    if enough {
        for t in &r.tiers {
            let (met, text) = tier_check(d, t);
            checks.push(Check {
                outcome: if met { Outcome::Pass } else { Outcome::Unmet },
                text,
                code: met.then(|| "LOW_BANDWIDTH".to_string()),
            });
            if met {
                tier = Some(t);
                break;
            }
        }
        if tier.is_none() {
            checks.push(check(
                false,
                Outcome::Note,
                "no tier is met".into(),
                "LOW_BANDWIDTH",
            ));
        }
    }
    let multiplier = tier.map_or(Decimal::ZERO, |t| t.multiplier);
    let name = tier.map(|t| t.name.clone());
    if name != d.bandwidth_tier {
        return Err(disagree(
            p,
            d,
            "bandwidth_tier",
            opt_text(&d.bandwidth_tier),
            opt_text(&name),
        ));
    }
    if multiplier != d.bandwidth_multiplier {
        return Err(disagree(
            p,
            d,
            "bandwidth_multiplier",
            d.bandwidth_multiplier,
            multiplier,
        ));
    }
    let result = match &name {
        Some(n) => format!("tier {n}: bandwidth_multiplier {}", d.bandwidth_multiplier),
        None => format!("no tier: bandwidth_multiplier {}", d.bandwidth_multiplier),
    };
    Ok(Section {
        topic: "bandwidth",
        measured: match (
            d.median_download_mbps,
            d.median_upload_mbps,
            d.median_latency_ms,
        ) {
            (Some(down), Some(up), Some(lat)) => format!(
                "{}; medians: download {down} Mbps, upload {up} Mbps, latency {lat} ms",
                count(d.speedtests, "speedtest")
            ),
            _ => format!("{}, so no medians", count(d.speedtests, "speedtest")),
        },
        checks,
        result: Some(result),
    })
}

fn opt_text(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "none".to_string())
}

fn performance_section(p: &Published, d: &DeviceRow, model: Option<&ModelRule>) -> Result<Section> {
    let r = &p.rules;
    let mut measured = match d.median_tflops {
        Some(t) => format!("{}; median {t} tflops", count(d.benchmarks, "benchmark")),
        None => count(d.benchmarks, "benchmark"),
    };
    let mut checks = vec![
        check(
            d.benchmarks > 0,
            Outcome::Fail,
            if d.benchmarks > 0 {
                format!("benchmarks {} >= 1 in the epoch", d.benchmarks)
            } else {
                "no benchmark in the epoch".into()
            },
            "NO_BENCHMARK",
        ),
        listed(
            d,
            "MODEL_MISMATCH",
            format!(
                "no benchmark reports a gpu_model other than {}",
                d.gpu_model
            ),
            "some benchmarks report another gpu_model",
        ),
        listed(
            d,
            "HARDWARE_MISMATCH",
            "no benchmark reports another hardware_id".into(),
            "some benchmarks report another hardware_id",
        ),
    ];
    let ratio = match (model, d.median_tflops) {
        (Some(m), Some(t)) => {
            let ratio = ratio_rounded(t, m.tflops, RATIO_PLACES);
            let _ = write!(
                measured,
                "; perf_ratio = q6(median_tflops {t} / tflops {} of {}) = {ratio}",
                m.tflops, m.name
            );
            let high = ratio > r.max_perf_ratio;
            let low = ratio < r.min_perf_ratio;
            checks.push(check(
                !high,
                Outcome::Fail,
                format!(
                    "perf_ratio {ratio} {} max_perf_ratio {}",
                    if high { ">" } else { "<=" },
                    r.max_perf_ratio
                ),
                "IMPOSSIBLE_BENCHMARK",
            ));
            checks.push(check(
                !low,
                Outcome::Fail,
                format!(
                    "perf_ratio {ratio} {} min_perf_ratio {}",
                    if low { "<" } else { ">=" },
                    r.min_perf_ratio
                ),
                "SUSPECTED_VIRTUAL_GPU",
            ));
            Some(ratio)
        }
        (None, _) => {
            measured.push_str("; no perf_ratio: the model is not in the table");
            None
        }
        (Some(_), None) => {
            measured.push_str("; no perf_ratio: no benchmark");
            None
        }
    };
    if ratio != d.perf_ratio {
        return Err(disagree(p, d, "perf_ratio", opt(d.perf_ratio), opt(ratio)));
    }
    let factor = ratio.map_or(Decimal::ONE, |r| r.min(Decimal::ONE));
    if factor != d.perf_factor {
        return Err(disagree(p, d, "perf_factor", d.perf_factor, factor));
    }
    let result = match ratio {
        Some(r) => format!("perf_factor = min(perf_ratio {r}, 1) = {}", d.perf_factor),
        None => format!("perf_factor = {} (no perf_ratio)", d.perf_factor),
    };
    Ok(Section {
        topic: "performance",
        measured,
        checks,
        result: Some(result),
    })
}

fn rentals_section(p: &Published, d: &DeviceRow) -> Section {
    let own = d.self_rental_seconds;
    let online = if p.rules.rentals_require_online {
        " inside its online slots (rentals_require_online: no other second counts)"
    } else {
        ""
    };
    Section {
        topic: "rentals",
        measured: format!(
            "rented {} s by other accounts{online}; {own} s by its own account",
            d.rental_seconds
        ),
        checks: vec![check(
            own == 0,
            Outcome::Note,
            if own == 0 {
                "no rental by its own account".into()
            } else {
                format!("{own} s rented by its own account, which earn nothing")
            },
            "SELF_RENTAL",
        )],
        result: None,
    }
}

/// A code of `reasons` is a dispute decision, a note, or an exclusion reason.
fn decision(code: &str) -> Option<(bool, &str)> {
    code.strip_prefix("REINSTATED:")
        .map(|t| (true, t))
        .or_else(|| code.strip_prefix("MANUAL_EXCLUSION:").map(|t| (false, t)))
}

fn is_note(code: &str) -> bool {
    Note::ALL.iter().any(|n| n.code() == code)
}

/// One sentence on why the device is eligible or not, and the eligibility that the
/// reasons imply (SPEC 7: a decision wins over the automatic reasons).
fn verdict(d: &DeviceRow) -> (String, bool) {
    let automatic: Vec<&str> = d
        .reasons
        .iter()
        .map(String::as_str)
        .filter(|c| !is_note(c) && decision(c).is_none())
        .collect();
    let list = automatic.join(", ");
    match d.reasons.iter().find_map(|c| decision(c)) {
        Some((true, ticket)) if automatic.is_empty() => (
            format!("eligible (reinstated by dispute decision {ticket})"),
            true,
        ),
        Some((true, ticket)) => (
            format!("eligible (dispute decision {ticket} reinstated it, overruling {list})"),
            true,
        ),
        Some((false, ticket)) if automatic.is_empty() => {
            (format!("excluded by dispute decision {ticket}"), false)
        }
        Some((false, ticket)) => (
            format!("excluded by dispute decision {ticket}, and automatically by {list}"),
            false,
        ),
        None if automatic.is_empty() => ("eligible (no exclusion reason applies)".into(), true),
        None => (format!("excluded by {list}"), false),
    }
}

fn reasons(p: &Published, d: &DeviceRow) -> Vec<ReasonView> {
    d.reasons
        .iter()
        .map(|code| {
            if let Some(e) = p.exclusions_of(&d.device_id).find(|e| &e.reason == code) {
                return ReasonView {
                    code: code.clone(),
                    effect: e.effect.clone(),
                    evidence: e.evidence.clone(),
                };
            }
            let evidence = match code.as_str() {
                "INSUFFICIENT_SPEEDTESTS" => format!(
                    "{} in the epoch, fewer than min_speedtests {}: no bandwidth tier, multiplier 0",
                    count(d.speedtests, "speedtest"),
                    p.rules.min_speedtests
                ),
                "LOW_BANDWIDTH" => format!(
                    "the medians (download {} Mbps, upload {} Mbps, latency {} ms) meet no bandwidth tier: \
                     multiplier 0",
                    opt(d.median_download_mbps),
                    opt(d.median_upload_mbps),
                    opt(d.median_latency_ms)
                ),
                "SELF_RENTAL" => format!(
                    "{} s of rentals by its own account {} earn nothing",
                    d.self_rental_seconds, d.account_id
                ),
                _ => "exclusions.csv has no row for it".to_string(),
            };
            ReasonView {
                code: code.clone(),
                effect: if is_note(code) { "note" } else { "unknown" }.to_string(),
                evidence,
            }
        })
        .collect()
}

fn points(p: &Published, d: &DeviceRow, model: Option<&ModelRule>) -> Result<PointsView> {
    let pd = p.rules.points_decimals;
    let (base, rental) = model.map_or((Decimal::ZERO, Decimal::ZERO), |m| (m.base, m.rental));
    let unknown = if model.is_none() {
        " (model not in the table)"
    } else {
        ""
    };
    let count = u64::from(d.gpu_count);
    // The multiplier and factor were checked equal to what the rules give, so they
    // are within the bounds of limits.rs and the products cannot overflow.
    let uptime = product_rounded(
        &[base, d.bandwidth_multiplier, d.perf_factor],
        &[count, d.online_slots],
        1,
        pd,
    );
    let rented = product_rounded(&[rental], &[d.rental_seconds, count], 3600, pd);
    let zero = Decimal::new(0, pd);
    let (expect_uptime, expect_rental) = if d.eligible {
        (uptime, rented)
    } else {
        (zero, zero)
    };
    if d.uptime_points != expect_uptime {
        return Err(disagree(
            p,
            d,
            "uptime_points",
            d.uptime_points,
            expect_uptime,
        ));
    }
    if d.rental_points != expect_rental {
        return Err(disagree(
            p,
            d,
            "rental_points",
            d.rental_points,
            expect_rental,
        ));
    }
    Ok(PointsView {
        counted: d.eligible,
        inputs: FormulaInputs {
            base: base.to_string(),
            rental: rental.to_string(),
            gpu_count: d.gpu_count,
            online_slots: d.online_slots,
            bandwidth_multiplier: d.bandwidth_multiplier.to_string(),
            perf_factor: d.perf_factor.to_string(),
            rental_seconds: d.rental_seconds,
        },
        uptime_formula: format!(
            "q6(base {base}{unknown} × gpu_count {} × online_slots {} × bandwidth_multiplier {} × \
             perf_factor {}) = {}",
            d.gpu_count,
            d.online_slots,
            d.bandwidth_multiplier,
            d.perf_factor,
            fixed(uptime, pd)
        ),
        rental_formula: format!(
            "q6(rental {rental}{unknown} × gpu_count {} × rental_seconds {} / 3600) = {}",
            d.gpu_count,
            d.rental_seconds,
            fixed(rented, pd)
        ),
        uptime_points: d.uptime_points.to_string(),
        rental_points: d.rental_points.to_string(),
        points: d.points.to_string(),
    })
}

fn explain_split(p: &Published, a: &AccountRow, devices: &[&DeviceRow]) -> Result<SplitView> {
    let pd = p.rules.points_decimals;
    let weights: Vec<(&str, u128)> = p
        .accounts
        .iter()
        .map(|x| (x.account_id.as_str(), to_units(x.points, pd)))
        .collect();
    let total: u128 = weights.iter().map(|w| w.1).sum();
    if total != p.info.total_weight {
        return Err(AuditError::File {
            file: p.file("summary.json"),
            message: format!(
                "total_points_units is {}, but the accounts' points add up to {total}",
                p.info.total_weight
            ),
        });
    }
    let shares = split(p.info.pool_units, &weights);
    let me = p
        .accounts
        .iter()
        .position(|x| x.account_id == a.account_id)
        .expect("the account was found");
    let share = shares[me];
    if (share.floor_units, share.leftover_unit) != (a.floor_units, a.leftover_unit) {
        return Err(AuditError::Line {
            file: p.file("allocations.csv"),
            line: a.line,
            message: format!(
                "floor_units {} and leftover_unit {} do not follow from the points: SPEC 4 gives {} and {}",
                a.floor_units,
                u8::from(a.leftover_unit),
                share.floor_units,
                u8::from(share.leftover_unit)
            ),
        });
    }
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&x, &y| {
        shares[y]
            .remainder
            .cmp(&shares[x].remainder)
            .then_with(|| weights[x].0.cmp(weights[y].0))
    });
    let floors: u128 = shares.iter().map(|s| s.floor_units).sum();
    let leftover = if total == 0 {
        0
    } else {
        p.info.pool_units - floors
    };
    let share_percent = (!p.info.total_points.is_zero()).then(|| {
        let mut percent = ratio_rounded(a.points, p.info.total_points, 8) * Decimal::ONE_HUNDRED;
        percent.rescale(6);
        percent.to_string()
    });
    let terms: Vec<String> = devices
        .iter()
        .map(|d| format!("{} {}", d.device_id, d.points))
        .collect();
    Ok(SplitView {
        points_sum: if terms.is_empty() {
            "no devices".into()
        } else {
            terms.join(" + ")
        },
        weight: weights[me].1.to_string(),
        total_weight: total.to_string(),
        accounts: p.accounts.len(),
        total_points: p.info.total_points.to_string(),
        share_percent,
        pool_units: p.info.pool_units.to_string(),
        floor_units: share.floor_units.to_string(),
        remainder: share.remainder.to_string(),
        leftover_units: leftover.to_string(),
        remainder_rank: order.iter().position(|&i| i == me).expect("in order") + 1,
        leftover_unit: share.leftover_unit,
        token_units: a.token_units.to_string(),
        tokens: a.tokens.clone(),
    })
}

impl Outcome {
    fn mark(self) -> &'static str {
        match self {
            Outcome::Pass => "ok",
            Outcome::Fail => "FAIL",
            Outcome::Note => "NOTE",
            Outcome::Unmet => "--",
        }
    }
}

impl Explanation {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("serialisable");
        s.push('\n');
        s
    }

    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let e = &self.epoch;
        let a = &self.account;
        let _ = writeln!(
            o,
            "Account {}, epoch {} ({} to {}, {} slots of {} s), rules {}",
            a.account_id, e.id, e.start, e.end, e.total_slots, e.slot_seconds, self.rules_version
        );
        let _ = writeln!(
            o,
            "{} devices, {} eligible: {} points, {} tokens ({} units of the pool)",
            a.devices, a.eligible_devices, a.points, a.tokens, a.token_units
        );
        for d in &self.devices {
            d.write_text(&mut o);
        }
        self.write_split(&mut o);
        o
    }

    fn write_split(&self, o: &mut String) {
        let s = &self.split;
        let a = &self.account;
        let _ = writeln!(o, "\nHow the points became tokens (SPEC 4)");
        let _ = writeln!(o, "  points = {} = {}", s.points_sum, a.points);
        let _ = writeln!(
            o,
            "  P = points × 10^points_decimals = {}; T = P of all {} accounts = {} (total points {})",
            s.weight, s.accounts, s.total_weight, s.total_points
        );
        let Some(percent) = &s.share_percent else {
            let _ = writeln!(o, "  T = 0: no account has points, so nothing is allocated");
            return;
        };
        let _ = writeln!(o, "  share of all points: P / T = {percent}%");
        let _ = writeln!(
            o,
            "  floor(pool_units {} × P {} / T {}) = {} units, remainder {}",
            s.pool_units, s.weight, s.total_weight, s.floor_units, s.remainder
        );
        let gets = if s.leftover_unit {
            "one of them"
        } else {
            "none of them"
        };
        let _ = writeln!(
            o,
            "  {} units are left after every account's floor; they go one each to the largest \
             remainders (equal ones in account_id order). This remainder ranks {} of {}: {gets}",
            s.leftover_units, s.remainder_rank, s.accounts
        );
        let _ = writeln!(
            o,
            "  token_units = {} + {} = {}, that is {} tokens ({} decimals)",
            s.floor_units,
            u8::from(s.leftover_unit),
            s.token_units,
            s.tokens,
            self.epoch.decimals
        );
    }
}

impl DeviceExplanation {
    fn write_text(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "\nDevice {}: {}; {} points",
            self.device_id, self.verdict, self.points.points
        );
        for s in &self.sections {
            let _ = writeln!(o, "  {}: {}", s.topic, s.measured);
            for c in &s.checks {
                let code = match (&c.code, c.outcome) {
                    (Some(code), Outcome::Fail | Outcome::Note) => format!(" -> {code}"),
                    _ => String::new(),
                };
                let _ = writeln!(o, "    {:<4}  {}{code}", c.outcome.mark(), c.text);
            }
            if let Some(r) = &s.result {
                let _ = writeln!(o, "    =>    {r}");
            }
        }
        if !self.reasons.is_empty() {
            let _ = writeln!(o, "  reasons and notes:");
            for r in &self.reasons {
                let _ = writeln!(o, "    {} ({}): {}", r.code, r.effect, r.evidence);
            }
        }
        let p = &self.points;
        if p.counted {
            let _ = writeln!(o, "  points:");
            let _ = writeln!(o, "    uptime_points = {}", p.uptime_formula);
            let _ = writeln!(o, "    rental_points = {}", p.rental_formula);
        } else {
            let _ = writeln!(
                o,
                "  points: 0, as the device is not eligible; had it been eligible:"
            );
            let _ = writeln!(o, "    uptime_points would be {}", p.uptime_formula);
            let _ = writeln!(o, "    rental_points would be {}", p.rental_formula);
        }
        let _ = writeln!(
            o,
            "    points = uptime_points {} + rental_points {} = {}",
            p.uptime_points, p.rental_points, p.points
        );
    }
}
