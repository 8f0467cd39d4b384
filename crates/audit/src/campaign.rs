//! `tally campaign OUT_DIR... --total POOL` (issue 3): a campaign's pool spread over
//! several epochs. Checks that the epochs do not overlap, that they use one token
//! precision, and that their pools add up to the campaign total; then gives each
//! account's units per epoch and in total, exactly, from the published files alone.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;
use tally_core::epoch::pool_units;
use tally_core::exact::units_text;
use tally_core::value::parse_rfc3339;

#[derive(Debug, Clone)]
pub struct CampaignEpoch {
    pub id: String,
    pub start: i64,
    pub end: i64,
    pub decimals: u32,
    pub pool_units: u128,
    /// token_units by account_id.
    pub units: BTreeMap<String, u128>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CampaignError(pub String);

fn err(s: impl Into<String>) -> CampaignError {
    CampaignError(s.into())
}

/// Reads one published run: `summary.json` and `allocations.csv`.
pub fn read_epoch(out: &Path) -> Result<CampaignEpoch, CampaignError> {
    let where_ = out.display();
    let summary: Value = serde_json::from_slice(
        &fs::read(out.join("summary.json"))
            .map_err(|e| err(format!("{where_}/summary.json: {e}")))?,
    )
    .map_err(|e| err(format!("{where_}/summary.json: not valid JSON: {e}")))?;
    let text = |v: &Value, what: &str| -> Result<String, CampaignError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| err(format!("{where_}/summary.json: missing {what}")))
    };
    let e = &summary["epoch"];
    let time = |what: &str| -> Result<i64, CampaignError> {
        let t = text(&e[what], &format!("epoch.{what}"))?;
        parse_rfc3339(t.as_bytes()).ok_or_else(|| {
            err(format!(
                "{where_}/summary.json: epoch.{what} is not a timestamp"
            ))
        })
    };
    let decimals = e["decimals"]
        .as_u64()
        .ok_or_else(|| err(format!("{where_}/summary.json: missing epoch.decimals")))?
        as u32;
    let pool_units: u128 = text(&summary["pool_units"], "pool_units")?
        .parse()
        .map_err(|_| {
            err(format!(
                "{where_}/summary.json: pool_units is not an integer"
            ))
        })?;
    let mut units = BTreeMap::new();
    let mut r = csv::Reader::from_path(out.join("allocations.csv"))
        .map_err(|e| err(format!("{where_}/allocations.csv: {e}")))?;
    let headers = r
        .headers()
        .map_err(|e| err(format!("{where_}/allocations.csv: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| err(format!("{where_}/allocations.csv: no column {name}")))
    };
    let (a, u) = (col("account_id")?, col("token_units")?);
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| err(format!("{where_}/allocations.csv: {e}")))?;
        let n: u128 = rec[u].parse().map_err(|_| {
            err(format!(
                "{where_}/allocations.csv:{}: token_units is not an integer",
                i + 2
            ))
        })?;
        if units.insert(rec[a].to_string(), n).is_some() {
            return Err(err(format!(
                "{where_}/allocations.csv:{}: account {:?} is listed twice",
                i + 2,
                &rec[a]
            )));
        }
    }
    // The published files must agree with each other before they are added up.
    let allocated = units.values().try_fold(0u128, |acc, &n| acc.checked_add(n));
    let claimed: Option<u128> = summary["allocated_units"]
        .as_str()
        .and_then(|s| s.parse().ok());
    match (allocated, claimed) {
        (Some(sum), Some(claimed)) if sum == claimed && sum <= pool_units => {}
        _ => {
            return Err(err(format!(
                "{where_}: allocations.csv's token_units do not add up to summary.json's allocated_units \
                 within the pool; verify the run before adding it to a campaign"
            )))
        }
    }
    Ok(CampaignEpoch {
        id: text(&e["id"], "epoch.id")?,
        start: time("start")?,
        end: time("end")?,
        decimals,
        pool_units,
        units,
    })
}

/// Checks the epochs against each other and the total; sorted by start.
pub fn check(
    mut epochs: Vec<CampaignEpoch>,
    total: &str,
) -> Result<(Vec<CampaignEpoch>, u128), CampaignError> {
    if epochs.is_empty() {
        return Err(err("no epochs given"));
    }
    epochs.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    let decimals = epochs[0].decimals;
    if let Some(e) = epochs.iter().find(|e| e.decimals != decimals) {
        return Err(err(format!("epoch {} counts tokens with {} decimals, epoch {} with {decimals}: units are not comparable", e.id, e.decimals, epochs[0].id)));
    }
    for w in epochs.windows(2) {
        if w[1].start < w[0].end {
            return Err(err(format!(
                "epochs {} and {} overlap: {} starts before {} ends",
                w[0].id, w[1].id, w[1].id, w[0].id
            )));
        }
    }
    let total_units = pool_units(total, decimals).ok_or_else(|| {
        err(format!(
            "--total {total:?}: expected a decimal above 0 with at most {decimals} places"
        ))
    })?;
    // Each pool is below 10^38 (limits.rs); many of them could still pass u128.
    let sum = epochs
        .iter()
        .try_fold(0u128, |acc, e| acc.checked_add(e.pool_units))
        .ok_or_else(|| err("the epochs' pools add up to more than tally can count"))?;
    if sum != total_units {
        return Err(err(format!(
            "the epochs' pools add up to {}, not the campaign total {}: {}",
            units_text(sum, decimals),
            units_text(total_units, decimals),
            epochs
                .iter()
                .map(|e| format!("{} {}", e.id, units_text(e.pool_units, decimals)))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok((epochs, total_units))
}

/// The campaign table: one row per account, units and tokens per epoch (in start
/// order), the total units and tokens; a last row `(unallocated)` for what no account
/// received.
pub fn table(epochs: &[CampaignEpoch]) -> Vec<u8> {
    let decimals = epochs[0].decimals;
    let accounts: std::collections::BTreeSet<&String> =
        epochs.iter().flat_map(|e| e.units.keys()).collect();
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let mut header = vec!["account_id".to_string()];
    header.extend(
        epochs
            .iter()
            .flat_map(|e| [format!("{}_units", e.id), format!("{}_tokens", e.id)]),
    );
    header.extend(["total_units".to_string(), "total_tokens".to_string()]);
    w.write_record(&header).expect("in memory");
    let mut row = |name: &str, per: Vec<u128>| {
        // Every row is part of the campaign total, which `check` bounded.
        let total: u128 = per.iter().sum();
        let mut r = vec![name.to_string()];
        r.extend(
            per.iter()
                .flat_map(|&u| [u.to_string(), units_text(u, decimals)]),
        );
        r.extend([total.to_string(), units_text(total, decimals)]);
        w.write_record(&r).expect("in memory");
    };
    for a in &accounts {
        row(
            a,
            epochs
                .iter()
                .map(|e| e.units.get(*a).copied().unwrap_or(0))
                .collect(),
        );
    }
    row(
        "(unallocated)",
        epochs
            .iter()
            // `read_epoch` checked that the units fit in the pool.
            .map(|e| e.pool_units - e.units.values().sum::<u128>())
            .collect(),
    );
    w.into_inner().expect("in memory")
}
