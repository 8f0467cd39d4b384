//! Stage 1, aggregation: event rows to the per-device measurement table
//! ([`tally_core::Measurement`]), streaming.
//!
//! Memory is bounded by the registry, not by the logs: heartbeats set bits in one
//! bitmap of online slots per device (and add to one counter per device and worker);
//! of the other tables only the in-epoch rows are kept, a few per device. Everything
//! is exact: counts, integer seconds, slot numbers, and decimals at scale 10^9
//! (`i128`). What workers folded in any order is merged by commutative operations
//! (OR, +) or sorted before use, so the table does not depend on the thread count or
//! the order of rows.

use std::sync::atomic::{AtomicU64, Ordering};

use tally_core::limits::MAX_SLOT_BITMAP_BYTES;
use tally_core::value::median_of_sorted;
use tally_core::{Device, Measurement};

/// The window and slot length aggregation needs.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub slot_seconds: i64,
}

impl Window {
    pub fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts < self.end
    }

    /// The slot of a time inside the window.
    pub fn slot(&self, ts: i64) -> u64 {
        debug_assert!(self.contains(ts));
        ((ts - self.start) / self.slot_seconds) as u64
    }

    fn total_slots(&self) -> u64 {
        ((self.end - self.start) / self.slot_seconds) as u64
    }
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

/// SPEC 3.2.1's online slots: one bit per device and slot, shared by all workers.
/// Setting a bit is idempotent and commutative, which is what makes the order of
/// heartbeats irrelevant.
pub struct SlotBitmap {
    words_per_device: usize,
    total_slots: u64,
    words: Vec<AtomicU64>,
}

impl SlotBitmap {
    /// Bytes a bitmap for `devices` devices and `total_slots` slots takes.
    pub fn bytes(devices: usize, total_slots: u64) -> u64 {
        devices as u64 * total_slots.div_ceil(64) * 8
    }

    /// A bitmap for `devices` devices; `None` past [`MAX_SLOT_BITMAP_BYTES`].
    pub fn new(devices: usize, total_slots: u64) -> Option<SlotBitmap> {
        if Self::bytes(devices, total_slots) > MAX_SLOT_BITMAP_BYTES {
            return None;
        }
        let words_per_device = total_slots.div_ceil(64) as usize;
        let mut words = Vec::new();
        words.resize_with(devices * words_per_device, || AtomicU64::new(0));
        Some(SlotBitmap {
            words_per_device,
            total_slots,
            words,
        })
    }

    pub fn set(&self, device: u32, slot: u64) {
        debug_assert!(slot < self.total_slots);
        let word = &self.words[device as usize * self.words_per_device + (slot / 64) as usize];
        let bit = 1u64 << (slot % 64);
        // Most heartbeats find their slot already set (several per slot): a plain load
        // spares them the locked read-modify-write.
        if word.load(Ordering::Relaxed) & bit == 0 {
            word.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// A device's online slots as maximal runs `(first slot, length)`, ascending.
    pub fn runs(&self, device: u32) -> Vec<(u64, u64)> {
        let at = device as usize * self.words_per_device;
        let words: Vec<u64> = self.words[at..at + self.words_per_device]
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .collect();
        slot_runs_of(&words, self.total_slots)
    }
}

/// Maximal runs of set bits among the first `bits` bits of `words`.
fn slot_runs_of(words: &[u64], bits: u64) -> Vec<(u64, u64)> {
    // The first bit at or after `from` that equals `set`, or `bits`.
    let find = |from: u64, set: bool| -> u64 {
        let mut i = from;
        while i < bits {
            let w = words[(i / 64) as usize];
            let w = (if set { w } else { !w }) >> (i % 64);
            if w != 0 {
                return (i + u64::from(w.trailing_zeros())).min(bits);
            }
            i = (i / 64 + 1) * 64;
        }
        bits
    };
    let mut runs = Vec::new();
    let mut i = find(0, true);
    while i < bits {
        let end = find(i, false);
        runs.push((i, end - i));
        i = find(end, true);
    }
    runs
}

/// One heartbeat worker's counts.
#[derive(Debug, Clone)]
pub struct HeartbeatCounts {
    /// Rows counted for each device (in the epoch, at or after registration).
    pub per_device: Vec<u64>,
    pub ignored: u64,
    /// The last device found, to find the next one faster.
    pub hint: u32,
}

impl HeartbeatCounts {
    pub fn new(devices: usize) -> Self {
        HeartbeatCounts {
            per_device: vec![0; devices],
            ignored: 0,
            hint: 0,
        }
    }
}

/// One in-epoch speedtest: device, download, upload, latency.
pub type Speedtest = (u32, i128, i128, i128);

/// One in-epoch benchmark: device, tflops, and the model and hardware id it reports
/// when they differ from the registry's (the only ones kept).
pub type Benchmark = (u32, i128, Option<Box<str>>, Option<Box<str>>);

/// One rental clipped to the epoch: device, by its own account, start, end.
pub type Rental = (u32, bool, i64, i64);

/// Everything the workers folded, merged.
pub struct Folded {
    pub bitmap: SlotBitmap,
    pub heartbeats: Vec<u64>,
    pub speedtests: Vec<Speedtest>,
    pub benchmarks: Vec<Benchmark>,
    pub rentals: Vec<Rental>,
}

/// The measurement table: one measurement per registry device, in registry order.
pub fn measure(registry: &[Device], w: Window, mut f: Folded) -> Vec<Measurement> {
    debug_assert_eq!(w.total_slots(), f.bitmap.total_slots);
    let mut out = vec![Measurement::default(); registry.len()];
    for (d, m) in out.iter_mut().enumerate() {
        m.heartbeats = f.heartbeats[d];
        let runs = f.bitmap.runs(d as u32);
        m.online_slots = runs.iter().map(|r| r.1).sum();
        m.longest_streak_slots = runs.iter().map(|r| r.1).max().unwrap_or(0);
    }

    // SPEC 3.2.2: speedtest medians, each column sorted on its own.
    f.speedtests.sort_unstable();
    for group in f.speedtests.chunk_by(|a, b| a.0 == b.0) {
        let m = &mut out[group[0].0 as usize];
        m.speedtests = group.len() as u64;
        let median = |column: fn(&Speedtest) -> i128| {
            let mut v: Vec<i128> = group.iter().map(column).collect();
            v.sort_unstable();
            median_of_sorted(&v)
        };
        m.median_download_mbps = median(|t| t.1);
        m.median_upload_mbps = median(|t| t.2);
        m.median_latency_ms = median(|t| t.3);
    }

    // SPEC 3.2.3: the benchmark median, and the benchmarks that report another model or
    // card: how many, and what they say, sorted and distinct.
    f.benchmarks.sort_unstable();
    for group in f.benchmarks.chunk_by(|a, b| a.0 == b.0) {
        let m = &mut out[group[0].0 as usize];
        m.benchmarks = group.len() as u64;
        let tflops: Vec<i128> = group.iter().map(|b| b.1).collect();
        m.median_tflops = median_of_sorted(&tflops);
        let others = |field: fn(&Benchmark) -> &Option<Box<str>>| {
            let mut v: Vec<String> = group
                .iter()
                .filter_map(|b| field(b).as_deref().map(str::to_string))
                .collect();
            let n = v.len() as u64;
            v.sort_unstable();
            v.dedup();
            (n, v)
        };
        (m.benchmarks_other_model, m.other_models) = others(|b| &b.2);
        (m.benchmarks_other_hardware, m.other_hardware_ids) = others(|b| &b.3);
    }

    // SPEC 3.2.4: unions of rentals, by other accounts and by the device's own; SPEC 8:
    // the part of the former inside online slots.
    f.rentals.sort_unstable();
    for group in f.rentals.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        let (d, own) = (group[0].0, group[0].1);
        let starts: Vec<i64> = group.iter().map(|r| r.2).collect();
        let ends: Vec<i64> = group.iter().map(|r| r.3).collect();
        let union = union_intervals(&starts, &ends);
        let m = &mut out[d as usize];
        if own {
            m.self_rental_seconds = total_seconds(&union);
        } else {
            m.rental_seconds = total_seconds(&union);
            let online = slot_runs(&f.bitmap.runs(d), w);
            m.rental_online_seconds = intersection_seconds(&union, &online);
        }
    }
    out
}

/// Online slot runs as disjoint `[start, end)` intervals of absolute time.
pub fn slot_runs(runs: &[(u64, u64)], w: Window) -> Vec<(i64, i64)> {
    runs.iter()
        .map(|&(first, n)| {
            let s = w.start + first as i64 * w.slot_seconds;
            (s, s + n as i64 * w.slot_seconds)
        })
        .collect()
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
        let runs = slot_runs(&slot_runs_of(&[0b1011], 10), w);
        assert_eq!(runs, [(1000, 1600), (1900, 2200)]);
        // A rental [1500, 2000) meets 100 s of the first run and 100 s of the second.
        assert_eq!(intersection_seconds(&[(1500, 2000)], &runs), 200);
        assert_eq!(intersection_seconds(&[(0, 5000)], &runs), 900);
        assert_eq!(intersection_seconds(&[(1600, 1900)], &runs), 0);
        assert_eq!(intersection_seconds(&[], &runs), 0);
    }

    #[test]
    fn runs_of_bits() {
        assert_eq!(slot_runs_of(&[0], 64), []);
        assert_eq!(slot_runs_of(&[0b1000], 64), [(3, 1)]);
        assert_eq!(slot_runs_of(&[0b110_1110], 64), [(1, 3), (5, 2)]);
        assert_eq!(slot_runs_of(&[u64::MAX, u64::MAX], 128), [(0, 128)]);
        // Runs across a word boundary, and bits past `bits` are not slots.
        assert_eq!(slot_runs_of(&[1 << 63, 0b11], 128), [(63, 3)]);
        assert_eq!(slot_runs_of(&[u64::MAX, u64::MAX], 70), [(0, 70)]);
        assert_eq!(slot_runs_of(&[0, 1 << 63], 127), []);
        // Against a plain scan of every bit.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for bits in [1u64, 63, 64, 65, 130, 191] {
            let words: Vec<u64> = (0..bits.div_ceil(64))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x & (x >> 3)
                })
                .collect();
            let set = |i: u64| words[(i / 64) as usize] >> (i % 64) & 1 == 1;
            let mut naive: Vec<(u64, u64)> = Vec::new();
            for i in (0..bits).filter(|&i| set(i)) {
                match naive.last_mut() {
                    Some(r) if r.0 + r.1 == i => r.1 += 1,
                    _ => naive.push((i, 1)),
                }
            }
            assert_eq!(slot_runs_of(&words, bits), naive, "{bits}");
        }
    }

    #[test]
    fn bitmap_is_bounded() {
        assert!(SlotBitmap::new(1_000_000, 366 * 288).is_none());
        let b = SlotBitmap::new(3, 130).unwrap();
        b.set(1, 0);
        b.set(1, 129);
        b.set(1, 129);
        b.set(2, 64);
        assert_eq!(b.runs(0), []);
        assert_eq!(b.runs(1), [(0, 1), (129, 1)]);
        assert_eq!(b.runs(2), [(64, 1)]);
    }
}
