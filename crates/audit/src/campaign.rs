//! `tally campaign OUT_DIR... --total POOL` (issue 3): a campaign's pool spread over
//! several epochs. Checks that the epochs do not overlap, that they use one token
//! precision, and that their pools add up to the campaign total; then gives each
//! account's units per epoch and in total, exactly, from the published files alone.

use std::collections::BTreeMap;
use std::path::Path;

use tally_core::epoch::pool_units;
use tally_core::exact::units_text;
use tally_core::value::parse_rfc3339;

use crate::read::Published;

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

/// Reads one published run through [`Published::load`], which refuses files that do
/// not agree with each other (units against `summary.json`, repeated accounts...).
pub fn read_epoch(out: &Path) -> Result<CampaignEpoch, CampaignError> {
    let p = Published::load(out).map_err(|e| err(e.to_string()))?;
    let time = |t: &str| {
        parse_rfc3339(t.as_bytes()).ok_or_else(|| {
            err(format!(
                "{}/summary.json: {t:?} is not a timestamp",
                out.display()
            ))
        })
    };
    Ok(CampaignEpoch {
        start: time(&p.info.start)?,
        end: time(&p.info.end)?,
        id: p.info.epoch_id,
        decimals: p.info.decimals,
        pool_units: p.info.pool_units,
        units: p
            .accounts
            .into_iter()
            .map(|a| (a.account_id, a.token_units))
            .collect(),
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
    let mut header = vec!["account_id".to_string()];
    header.extend(
        epochs
            .iter()
            .flat_map(|e| [format!("{}_units", e.id), format!("{}_tokens", e.id)]),
    );
    header.extend(["total_units".to_string(), "total_tokens".to_string()]);
    let mut w = tally_report::CsvOut::new(&header);
    let mut row = |name: &str, per: Vec<u128>| {
        // Every row is part of the campaign total, which `check` bounded.
        let total: u128 = per.iter().sum();
        let mut r = vec![name.to_string()];
        r.extend(
            per.iter()
                .flat_map(|&u| [u.to_string(), units_text(u, decimals)]),
        );
        r.extend([total.to_string(), units_text(total, decimals)]);
        w.row(&r);
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
            // `Published::load` checked that the units fit in the pool.
            .map(|e| e.pool_units - e.units.values().sum::<u128>())
            .collect(),
    );
    w.finish()
}
