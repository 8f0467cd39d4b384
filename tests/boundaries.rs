//! The `boundaries` fixture: 14 devices over 10 hours (120 slots of 300 s), each
//! pinning one rule or boundary of SPEC 3, with every expected value computed by
//! hand below. Pool 1000.00 (100000 units), rules v1.

use crate::common::*;

fn run() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(&epoch_dir("boundaries"), tmp.path(), "out", &[], &[]);
    (tmp, out)
}

/// (device, online_slots, points, eligible, reasons), by hand.
const EXPECTED: [(&str, &str, &str, &str, &str); 14] = [
    // 12 of 120 slots is exactly min_uptime 0.10: kept. Gold at the exact thresholds
    // (500/250/30). 0.20 * 1 * 12 * 1.10 * 1 = 2.64. Rentals: r1 clipped to
    // 00:00-01:00 and r2 00:30-01:30 overlap: union 5400 s; 5400 * 5 / 3600 = 7.5.
    // r3 is its own account's: SELF_RENTAL, earns nothing.
    ("d01", "12", "10.140000", "true", "SELF_RENTAL"),
    // 11 slots < 12.
    (
        "d02",
        "11",
        "0.000000",
        "false",
        "INSUFFICIENT_SPEEDTESTS;LOW_UPTIME",
    ),
    // 1137.81 / 989.4 = 1.1500001.. -> q6 1.150000, not above 1.15. Four speedtests:
    // medians (200+300)/2 = 250, (50+60)/2 = 55, (20+30)/2 = 25: silver.
    // 1.00 * 2 GPUs * 20 * 1.00 * 1 = 40.
    ("d03", "20", "40.000000", "true", ""),
    // 1137.82 / 989.4 = 1.1500101.. -> 1.150010 > 1.15.
    ("d04", "20", "0.000000", "false", "IMPOSSIBLE_BENCHMARK"),
    // 156.0 / 312.0 = 0.500000, not below 0.50; factor 0.5. Bronze at the exact
    // thresholds (25/10/120): 0.40 * 20 * 0.60 * 0.5 = 2.4.
    ("d05", "20", "2.400000", "true", ""),
    // 155.9998 / 312.0 = 0.49999935.. -> 0.499999 < 0.50; latency 120.000000001 misses bronze.
    (
        "d06",
        "20",
        "0.000000",
        "false",
        "LOW_BANDWIDTH;SUSPECTED_VIRTUAL_GPU",
    ),
    // hw01 is d01's, registered earlier.
    (
        "d07",
        "20",
        "0.000000",
        "false",
        "DUPLICATE_HARDWARE;INSUFFICIENT_SPEEDTESTS",
    ),
    // registered_at == end.
    (
        "d08",
        "0",
        "0.000000",
        "false",
        "INSUFFICIENT_SPEEDTESTS;LOW_UPTIME;NO_BENCHMARK;REGISTERED_AFTER_EPOCH",
    ),
    (
        "d09",
        "20",
        "0.000000",
        "false",
        "INSUFFICIENT_SPEEDTESTS;UNKNOWN_GPU_MODEL",
    ),
    (
        "d10",
        "20",
        "0.000000",
        "false",
        "HARDWARE_MISMATCH;MODEL_MISMATCH",
    ),
    // Its only benchmark (and second speedtest) is at `end`: outside.
    (
        "d11",
        "20",
        "0.000000",
        "false",
        "INSUFFICIENT_SPEEDTESTS;NO_BENCHMARK",
    ),
    // Registered 05:00 (slot 60): heartbeats at 04:00 and 04:59:59 do not count.
    // Slots 60..=74, plus 06:15:00Z written as 08:15:00.5+02:00 (slot 75), plus Unix
    // seconds in slot 76; 06:14:59.999 floors into slot 74. 17 slots.
    // Download 499.999999999 misses gold: silver. Median tflops 300 / 362.0 =
    // 0.8287292.. -> 0.828729. 0.35 * 17 * 1.00 * 0.828729 = 4.93093755 -> 4.930938.
    ("d12", "17", "4.930938", "true", ""),
    // Always on, 4 GPUs: 0.08 * 4 * 120 = 38.4; rental crossing the end clipped to
    // 3600 s: 3600 * 2 * 4 / 3600 = 8.
    ("d13", "120", "46.400000", "true", ""),
    ("d14", "120", "1.200000", "true", ""),
];

#[test]
fn every_device_matches_the_hand_computation() {
    let (_tmp, out) = run();
    let devices = keyed(&out.join("devices.csv"));
    assert_eq!(devices.len(), EXPECTED.len());
    for (id, slots, points, eligible, reasons) in EXPECTED {
        let d = &devices[id];
        assert_eq!(
            (
                d["online_slots"].as_str(),
                d["points"].as_str(),
                d["eligible"].as_str(),
                d["reasons"].as_str()
            ),
            (slots, points, eligible, reasons),
            "device {id}"
        );
    }
    assert_eq!(devices["d12"]["perf_ratio"], "0.828729");
    assert_eq!(devices["d12"]["heartbeats"], "18");
    assert_eq!(devices["d03"]["median_download_mbps"], "250");
    assert_eq!(devices["d03"]["median_upload_mbps"], "55");
    assert_eq!(devices["d04"]["perf_ratio"], "1.150010");
    assert_eq!(devices["d01"]["rental_seconds"], "5400");
    assert_eq!(devices["d01"]["self_rental_seconds"], "3600");
    assert_eq!(devices["d13"]["rental_seconds"], "3600");
    assert_eq!(devices["d13"]["heartbeats"], "1201");
}

#[test]
fn the_split_is_exact() {
    let (_tmp, out) = run();
    // T = 10.14 + 40 + 2.4 + (4.930938 + 46.4) + 1.2 = 105.070938 -> 105070938.
    // floor(100000 * P / T): a 9650.6.., b 38069.5.., c 2284.1.., f 48853.5.., g 1142.0..
    // Floors sum to 99998: the two largest remainders (a .65, f .55; b .53 misses) get one more.
    let accounts = keyed(&out.join("allocations.csv"));
    assert_eq!(
        column(&out.join("allocations.csv"), "token_units"),
        pairs(&[
            ("acct-a", "9651"),
            ("acct-b", "38069"),
            ("acct-c", "2284"),
            ("acct-d", "0"),
            ("acct-e", "0"),
            ("acct-f", "48854"),
            ("acct-g", "1142")
        ])
    );
    assert_eq!(accounts["acct-a"]["tokens"], "96.51");
    assert_eq!(accounts["acct-f"]["points"], "51.330938");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["total_points_units"], "105070938");
    assert_eq!(summary["allocated_units"], "100000");
    assert_eq!(summary["tables"]["heartbeats"]["ignored"], 4);
    assert_eq!(summary["tables"]["heartbeats"]["rejected"], 1);
}

#[test]
fn evidence_names_the_first_holder_and_the_bounds() {
    let (_tmp, out) = run();
    let rows = csv_rows(&out.join("exclusions.csv"));
    let find = |d: &str, r: &str| {
        rows.iter()
            .find(|x| x["device_id"] == d && x["reason"] == r)
            .unwrap_or_else(|| panic!("{d} {r}"))["evidence"]
            .clone()
    };
    assert!(find("d07", "DUPLICATE_HARDWARE").contains("held first by device d01"));
    assert!(find("d04", "IMPOSSIBLE_BENCHMARK").contains("1.150010"));
    assert!(find("d04", "IMPOSSIBLE_BENCHMARK").contains("max_perf_ratio 1.15"));
    assert!(find("d02", "LOW_UPTIME").contains("11 of 120"));
}

#[test]
fn every_output_file_is_pinned() {
    let (_tmp, out) = run();
    snapshot_all("boundaries", &out);
}
