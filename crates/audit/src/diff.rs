//! `tally diff OUT_A OUT_B`: what changed between two runs, per account and per
//! device, largest token change first.
//!
//! For every device that changed it names the inputs of the points formula that
//! differ (registry, rules parameters of its model, online slots, bandwidth tier and
//! multiplier, perf ratio and factor, rented seconds, eligibility) and the reasons it
//! gained and lost, so a miner sees the cause of a change and not only its size. The
//! bookkeeping accounts for every unit: the units gained minus the units lost is the
//! change of the allocated units, which is 0 when both pools are allocated in full
//! and equal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use rust_decimal::Decimal;
use tally_core::exact::units_text;
use tally_core::Rules;

use crate::error::{AuditError, Result};
use crate::read::{AccountRow, DeviceRow, Published};

#[derive(Debug)]
pub struct Diff {
    pub a: RunView,
    pub b: RunView,
    /// `parameter: a -> b` for every rules parameter that differs.
    pub rules_changes: Vec<String>,
    pub rules_file_differs: bool,
    /// Input files (by name, from the manifests) that differ: `(file, how)`.
    pub input_changes: Vec<(String, &'static str)>,
    /// Every account of either run, largest token change first (ties by account_id).
    pub accounts: Vec<AccountChange>,
    pub totals: Totals,
}

#[derive(Debug)]
pub struct RunView {
    pub epoch_id: String,
    pub rules_version: String,
    pub pool_units: u128,
    pub allocated_units: u128,
    pub total_points: Decimal,
    pub decimals: u32,
}

/// The units that moved between accounts.
#[derive(Debug, PartialEq, Eq)]
pub struct Totals {
    pub accounts_gained: usize,
    pub accounts_lost: usize,
    pub accounts_unchanged: usize,
    pub units_gained: u128,
    pub units_lost: u128,
    /// `units_gained - units_lost`, which is `allocated_units(B) - allocated_units(A)`.
    pub net: i128,
}

#[derive(Debug)]
pub struct AccountChange {
    pub account_id: String,
    pub a: Option<AccountRow>,
    pub b: Option<AccountRow>,
    pub units_change: i128,
    pub points_change: Decimal,
    /// The devices that changed, largest points change first (ties by device_id).
    /// A device that moved between accounts is listed under its account in B.
    pub devices: Vec<DeviceChange>,
}

#[derive(Debug)]
pub struct DeviceChange {
    pub device_id: String,
    pub a: Option<DeviceRow>,
    pub b: Option<DeviceRow>,
    pub points_change: Decimal,
    pub reasons_gained: Vec<String>,
    pub reasons_lost: Vec<String>,
    /// The inputs of the points formula that differ, in the formula's order, and the
    /// rules version when it differs.
    pub inputs: Vec<InputChange>,
}

#[derive(Debug)]
pub struct InputChange {
    pub name: String,
    pub a: String,
    pub b: String,
}

/// Compares run A (before) with run B (after).
pub fn diff(a: &Published, b: &Published) -> Result<Diff> {
    if a.info.decimals != b.info.decimals {
        return Err(AuditError::Incomparable(format!(
            "the runs count tokens with different decimals ({} and {}), so their units cannot be compared",
            a.info.decimals, b.info.decimals
        )));
    }
    let devices = device_changes(a, b);
    let mut by_account: BTreeMap<String, Vec<DeviceChange>> = BTreeMap::new();
    for d in devices {
        let owner = d.b.as_ref().or(d.a.as_ref()).expect("in one run");
        by_account
            .entry(owner.account_id.clone())
            .or_default()
            .push(d);
    }
    let ids: BTreeSet<&String> = a
        .accounts
        .iter()
        .chain(&b.accounts)
        .map(|x| &x.account_id)
        .collect();
    let mut accounts: Vec<AccountChange> = ids
        .into_iter()
        .map(|id| {
            let ra = a.account(id).cloned();
            let rb = b.account(id).cloned();
            let units = |r: &Option<AccountRow>| r.as_ref().map_or(0, |r| r.token_units) as i128;
            let points = |r: &Option<AccountRow>| r.as_ref().map_or(Decimal::ZERO, |r| r.points);
            let mut devices = by_account.remove(id).unwrap_or_default();
            devices.sort_by(|x, y| {
                y.points_change
                    .abs()
                    .cmp(&x.points_change.abs())
                    .then_with(|| x.device_id.cmp(&y.device_id))
            });
            AccountChange {
                account_id: id.clone(),
                units_change: units(&rb) - units(&ra),
                points_change: points(&rb) - points(&ra),
                a: ra,
                b: rb,
                devices,
            }
        })
        .collect();
    accounts.sort_by(|x, y| {
        y.units_change
            .abs()
            .cmp(&x.units_change.abs())
            .then_with(|| x.account_id.cmp(&y.account_id))
    });
    let totals = totals(&accounts);
    Ok(Diff {
        a: run_view(a),
        b: run_view(b),
        rules_changes: rules_changes(&a.rules, &b.rules),
        rules_file_differs: a.rules_text != b.rules_text,
        input_changes: input_file_changes(a, b),
        accounts,
        totals,
    })
}

fn input_file_changes(a: &Published, b: &Published) -> Vec<(String, &'static str)> {
    let hashes = |p: &Published| -> BTreeMap<String, String> {
        p.inputs
            .iter()
            .map(|i| (i.file.clone(), i.sha256.clone()))
            .collect()
    };
    let (ha, hb) = (hashes(a), hashes(b));
    let files: BTreeSet<&String> = ha.keys().chain(hb.keys()).collect();
    files
        .into_iter()
        .filter_map(|f| {
            let how = match (ha.get(f), hb.get(f)) {
                (Some(x), Some(y)) if x == y => return None,
                (Some(_), Some(_)) => "changed",
                (Some(_), None) => "only in A",
                _ => "only in B",
            };
            Some((f.clone(), how))
        })
        .collect()
}

fn run_view(p: &Published) -> RunView {
    RunView {
        epoch_id: p.info.epoch_id.clone(),
        rules_version: p.rules.version.clone(),
        pool_units: p.info.pool_units,
        allocated_units: p.info.allocated_units,
        total_points: p.info.total_points,
        decimals: p.info.decimals,
    }
}

fn totals(accounts: &[AccountChange]) -> Totals {
    let change = |pred: fn(i128) -> bool| accounts.iter().filter(move |a| pred(a.units_change));
    Totals {
        accounts_gained: change(|u| u > 0).count(),
        accounts_lost: change(|u| u < 0).count(),
        accounts_unchanged: change(|u| u == 0).count(),
        units_gained: change(|u| u > 0)
            .map(|a| a.units_change.unsigned_abs())
            .sum(),
        units_lost: change(|u| u < 0)
            .map(|a| a.units_change.unsigned_abs())
            .sum(),
        net: accounts.iter().map(|a| a.units_change).sum(),
    }
}

/// Every device of either run that changed in points, eligibility, reasons or an
/// input of the points formula.
fn device_changes(a: &Published, b: &Published) -> Vec<DeviceChange> {
    let ids: BTreeSet<&String> = a
        .devices
        .iter()
        .chain(&b.devices)
        .map(|d| &d.device_id)
        .collect();
    let (ma, mb): (BTreeMap<_, _>, BTreeMap<_, _>) = (
        a.devices.iter().map(|d| (&d.device_id, d)).collect(),
        b.devices.iter().map(|d| (&d.device_id, d)).collect(),
    );
    ids.into_iter()
        .filter_map(|id| {
            let (da, db) = (ma.get(id).copied(), mb.get(id).copied());
            let reasons = |d: Option<&DeviceRow>| -> BTreeSet<String> {
                d.map(|d| d.reasons.iter().cloned().collect())
                    .unwrap_or_default()
            };
            let (ra, rb) = (reasons(da), reasons(db));
            let points = |d: Option<&DeviceRow>| d.map_or(Decimal::ZERO, |d| d.points);
            let inputs = match (da, db) {
                (Some(x), Some(y)) => input_changes(x, y, &a.rules, &b.rules),
                _ => Vec::new(),
            };
            let mut change = DeviceChange {
                device_id: id.clone(),
                points_change: points(db) - points(da),
                reasons_gained: rb.difference(&ra).cloned().collect(),
                reasons_lost: ra.difference(&rb).cloned().collect(),
                inputs,
                a: da.cloned(),
                b: db.cloned(),
            };
            let same = da.is_some()
                && db.is_some()
                && change.inputs.is_empty()
                && change.reasons_gained.is_empty()
                && change.reasons_lost.is_empty()
                && da.map(|d| (d.uptime_points, d.rental_points))
                    == db.map(|d| (d.uptime_points, d.rental_points));
            if same {
                return None;
            }
            // Named for the devices that changed only, so that a new rules version
            // does not list every device of the registry.
            if a.rules.version != b.rules.version {
                change.inputs.push(InputChange {
                    name: "rules version".into(),
                    a: a.rules.version.clone(),
                    b: b.rules.version.clone(),
                });
            }
            Some(change)
        })
        .collect()
}

fn opt(d: Option<Decimal>) -> String {
    d.map_or_else(|| "none".to_string(), |d| d.to_string())
}

fn push<T: PartialEq>(
    out: &mut Vec<InputChange>,
    name: &str,
    a: T,
    b: T,
    show: impl Fn(&T) -> String,
) {
    if a != b {
        out.push(InputChange {
            name: name.to_string(),
            a: show(&a),
            b: show(&b),
        });
    }
}

/// The inputs of `points = q6(base × gpu_count × online_slots × multiplier ×
/// perf_factor) + q6(rental × gpu_count × rental_seconds / 3600)` that differ, and
/// eligibility. Decimals compare by value (`0.10` equals `0.1`).
fn input_changes(a: &DeviceRow, b: &DeviceRow, ra: &Rules, rb: &Rules) -> Vec<InputChange> {
    let mut v = Vec::new();
    let num = |n: &u64| n.to_string();
    let model = |r: &Rules, d: &DeviceRow| r.models.get(&d.gpu_model).cloned();
    let (ma, mb) = (model(ra, a), model(rb, b));
    push(&mut v, "account_id", &a.account_id, &b.account_id, |s| {
        s.to_string()
    });
    push(&mut v, "gpu_model", &a.gpu_model, &b.gpu_model, |s| {
        s.to_string()
    });
    push(&mut v, "gpu_count", a.gpu_count, b.gpu_count, |n| {
        n.to_string()
    });
    push(
        &mut v,
        "base (rules)",
        ma.as_ref().map(|m| m.base),
        mb.as_ref().map(|m| m.base),
        |d| opt(*d),
    );
    push(
        &mut v,
        "rental (rules)",
        ma.as_ref().map(|m| m.rental),
        mb.as_ref().map(|m| m.rental),
        |d| opt(*d),
    );
    push(&mut v, "online_slots", a.online_slots, b.online_slots, num);
    let tier = |t: &Option<String>| t.clone().unwrap_or_else(|| "none".into());
    push(
        &mut v,
        "bandwidth_tier",
        a.bandwidth_tier.clone(),
        b.bandwidth_tier.clone(),
        tier,
    );
    push(
        &mut v,
        "bandwidth_multiplier",
        a.bandwidth_multiplier,
        b.bandwidth_multiplier,
        Decimal::to_string,
    );
    push(&mut v, "perf_ratio", a.perf_ratio, b.perf_ratio, |d| {
        opt(*d)
    });
    push(
        &mut v,
        "perf_factor",
        a.perf_factor,
        b.perf_factor,
        Decimal::to_string,
    );
    push(
        &mut v,
        "rental_seconds",
        a.rental_seconds,
        b.rental_seconds,
        num,
    );
    push(&mut v, "eligible", a.eligible, b.eligible, bool::to_string);
    v
}

/// Every rules parameter that differs, as `name: a -> b`.
fn rules_changes(a: &Rules, b: &Rules) -> Vec<String> {
    let mut out = Vec::new();
    let mut param = |name: &str, same: bool, x: String, y: String| {
        if !same {
            out.push(format!("{name}: {x} -> {y}"));
        }
    };
    let features = |r: &Rules| format!("[{}]", r.features.join(", "));
    param(
        "version",
        a.version == b.version,
        a.version.clone(),
        b.version.clone(),
    );
    param(
        "features",
        a.features == b.features,
        features(a),
        features(b),
    );
    macro_rules! field {
        ($($f:ident),*) => {$(
            param(stringify!($f), a.$f == b.$f, a.$f.to_string(), b.$f.to_string());
        )*};
    }
    field!(
        slot_seconds,
        min_uptime,
        min_speedtests,
        max_perf_ratio,
        min_perf_ratio,
        max_devices_per_ip,
        max_rejected_ratio,
        points_decimals,
        rentals_require_online
    );
    let streak = |r: &Rules| {
        r.min_streak_slots
            .map_or("none".to_string(), |n| n.to_string())
    };
    param(
        "min_streak_slots",
        a.min_streak_slots == b.min_streak_slots,
        streak(a),
        streak(b),
    );
    let names: BTreeSet<&String> = a.models.keys().chain(b.models.keys()).collect();
    for name in names {
        match (a.models.get(name), b.models.get(name)) {
            (Some(x), Some(y)) => {
                for (f, u, v) in [
                    ("base", x.base, y.base),
                    ("tflops", x.tflops, y.tflops),
                    ("rental", x.rental, y.rental),
                ] {
                    param(
                        &format!("models.{name}.{f}"),
                        u == v,
                        u.to_string(),
                        v.to_string(),
                    );
                }
            }
            (x, y) => {
                let show = |m: Option<&tally_core::rules::ModelRule>| {
                    m.map_or("absent".to_string(), |m| {
                        format!("base {}, tflops {}, rental {}", m.base, m.tflops, m.rental)
                    })
                };
                param(&format!("models.{name}"), false, show(x), show(y));
            }
        }
    }
    let tiers = |r: &Rules| -> Vec<String> {
        r.tiers
            .iter()
            .map(|t| {
                format!(
                    "{} (download >= {}, upload >= {}, latency <= {}, multiplier {})",
                    t.name, t.min_download_mbps, t.min_upload_mbps, t.max_latency_ms, t.multiplier
                )
            })
            .collect()
    };
    let (ta, tb) = (tiers(a), tiers(b));
    param(
        "bandwidth_tiers",
        a.tiers == b.tiers,
        ta.join("; "),
        tb.join("; "),
    );
    out
}

/// `a -> b (delta)`, or `a (unchanged)`.
fn change(a: String, b: String, delta: String) -> String {
    if a == b {
        format!("{a} (unchanged)")
    } else {
        format!("{a} -> {b} ({delta})")
    }
}

/// A signed change of a decimal: `+1.200000`, `-0.600000`, `0.000000`.
fn signed(d: Decimal) -> String {
    if d.is_sign_positive() && !d.is_zero() {
        format!("+{d}")
    } else if d.is_zero() {
        d.abs().to_string()
    } else {
        d.to_string()
    }
}

/// A signed change of units, as tokens with `decimals` places.
fn signed_units(delta: i128, decimals: u32) -> String {
    let sign = match delta.signum() {
        1 => "+",
        -1 => "-",
        _ => "",
    };
    format!("{sign}{}", units_text(delta.unsigned_abs(), decimals))
}

impl Diff {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        for (label, r) in [("A", &self.a), ("B", &self.b)] {
            let _ = writeln!(
                o,
                "Run {label}: epoch {}, rules {}, pool {} units ({} allocated), total points {}",
                r.epoch_id, r.rules_version, r.pool_units, r.allocated_units, r.total_points
            );
        }
        if self.rules_changes.is_empty() && !self.rules_file_differs {
            let _ = writeln!(o, "Rules: the same rules.toml");
        } else if self.rules_changes.is_empty() {
            let _ = writeln!(
                o,
                "Rules: rules.toml differs, but in no parameter (comments or layout only)"
            );
        } else {
            let _ = writeln!(o, "Rules changed:");
            for c in &self.rules_changes {
                let _ = writeln!(o, "  {c}");
            }
        }
        if self.input_changes.is_empty() {
            let _ = writeln!(o, "Inputs: the same files (by SHA-256 in manifest.json)");
        } else {
            let list: Vec<String> = self
                .input_changes
                .iter()
                .map(|(f, how)| format!("{f} {how}"))
                .collect();
            let _ = writeln!(o, "Inputs: {}", list.join(", "));
        }
        let t = &self.totals;
        let _ = writeln!(
            o,
            "Accounts: {} gained, {} lost, {} unchanged (in token units)",
            t.accounts_gained, t.accounts_lost, t.accounts_unchanged
        );
        let _ = writeln!(
            o,
            "Units moved: {} gained, {} lost, net {} (allocated {} in B - {} in A)",
            t.units_gained,
            t.units_lost,
            signed_units(t.net, 0),
            self.b.allocated_units,
            self.a.allocated_units
        );
        let mut quiet = 0;
        for a in &self.accounts {
            if a.units_change == 0
                && a.points_change.is_zero()
                && a.devices.is_empty()
                && a.a.is_some()
                && a.b.is_some()
            {
                quiet += 1;
                continue;
            }
            self.write_account(&mut o, a);
        }
        if quiet > 0 {
            let _ = writeln!(o, "\n{quiet} accounts with no change are not listed.");
        }
        o
    }

    fn write_account(&self, o: &mut String, a: &AccountChange) {
        let dec = self.b.decimals;
        let side = |r: &Option<AccountRow>, f: fn(&AccountRow) -> String| {
            r.as_ref().map_or_else(|| "absent".to_string(), f)
        };
        let units = if dec == 0 {
            String::new()
        } else {
            format!(
                "; token_units {}",
                change(
                    side(&a.a, |r| r.token_units.to_string()),
                    side(&a.b, |r| r.token_units.to_string()),
                    signed_units(a.units_change, 0)
                )
            )
        };
        let _ = writeln!(
            o,
            "\n{}: tokens {}{units}; points {}",
            a.account_id,
            change(
                side(&a.a, |r| r.tokens.clone()),
                side(&a.b, |r| r.tokens.clone()),
                signed_units(a.units_change, dec)
            ),
            change(
                side(&a.a, |r| r.points.to_string()),
                side(&a.b, |r| r.points.to_string()),
                signed(a.points_change)
            )
        );
        if a.points_change.is_zero() && a.units_change != 0 {
            let why = if self.a.total_points == self.b.total_points {
                "the leftover units of the split (SPEC 4) fell differently".to_string()
            } else {
                format!(
                    "the total of all points went from {} to {}",
                    self.a.total_points, self.b.total_points
                )
            };
            let _ = writeln!(o, "  its own points did not change; its share did: {why}");
        }
        for d in &a.devices {
            write_device(o, d);
        }
    }

    /// One row per account of either run (largest token change first), each followed
    /// by a row per device of it that changed.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut w = tally_report::CsvOut::new(CSV_COLUMNS);
        let dec = self.b.decimals;
        let opt_text = |v: Option<String>| v.unwrap_or_default();
        for a in &self.accounts {
            let acc =
                |r: &Option<AccountRow>, f: fn(&AccountRow) -> String| opt_text(r.as_ref().map(f));
            w.row([
                "account".to_string(),
                a.account_id.clone(),
                String::new(),
                acc(&a.a, |r| r.points.to_string()),
                acc(&a.b, |r| r.points.to_string()),
                signed(a.points_change),
                acc(&a.a, |r| r.token_units.to_string()),
                acc(&a.b, |r| r.token_units.to_string()),
                signed_units(a.units_change, 0),
                signed_units(a.units_change, dec),
                acc(&a.a, |r| r.eligible_devices.to_string()),
                acc(&a.b, |r| r.eligible_devices.to_string()),
                String::new(),
                String::new(),
                String::new(),
            ]);
            for d in &a.devices {
                let dev = |r: &Option<DeviceRow>, f: fn(&DeviceRow) -> String| {
                    opt_text(r.as_ref().map(f))
                };
                let inputs: Vec<String> = d
                    .inputs
                    .iter()
                    .map(|c| format!("{} {} -> {}", c.name, c.a, c.b))
                    .collect();
                w.row([
                    "device".to_string(),
                    a.account_id.clone(),
                    d.device_id.clone(),
                    dev(&d.a, |r| r.points.to_string()),
                    dev(&d.b, |r| r.points.to_string()),
                    signed(d.points_change),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    dev(&d.a, |r| r.eligible.to_string()),
                    dev(&d.b, |r| r.eligible.to_string()),
                    d.reasons_gained.join(";"),
                    d.reasons_lost.join(";"),
                    inputs.join("; "),
                ]);
            }
        }
        w.finish()
    }
}

/// The columns of `tally diff --format csv`. On an account row `eligible_a` and
/// `eligible_b` count its eligible devices; on a device row they are true/false, and
/// the token columns are empty (tokens go to accounts).
pub const CSV_COLUMNS: [&str; 15] = [
    "level",
    "account_id",
    "device_id",
    "points_a",
    "points_b",
    "points_change",
    "token_units_a",
    "token_units_b",
    "token_units_change",
    "tokens_change",
    "eligible_a",
    "eligible_b",
    "reasons_gained",
    "reasons_lost",
    "changed_inputs",
];

fn write_device(o: &mut String, d: &DeviceChange) {
    let points = |r: &Option<DeviceRow>| {
        r.as_ref()
            .map_or_else(|| "absent".to_string(), |r| r.points.to_string())
    };
    let presence = match (&d.a, &d.b) {
        (Some(_), None) => " (only in A)",
        (None, Some(_)) => " (only in B)",
        _ => "",
    };
    let _ = writeln!(
        o,
        "  device {}{presence}: points {}",
        d.device_id,
        change(points(&d.a), points(&d.b), signed(d.points_change))
    );
    for c in &d.inputs {
        let _ = writeln!(o, "    {}: {} -> {}", c.name, c.a, c.b);
    }
    if !d.reasons_gained.is_empty() {
        let _ = writeln!(o, "    reasons gained: {}", d.reasons_gained.join(", "));
    }
    if !d.reasons_lost.is_empty() {
        let _ = writeln!(o, "    reasons lost: {}", d.reasons_lost.join(", "));
    }
}
