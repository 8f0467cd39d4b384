//! Stage 1, aggregation: event logs to the per-device measurement table
//! ([`tally_core::Measurement`]), with polars' lazy engine.
//!
//! Polars filters to the epoch, derives slots, groups by device and sorts; what
//! leaves it per device is exact: counts, integer seconds, slot numbers and values
//! at scale 10^9 (i128), never a float. The few things polars would do inexactly or
//! in hash order are done here in Rust: medians (polars' `median` returns f64) from
//! the sorted values it hands over, unions of rental intervals, and streaks.

use polars::prelude::*;
use tally_core::value::median_of_sorted;
use tally_core::{Device, Measurement};

/// Event rows that passed validation, columnar, with devices as registry indexes.
#[derive(Debug, Default)]
pub struct Heartbeats {
    pub dev: Vec<u32>,
    pub ts: Vec<i64>,
}

#[derive(Debug, Default)]
pub struct Speedtests {
    pub dev: Vec<u32>,
    pub ts: Vec<i64>,
    pub download: Vec<i128>,
    pub upload: Vec<i128>,
    pub latency: Vec<i128>,
}

#[derive(Debug, Default)]
pub struct Benchmarks {
    pub dev: Vec<u32>,
    pub ts: Vec<i64>,
    pub gpu_model: Vec<String>,
    pub hardware_id: Vec<String>,
    pub tflops: Vec<i128>,
}

#[derive(Debug, Default)]
pub struct Rentals {
    pub dev: Vec<u32>,
    pub renter: Vec<String>,
    pub start: Vec<i64>,
    pub end: Vec<i64>,
}

/// The window and slot length aggregation needs.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub slot_seconds: i64,
}

/// Valid rows that aggregation left out: outside the epoch, or heartbeats before the
/// device's registration.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ignored {
    pub heartbeats: u64,
    pub speedtests: u64,
    pub benchmarks: u64,
    pub rentals: u64,
}

type PResult<T> = PolarsResult<T>;

fn u32s(name: &str, v: Vec<u32>) -> Column {
    Column::new(name.into(), v)
}

fn i64s(name: &str, v: Vec<i64>) -> Column {
    Column::new(name.into(), v)
}

fn i128s(name: &str, v: Vec<i128>) -> Column {
    Int128Chunked::from_vec(name.into(), v).into_column()
}

fn strs(name: &str, v: Vec<String>) -> Column {
    Column::new(name.into(), v)
}

fn in_window(ts: &str, w: Window) -> Expr {
    col(ts).gt_eq(lit(w.start)).and(col(ts).lt(lit(w.end)))
}

fn column_u64(df: &DataFrame, name: &str) -> PResult<Vec<u64>> {
    let c = df.column(name)?.cast(&DataType::UInt64)?;
    Ok(c.u64()?.no_null_iter().collect())
}

fn column_list<T>(
    df: &DataFrame,
    name: &str,
    mut each: impl FnMut(&Series) -> PResult<T>,
) -> PResult<Vec<T>> {
    let list = df.column(name)?.as_materialized_series().list()?;
    list.series_iter()
        .map(|s| each(&s.unwrap_or_else(|| Series::new_empty("".into(), &DataType::Null))))
        .collect()
}

fn i128_values(s: &Series) -> PResult<Vec<i128>> {
    Ok(s.i128()?.no_null_iter().collect())
}

fn string_values(s: &Series) -> PResult<Vec<String>> {
    Ok(s.str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// Runs the aggregation. `registry` is sorted by `device_id` and event `dev` values
/// index into it. Returns one measurement per registry device, in registry order.
pub fn aggregate(
    registry: &[Device],
    w: Window,
    hb: Heartbeats,
    st: Speedtests,
    bm: Benchmarks,
    rt: Rentals,
) -> PResult<(Vec<Measurement>, Ignored)> {
    let mut out = vec![Measurement::default(); registry.len()];
    // Each device's online slots as runs of absolute time, for SPEC 8's rentals ∩ online.
    let mut online: Vec<Vec<(i64, i64)>> = vec![Vec::new(); registry.len()];
    let mut ignored = Ignored::default();
    let reg = DataFrame::new_infer_height(vec![
        u32s("dev", (0..registry.len() as u32).collect()),
        i64s(
            "registered_at",
            registry.iter().map(|d| d.registered_at).collect(),
        ),
        strs(
            "reg_model",
            registry.iter().map(|d| d.gpu_model.clone()).collect(),
        ),
        strs(
            "reg_hardware",
            registry.iter().map(|d| d.hardware_id.clone()).collect(),
        ),
        strs(
            "reg_account",
            registry.iter().map(|d| d.account_id.clone()).collect(),
        ),
    ])?
    .lazy();
    let by_dev = || JoinArgs::new(JoinType::Inner);
    let sort_dev = || SortMultipleOptions::default().with_maintain_order(true);

    // SPEC 3.2.1: distinct online slots, from heartbeats in the epoch at or after
    // registration.
    let rows = hb.dev.len() as u64;
    let df = DataFrame::new_infer_height(vec![u32s("dev", hb.dev), i64s("ts", hb.ts)])?
        .lazy()
        .join(
            reg.clone().select([col("dev"), col("registered_at")]),
            [col("dev")],
            [col("dev")],
            by_dev(),
        )
        .filter(in_window("ts", w).and(col("ts").gt_eq(col("registered_at"))))
        .select([
            col("dev"),
            (col("ts") - lit(w.start))
                .floor_div(lit(w.slot_seconds))
                .alias("slot"),
        ])
        .group_by([col("dev")])
        .agg([
            len().alias("heartbeats"),
            col("slot")
                .unique()
                .sort(SortOptions::default())
                .alias("slots"),
        ])
        .sort(["dev"], sort_dev())
        .collect()?;
    let devs = column_u64(&df, "dev")?;
    let counts = column_u64(&df, "heartbeats")?;
    let slots = column_list(&df, "slots", |s| {
        Ok(s.cast(&DataType::Int64)?
            .i64()?
            .no_null_iter()
            .collect::<Vec<i64>>())
    })?;
    ignored.heartbeats = rows - counts.iter().sum::<u64>();
    for ((d, n), slots) in devs.into_iter().zip(counts).zip(slots) {
        let m = &mut out[d as usize];
        m.heartbeats = n;
        m.online_slots = slots.len() as u64;
        m.longest_streak_slots = longest_run(&slots);
        online[d as usize] = slot_runs(&slots, w);
    }

    // SPEC 3.2.2: speedtest medians.
    let rows = st.dev.len() as u64;
    let df = DataFrame::new_infer_height(vec![
        u32s("dev", st.dev),
        i64s("ts", st.ts),
        i128s("download", st.download),
        i128s("upload", st.upload),
        i128s("latency", st.latency),
    ])?
    .lazy()
    .filter(in_window("ts", w))
    .group_by([col("dev")])
    .agg([
        len().alias("n"),
        col("download").sort(SortOptions::default()),
        col("upload").sort(SortOptions::default()),
        col("latency").sort(SortOptions::default()),
    ])
    .sort(["dev"], sort_dev())
    .collect()?;
    let devs = column_u64(&df, "dev")?;
    let counts = column_u64(&df, "n")?;
    let down = column_list(&df, "download", i128_values)?;
    let up = column_list(&df, "upload", i128_values)?;
    let lat = column_list(&df, "latency", i128_values)?;
    ignored.speedtests = rows - counts.iter().sum::<u64>();
    for (i, d) in devs.into_iter().enumerate() {
        let m = &mut out[d as usize];
        m.speedtests = counts[i];
        m.median_download_mbps = median_of_sorted(&down[i]);
        m.median_upload_mbps = median_of_sorted(&up[i]);
        m.median_latency_ms = median_of_sorted(&lat[i]);
    }

    // SPEC 3.2.3: benchmark median, and benchmarks that report another model or card.
    let rows = bm.dev.len() as u64;
    let benchmarks = DataFrame::new_infer_height(vec![
        u32s("dev", bm.dev),
        i64s("ts", bm.ts),
        strs("gpu_model", bm.gpu_model),
        strs("hardware_id", bm.hardware_id),
        i128s("tflops", bm.tflops),
    ])?
    .lazy()
    .filter(in_window("ts", w))
    .join(
        reg.clone()
            .select([col("dev"), col("reg_model"), col("reg_hardware")]),
        [col("dev")],
        [col("dev")],
        by_dev(),
    );
    let df = benchmarks
        .clone()
        .group_by([col("dev")])
        .agg([len().alias("n"), col("tflops").sort(SortOptions::default())])
        .sort(["dev"], sort_dev())
        .collect()?;
    let devs = column_u64(&df, "dev")?;
    let counts = column_u64(&df, "n")?;
    let tflops = column_list(&df, "tflops", i128_values)?;
    ignored.benchmarks = rows - counts.iter().sum::<u64>();
    for (i, d) in devs.into_iter().enumerate() {
        let m = &mut out[d as usize];
        m.benchmarks = counts[i];
        m.median_tflops = median_of_sorted(&tflops[i]);
    }
    // Only the benchmarks that disagree with the registry: how many, and what they say.
    for (field, registered) in [("gpu_model", "reg_model"), ("hardware_id", "reg_hardware")] {
        let df = benchmarks
            .clone()
            .filter(col(field).neq(col(registered)))
            .group_by([col("dev")])
            .agg([
                len().alias("n"),
                col(field)
                    .unique()
                    .sort(SortOptions::default())
                    .alias("values"),
            ])
            .sort(["dev"], sort_dev())
            .collect()?;
        let devs = column_u64(&df, "dev")?;
        let counts = column_u64(&df, "n")?;
        let values = column_list(&df, "values", string_values)?;
        for ((d, n), v) in devs.into_iter().zip(counts).zip(values) {
            let m = &mut out[d as usize];
            if field == "gpu_model" {
                m.benchmarks_other_model = n;
                m.other_models = v;
            } else {
                m.benchmarks_other_hardware = n;
                m.other_hardware_ids = v;
            }
        }
    }

    // SPEC 3.2.4: rentals clipped to the epoch, split by who rents, sorted by start;
    // the union of each run is measured below.
    let rows = rt.dev.len() as u64;
    let df = DataFrame::new_infer_height(vec![
        u32s("dev", rt.dev),
        strs("renter", rt.renter),
        i64s("start", rt.start),
        i64s("end", rt.end),
    ])?
    .lazy()
    .filter(col("end").gt(lit(w.start)).and(col("start").lt(lit(w.end))))
    .join(
        reg.select([col("dev"), col("reg_account")]),
        [col("dev")],
        [col("dev")],
        by_dev(),
    )
    .select([
        col("dev"),
        col("renter").eq(col("reg_account")).alias("own"),
        col("start").clip(lit(w.start), lit(w.end)),
        col("end").clip(lit(w.start), lit(w.end)),
    ])
    .sort(
        ["dev", "own", "start"],
        SortMultipleOptions::default().with_maintain_order(true),
    )
    .collect()?;
    ignored.rentals = rows - df.height() as u64;
    let devs = column_u64(&df, "dev")?;
    let own: Vec<bool> = df
        .column("own")?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let starts: Vec<i64> = df.column("start")?.i64()?.no_null_iter().collect();
    let ends: Vec<i64> = df.column("end")?.i64()?.no_null_iter().collect();
    let mut i = 0;
    while i < devs.len() {
        let mut j = i;
        while j < devs.len() && devs[j] == devs[i] && own[j] == own[i] {
            j += 1;
        }
        let union = union_intervals(&starts[i..j], &ends[i..j]);
        let seconds = total_seconds(&union);
        let m = &mut out[devs[i] as usize];
        if own[i] {
            m.self_rental_seconds = seconds;
        } else {
            m.rental_seconds = seconds;
            m.rental_online_seconds = intersection_seconds(&union, &online[devs[i] as usize]);
        }
        i = j;
    }
    Ok((out, ignored))
}

/// The union of intervals `[start, end)` sorted by start, as disjoint sorted intervals.
pub fn union_intervals(starts: &[i64], ends: &[i64]) -> Vec<(i64, i64)> {
    debug_assert!(starts.windows(2).all(|w| w[0] <= w[1]));
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (&s, &e) in starts.iter().zip(ends) {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Total length of disjoint intervals `[start, end)`.
pub fn total_seconds(intervals: &[(i64, i64)]) -> u64 {
    intervals.iter().map(|(s, e)| (e - s) as u64).sum()
}

/// Sorted distinct slot numbers as disjoint `[start, end)` runs of absolute time.
pub fn slot_runs(slots: &[i64], w: Window) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &k in slots {
        let (s, e) = (
            w.start + k * w.slot_seconds,
            w.start + (k + 1) * w.slot_seconds,
        );
        match runs.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => runs.push((s, e)),
        }
    }
    runs
}

/// Length of the intersection of two lists of disjoint sorted intervals.
pub fn intersection_seconds(a: &[(i64, i64)], b: &[(i64, i64)]) -> u64 {
    let (mut i, mut j, mut total) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if s < e {
            total += (e - s) as u64;
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

/// Longest run of consecutive numbers in a sorted, distinct list.
pub fn longest_run(sorted: &[i64]) -> u64 {
    let (mut best, mut run) = (0u64, 0u64);
    for (i, &s) in sorted.iter().enumerate() {
        run = if i > 0 && sorted[i - 1] + 1 == s {
            run + 1
        } else {
            1
        };
        best = best.max(run);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions() {
        assert_eq!(total_seconds(&union_intervals(&[], &[])), 0);
        assert_eq!(
            total_seconds(&union_intervals(&[0, 5, 20], &[10, 15, 30])),
            25
        );
        assert_eq!(total_seconds(&union_intervals(&[0, 10], &[10, 20])), 20);
        assert_eq!(total_seconds(&union_intervals(&[0, 1], &[100, 2])), 100);
    }

    #[test]
    fn rentals_inside_online_slots() {
        let w = Window {
            start: 1000,
            end: 4000,
            slot_seconds: 300,
        };
        // Slots 0, 1 and 3: [1000, 1600) and [1900, 2200).
        let runs = slot_runs(&[0, 1, 3], w);
        assert_eq!(runs, [(1000, 1600), (1900, 2200)]);
        // A rental [1500, 2000) meets 100 s of the first run and 100 s of the second.
        assert_eq!(intersection_seconds(&[(1500, 2000)], &runs), 200);
        assert_eq!(intersection_seconds(&[(0, 5000)], &runs), 900);
        assert_eq!(intersection_seconds(&[(1600, 1900)], &runs), 0);
        assert_eq!(intersection_seconds(&[], &runs), 0);
    }

    #[test]
    fn runs() {
        assert_eq!(longest_run(&[]), 0);
        assert_eq!(longest_run(&[3]), 1);
        assert_eq!(longest_run(&[1, 2, 3, 5, 6]), 3);
    }
}
