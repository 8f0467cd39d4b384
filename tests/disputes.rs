//! The `disputes` fixture: IP_CAP, overrides (SPEC 7), ties in the split, and the
//! legal CSV forms (BOM, CRLF, quoted commas, free column order, extra columns).
//! One hour, 12 slots; pool 99 units (decimals 0). Every T4 device online in all 12
//! slots at silver earns 0.05 * 12 = 0.6.

use crate::common::*;

fn run() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(&epoch_dir("disputes"), tmp.path(), "out", &[], &[]);
    (tmp, out)
}

#[test]
fn ip_cap_keeps_the_first_eight_of_one_address_in_any_spelling() {
    let (_tmp, out) = run();
    let d = keyed(&out.join("devices.csv"));
    // ip01..ip11 share 2001:db8::1 written three ways. ip03 registered first; the
    // rest tie on registered_at and go by device_id: ip03, ip01, ip02, ip04..ip08 keep.
    for id in [
        "ip01", "ip02", "ip03", "ip04", "ip05", "ip06", "ip07", "ip08",
    ] {
        assert_eq!(
            (d[id]["eligible"].as_str(), d[id]["points"].as_str()),
            ("true", "0.600000"),
            "{id}"
        );
    }
    for id in ["ip09", "ip10", "ip11"] {
        assert_eq!(d[id]["reasons"], "IP_CAP", "{id}");
    }
    // Registered at the end: not counted among the 11, but the 11 are more than 8 and
    // it is not among the first 8, so the rule applies to it as written.
    assert_eq!(
        d["ip12"]["reasons"],
        "IP_CAP;LOW_UPTIME;REGISTERED_AFTER_EPOCH"
    );
    let ex = csv_rows(&out.join("exclusions.csv"));
    let ev = &ex.iter().find(|r| r["device_id"] == "ip09").unwrap()["evidence"];
    assert!(
        ev.contains("the first 8 keep it: ip03, ip01, ip02, ip04"),
        "{ev}"
    );
    assert!(
        !ev.contains("2001"),
        "evidence names devices, never the address: {ev}"
    );
}

#[test]
fn overrides_reinstate_and_exclude_with_a_trail() {
    let (_tmp, out) = run();
    let d = keyed(&out.join("devices.csv"));
    // x01: no heartbeat (LOW_UPTIME) but reinstated: eligible, earns its (zero) uptime.
    assert_eq!(d["x01"]["eligible"], "true");
    assert_eq!(d["x01"]["reasons"], "LOW_UPTIME;REINSTATED:T-1001");
    // x02: would earn 0.6, manually excluded.
    assert_eq!(
        (d["x02"]["eligible"].as_str(), d["x02"]["points"].as_str()),
        ("false", "0.000000")
    );
    assert_eq!(d["x02"]["reasons"], "MANUAL_EXCLUSION:T-1002");
    // x03: unknown model reinstated: base = rental = 0, so 0 points.
    assert_eq!(
        (d["x03"]["eligible"].as_str(), d["x03"]["points"].as_str()),
        ("true", "0.000000")
    );
    let ex = csv_rows(&out.join("exclusions.csv"));
    let effects: Vec<(String, String, String)> = ex
        .iter()
        .filter(|r| r["account_id"] == "disputer")
        .map(|r| {
            (
                r["device_id"].clone(),
                r["reason"].clone(),
                r["effect"].clone(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        effects,
        [
            s("x01", "LOW_UPTIME", "overruled"),
            s("x01", "REINSTATED:T-1001", "reinstates"),
            s("x02", "MANUAL_EXCLUSION:T-1002", "excludes"),
            s("x03", "REINSTATED:T-1003", "reinstates"),
            s("x03", "UNKNOWN_GPU_MODEL", "overruled"),
        ]
    );
    let manifest = String::from_utf8(files(&out)["manifest.json"].clone()).unwrap();
    assert!(manifest.contains("\"overrides.csv\""));
}

#[test]
fn equal_remainders_go_by_account_id() {
    let (_tmp, out) = run();
    // T = 1.2 (acct-a) + 4.8 (farm: 8 devices) + 3 * 0.6 (tie-*) = 7.8.
    // 99 * share: acct-a 15.23, farm 60.92, tie-* 7.615 each. Floors sum to 96; the 3
    // leftover units go to farm (.92), then tie-a and tie-b (equal .615, by
    // account_id), not tie-c, although tie-c owns the first device by device_id.
    assert_eq!(
        column(&out.join("allocations.csv"), "token_units"),
        pairs(&[
            ("acct-a", "15"),
            ("disputer", "0"),
            ("farm", "61"),
            ("tie-a", "8"),
            ("tie-b", "8"),
            ("tie-c", "7")
        ])
    );
}

#[test]
fn every_output_file_is_pinned() {
    let (_tmp, out) = run();
    snapshot_all("disputes", &out);
}
