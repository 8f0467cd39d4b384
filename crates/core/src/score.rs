//! SPEC 3.2 and 3.3: from registry, measurements and rules to each device's points,
//! exclusions and notes; then SPEC 4, the split. Pure and total: valid inputs (as the
//! types and `limits.rs` define them) cannot make it fail.
//!
//! Each rule of the SPEC has one function or one block here, named after its reason
//! code or step, and every intermediate value is kept in [`DeviceScore`] so that a
//! report can show how a number came about.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use rust_decimal::Decimal;

use crate::epoch::Epoch;
use crate::exact::{
    int_less_than_product, int_ratio_rounded, product_rounded, ratio_rounded, to_units,
};
use crate::model::{Action, Device, Measurement, Override};
use crate::rules::{ModelRule, Rules};
use crate::split::{split, Share};
use crate::value::format_ts;

/// Places of `uptime_ratio` and `perf_ratio` (SPEC 1: q6).
pub const RATIO_PLACES: u32 = 6;
/// How many distinct values an evidence text lists before it says "and N more".
const EVIDENCE_LIST: usize = 5;

/// SPEC 3.2.5: the exclusion reasons, in the order the SPEC lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    RegisteredAfterEpoch,
    UnknownGpuModel,
    DuplicateHardware,
    IpCap,
    NoBenchmark,
    ModelMismatch,
    HardwareMismatch,
    ImpossibleBenchmark,
    SuspectedVirtualGpu,
    LowUptime,
    /// SPEC 8, feature `min_streak`.
    ShortStreak,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::RegisteredAfterEpoch,
        Reason::UnknownGpuModel,
        Reason::DuplicateHardware,
        Reason::IpCap,
        Reason::NoBenchmark,
        Reason::ModelMismatch,
        Reason::HardwareMismatch,
        Reason::ImpossibleBenchmark,
        Reason::SuspectedVirtualGpu,
        Reason::LowUptime,
        Reason::ShortStreak,
    ];

    /// The reasons a rules version can give: `SHORT_STREAK` only with its feature.
    pub fn in_force(rules: &Rules) -> impl Iterator<Item = Reason> + '_ {
        Self::ALL
            .into_iter()
            .filter(|r| *r != Reason::ShortStreak || rules.min_streak_slots.is_some())
    }

    pub fn code(self) -> &'static str {
        match self {
            Reason::RegisteredAfterEpoch => "REGISTERED_AFTER_EPOCH",
            Reason::UnknownGpuModel => "UNKNOWN_GPU_MODEL",
            Reason::DuplicateHardware => "DUPLICATE_HARDWARE",
            Reason::IpCap => "IP_CAP",
            Reason::NoBenchmark => "NO_BENCHMARK",
            Reason::ModelMismatch => "MODEL_MISMATCH",
            Reason::HardwareMismatch => "HARDWARE_MISMATCH",
            Reason::ImpossibleBenchmark => "IMPOSSIBLE_BENCHMARK",
            Reason::SuspectedVirtualGpu => "SUSPECTED_VIRTUAL_GPU",
            Reason::LowUptime => "LOW_UPTIME",
            Reason::ShortStreak => "SHORT_STREAK",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// SPEC 3.2: notes that do not exclude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Note {
    InsufficientSpeedtests,
    LowBandwidth,
    SelfRental,
}

impl Note {
    pub const ALL: [Note; 3] = [
        Note::InsufficientSpeedtests,
        Note::LowBandwidth,
        Note::SelfRental,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Note::InsufficientSpeedtests => "INSUFFICIENT_SPEEDTESTS",
            Note::LowBandwidth => "LOW_BANDWIDTH",
            Note::SelfRental => "SELF_RENTAL",
        }
    }
}

/// An automatic exclusion and the evidence for it, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    pub reason: Reason,
    pub evidence: String,
}

/// Everything the scoring stage decided about one device, with every intermediate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceScore {
    pub device: Device,
    pub measurement: Measurement,
    pub total_slots: u64,
    /// `q6(online_slots / total_slots)`.
    pub uptime_ratio: Decimal,
    /// The model's row of the rules, `None` for an unknown model (then base = tflops =
    /// rental = 0).
    pub model: Option<ModelRule>,
    /// Name of the bandwidth tier, `None` when none applies.
    pub tier: Option<String>,
    pub bandwidth_multiplier: Decimal,
    /// `q6(median_tflops / tflops[model])`; `None` without benchmark or known model.
    pub perf_ratio: Option<Decimal>,
    /// `min(perf_ratio, 1)`, or 1 without `perf_ratio`.
    pub perf_factor: Decimal,
    /// Rented seconds that earn points: the union of rentals by other accounts, or
    /// (`rentals_require_online`) its part inside online slots.
    pub rental_seconds: u64,
    /// Automatic exclusions, in SPEC order.
    pub exclusions: Vec<Exclusion>,
    pub notes: Vec<Note>,
    /// The dispute decision on this device, if any.
    pub decision: Option<Override>,
    pub eligible: bool,
    pub uptime_points: Decimal,
    pub rental_points: Decimal,
    pub points: Decimal,
}

impl DeviceScore {
    /// SPEC 5 `reasons`: exclusion codes, notes and decisions, sorted by bytes.
    pub fn reason_codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self
            .exclusions
            .iter()
            .map(|e| e.reason.code().to_string())
            .collect();
        codes.extend(self.notes.iter().map(|n| n.code().to_string()));
        if let Some(o) = &self.decision {
            codes.push(decision_code(o));
        }
        codes.sort();
        codes
    }
}

/// `REINSTATED:<ticket>` or `MANUAL_EXCLUSION:<ticket>` (SPEC 7).
pub fn decision_code(o: &Override) -> String {
    match o.action {
        Action::Reinstate => format!("REINSTATED:{}", o.ticket),
        Action::Exclude => format!("MANUAL_EXCLUSION:{}", o.ticket),
    }
}

/// One account: SPEC 3.3 and its part of the SPEC 4 split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountScore {
    pub account_id: String,
    pub devices: u64,
    pub eligible_devices: u64,
    pub points: Decimal,
    /// `P(a) = points * 10^points_decimals`.
    pub weight: u128,
    pub share: Share,
}

/// The outcome of one epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub total_slots: u64,
    /// Sorted by `device_id`.
    pub devices: Vec<DeviceScore>,
    /// Sorted by `account_id`.
    pub accounts: Vec<AccountScore>,
    pub total_points: Decimal,
    /// `T`, the sum of all `P(a)`.
    pub total_weight: u128,
    pub pool_units: u128,
    pub allocated_units: u128,
}

impl Settlement {
    pub fn unallocated_units(&self) -> u128 {
        self.pool_units - self.allocated_units
    }
}

/// Settles one epoch. `registry` is keyed by `device_id`; a device missing from
/// `measurements` had no events; `overrides` is keyed by `device_id` (at most one
/// decision per device, SPEC 7). `total_slots` comes from [`Epoch::total_slots`].
pub fn settle(
    epoch: &Epoch,
    rules: &Rules,
    total_slots: u64,
    registry: &BTreeMap<String, Device>,
    measurements: &BTreeMap<String, Measurement>,
    overrides: &BTreeMap<String, Override>,
) -> Settlement {
    let mut registry_reasons = registry_exclusions(registry, epoch.end, rules.max_devices_per_ip);
    let empty = Measurement::default();
    let devices: Vec<DeviceScore> = registry
        .values()
        .map(|d| {
            let m = measurements.get(&d.device_id).unwrap_or(&empty);
            let from_registry = registry_reasons.remove(&d.device_id).unwrap_or_default();
            score_device(
                epoch,
                rules,
                total_slots,
                d,
                m,
                from_registry,
                overrides.get(&d.device_id),
            )
        })
        .collect();

    let mut by_account: BTreeMap<&str, (u64, u64, Decimal)> = BTreeMap::new();
    for s in &devices {
        let e = by_account
            .entry(&s.device.account_id)
            .or_insert((0, 0, Decimal::ZERO));
        e.0 += 1;
        e.1 += u64::from(s.eligible);
        e.2 = e.2.checked_add(s.points).expect("bounded by limits.rs");
    }
    let weights: Vec<(&str, u128)> = by_account
        .iter()
        .map(|(&a, &(_, _, p))| (a, to_units(p, rules.points_decimals)))
        .collect();
    let shares = split(epoch.pool_units, &weights);
    let accounts: Vec<AccountScore> = by_account
        .iter()
        .zip(weights.iter().zip(shares))
        .map(
            |((&a, &(n, eligible, points)), (&(_, weight), share))| AccountScore {
                account_id: a.to_string(),
                devices: n,
                eligible_devices: eligible,
                points,
                weight,
                share,
            },
        )
        .collect();
    let total_points = accounts
        .iter()
        .try_fold(Decimal::ZERO, |acc, a| acc.checked_add(a.points))
        .expect("bounded by limits.rs");
    let total_weight = weights.iter().map(|w| w.1).sum();
    let allocated_units = accounts.iter().map(|a| a.share.units()).sum();
    assert!(
        total_weight == 0 || allocated_units == epoch.pool_units,
        "the split must allocate the whole pool"
    );
    Settlement {
        total_slots,
        devices,
        accounts,
        total_points,
        total_weight,
        pool_units: epoch.pool_units,
        allocated_units,
    }
}

/// `DUPLICATE_HARDWARE` and `IP_CAP`: judged on the registry alone, among devices
/// registered before the epoch's end, in (`registered_at`, `device_id`) order.
fn registry_exclusions(
    registry: &BTreeMap<String, Device>,
    end: i64,
    max_per_ip: u64,
) -> BTreeMap<String, Vec<Exclusion>> {
    let mut order: Vec<&Device> = registry
        .values()
        .filter(|d| d.registered_at < end)
        .collect();
    order.sort_by(|a, b| (a.registered_at, &a.device_id).cmp(&(b.registered_at, &b.device_id)));
    let mut by_hardware: BTreeMap<&str, Vec<&Device>> = BTreeMap::new();
    let mut by_ip: BTreeMap<IpAddr, Vec<&Device>> = BTreeMap::new();
    for d in &order {
        by_hardware.entry(&d.hardware_id).or_default().push(d);
        by_ip.entry(d.ip).or_default().push(d);
    }
    let max = max_per_ip as usize;
    let mut out: BTreeMap<String, Vec<Exclusion>> = BTreeMap::new();
    for d in registry.values() {
        let mut found = Vec::new();
        if let Some(holders) = by_hardware.get(d.hardware_id.as_str()) {
            let first = holders[0];
            if first.device_id != d.device_id {
                found.push(Exclusion {
                    reason: Reason::DuplicateHardware,
                    evidence: format!(
                        "hardware_id {} is held first by device {} (registered_at {}); {} device(s) registered \
                         before the epoch end report this hardware_id",
                        d.hardware_id,
                        first.device_id,
                        format_ts(first.registered_at),
                        holders.len()
                    ),
                });
            }
        }
        if let Some(sharing) = by_ip.get(&d.ip) {
            if sharing.len() > max && !sharing[..max].iter().any(|k| k.device_id == d.device_id) {
                let rank = match sharing.iter().position(|k| k.device_id == d.device_id) {
                    Some(p) => format!(
                        "this device is number {} in (registered_at, device_id) order",
                        p + 1
                    ),
                    None => "this device was registered after the epoch end".to_string(),
                };
                let keep: Vec<&str> = sharing[..max]
                    .iter()
                    .map(|k| k.device_id.as_str())
                    .collect();
                found.push(Exclusion {
                    reason: Reason::IpCap,
                    evidence: format!(
                        "{} devices registered before the epoch end share this device's IP address, more than \
                         max_devices_per_ip = {max}; the first {max} keep it: {}; {rank}",
                        sharing.len(),
                        keep.join(", ")
                    ),
                });
            }
        }
        if !found.is_empty() {
            out.insert(d.device_id.clone(), found);
        }
    }
    out
}

fn list(values: &[String]) -> String {
    let mut s = values
        .iter()
        .take(EVIDENCE_LIST)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > EVIDENCE_LIST {
        s.push_str(&format!(" and {} more", values.len() - EVIDENCE_LIST));
    }
    s
}

fn opt(d: Option<Decimal>) -> String {
    d.map_or_else(|| "none".to_string(), |d| d.to_string())
}

/// SPEC 3.2, steps 1 to 6, for one device.
fn score_device(
    epoch: &Epoch,
    rules: &Rules,
    total_slots: u64,
    d: &Device,
    m: &Measurement,
    from_registry: Vec<Exclusion>,
    decision: Option<&Override>,
) -> DeviceScore {
    let model = rules.models.get(&d.gpu_model).cloned();
    let mut exclusions = Vec::new();
    let mut notes = Vec::new();
    let mut exclude =
        |reason: Reason, evidence: String| exclusions.push(Exclusion { reason, evidence });

    // REGISTERED_AFTER_EPOCH
    if d.registered_at >= epoch.end {
        exclude(
            Reason::RegisteredAfterEpoch,
            format!(
                "registered_at {} is not before the epoch end {}",
                format_ts(d.registered_at),
                format_ts(epoch.end)
            ),
        );
    }
    // UNKNOWN_GPU_MODEL
    if model.is_none() {
        exclude(
            Reason::UnknownGpuModel,
            format!(
                "gpu_model {} is not in the model table of rules {}",
                d.gpu_model, rules.version
            ),
        );
    }
    // DUPLICATE_HARDWARE, IP_CAP
    for e in from_registry {
        exclude(e.reason, e.evidence);
    }
    // NO_BENCHMARK
    if m.benchmarks == 0 {
        exclude(
            Reason::NoBenchmark,
            "no benchmark with a timestamp inside the epoch".to_string(),
        );
    }
    // MODEL_MISMATCH
    if m.benchmarks_other_model > 0 {
        exclude(
            Reason::ModelMismatch,
            format!(
                "{} of {} in-epoch benchmarks report gpu_model {}; the registry says {}",
                m.benchmarks_other_model,
                m.benchmarks,
                list(&m.other_models),
                d.gpu_model
            ),
        );
    }
    // HARDWARE_MISMATCH
    if m.benchmarks_other_hardware > 0 {
        exclude(
            Reason::HardwareMismatch,
            format!(
                "{} of {} in-epoch benchmarks report hardware_id {}; the registry says {}",
                m.benchmarks_other_hardware,
                m.benchmarks,
                list(&m.other_hardware_ids),
                d.hardware_id
            ),
        );
    }
    // SPEC 3.2.3: perf_ratio, rounded before it is compared.
    let perf_ratio = match (&model, m.median_tflops) {
        (Some(model), Some(median)) => Some(ratio_rounded(median, model.tflops, RATIO_PLACES)),
        _ => None,
    };
    let perf_factor = perf_ratio.map_or(Decimal::ONE, |r| r.min(Decimal::ONE));
    if let (Some(r), Some(model)) = (perf_ratio, &model) {
        let how = format!(
            "perf_ratio {r} = q6(median_tflops {} / reference tflops {} of {})",
            opt(m.median_tflops),
            model.tflops,
            model.name
        );
        // IMPOSSIBLE_BENCHMARK
        if r > rules.max_perf_ratio {
            exclude(
                Reason::ImpossibleBenchmark,
                format!("{how} is above max_perf_ratio {}", rules.max_perf_ratio),
            );
        }
        // SUSPECTED_VIRTUAL_GPU
        if r < rules.min_perf_ratio {
            exclude(
                Reason::SuspectedVirtualGpu,
                format!("{how} is below min_perf_ratio {}", rules.min_perf_ratio),
            );
        }
    }
    // LOW_UPTIME: online_slots < min_uptime * total_slots, exactly.
    if int_less_than_product(m.online_slots, rules.min_uptime, total_slots) {
        exclude(
            Reason::LowUptime,
            format!(
                "online in {} of {} slots; min_uptime {} requires at least {} slots",
                m.online_slots,
                total_slots,
                rules.min_uptime,
                (rules.min_uptime * Decimal::from(total_slots)).normalize()
            ),
        );
    }

    // SHORT_STREAK (SPEC 8)
    if let Some(min) = rules.min_streak_slots {
        if m.longest_streak_slots < min {
            exclude(
                Reason::ShortStreak,
                format!(
                    "longest run of consecutive online slots is {}, shorter than min_streak_slots {min}",
                    m.longest_streak_slots
                ),
            );
        }
    }

    // SPEC 3.2.2: bandwidth tier on the medians.
    let (tier, bandwidth_multiplier) = if m.speedtests < rules.min_speedtests {
        notes.push(Note::InsufficientSpeedtests);
        (None, Decimal::ZERO)
    } else {
        let found = match (
            m.median_download_mbps,
            m.median_upload_mbps,
            m.median_latency_ms,
        ) {
            (Some(down), Some(up), Some(lat)) => rules.tiers.iter().find(|t| {
                down >= t.min_download_mbps && up >= t.min_upload_mbps && lat <= t.max_latency_ms
            }),
            _ => None,
        };
        match found {
            Some(t) => (Some(t.name.clone()), t.multiplier),
            None => {
                notes.push(Note::LowBandwidth);
                (None, Decimal::ZERO)
            }
        }
    };
    // SPEC 3.2.4: SELF_RENTAL
    if m.self_rental_seconds > 0 {
        notes.push(Note::SelfRental);
    }

    let eligible = match decision.map(|o| o.action) {
        Some(Action::Reinstate) => true,
        Some(Action::Exclude) => false,
        None => exclusions.is_empty(),
    };

    // SPEC 3.2.4 / SPEC 8: the rented seconds that earn.
    let rental_seconds = if rules.rentals_require_online {
        m.rental_online_seconds
    } else {
        m.rental_seconds
    };

    // SPEC 3.2.6: points.
    let pd = rules.points_decimals;
    let (uptime_points, rental_points) = if eligible {
        let zero = Decimal::ZERO;
        let (base, rental) = model.as_ref().map_or((zero, zero), |r| (r.base, r.rental));
        (
            product_rounded(
                &[base, bandwidth_multiplier, perf_factor],
                &[u64::from(d.gpu_count), m.online_slots],
                1,
                pd,
            ),
            product_rounded(
                &[rental],
                &[rental_seconds, u64::from(d.gpu_count)],
                3600,
                pd,
            ),
        )
    } else {
        (Decimal::new(0, pd), Decimal::new(0, pd))
    };
    let points = uptime_points + rental_points;

    DeviceScore {
        device: d.clone(),
        measurement: m.clone(),
        total_slots,
        uptime_ratio: int_ratio_rounded(m.online_slots, total_slots, RATIO_PLACES),
        model,
        tier,
        bandwidth_multiplier,
        perf_ratio,
        perf_factor,
        rental_seconds,
        exclusions,
        notes,
        decision: decision.cloned(),
        eligible,
        uptime_points,
        rental_points,
        points,
    }
}
