//! The auditor verbs: `tally explain OUT_DIR ACCOUNT_ID` and `tally diff OUT_A OUT_B`,
//! run on the outputs of the `disputes` and `boundaries` fixtures. Their text is
//! pinned by snapshots; the diff's bookkeeping (every unit that moved) is asserted.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// Runs `tally` and returns its stdout; panics with stderr if it fails.
fn stdout_ok(args: &[&str]) -> String {
    let o = tally(args, &[]);
    assert!(o.status.success(), "tally {args:?} failed: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn explain(out: &Path, account: &str, format: &str) -> String {
    stdout_ok(&[
        "explain",
        out.to_str().unwrap(),
        account,
        "--format",
        format,
    ])
}

fn diff(a: &Path, b: &Path, format: &str) -> String {
    stdout_ok(&[
        "diff",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--format",
        format,
    ])
}

fn settle(epoch: &str, tmp: &Path) -> PathBuf {
    run_ok(&epoch_dir(epoch), tmp, epoch, &[], &[])
}

fn snapshot(name: &str, text: &str) {
    insta_settings().bind(|| insta::assert_snapshot!(name, text));
}

fn replace(path: &Path, from: &str, to: &str) {
    let s = fs::read_to_string(path).unwrap();
    assert!(s.contains(from), "{from}");
    fs::write(path, s.replacen(from, to, 1)).unwrap();
}

#[test]
fn explain_disputes_reinstatement_manual_exclusion_and_unknown_model() {
    let tmp = tempfile::tempdir().unwrap();
    let out = settle("disputes", tmp.path());
    // x01 reinstated over LOW_UPTIME, x02 manually excluded, x03 reinstated with a
    // model that is not in the table.
    let text = explain(&out, "disputer", "text");
    snapshot("audit__explain_disputes_disputer", &text);
    let json = explain(&out, "disputer", "json");
    snapshot("audit__explain_disputes_disputer_json", &json);

    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["account"]["token_units"], "0");
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    assert_eq!(devices[1]["verdict"], "excluded by dispute decision T-1002");
    // The formula shows what x02 would have earned without the decision.
    assert!(devices[1]["points"]["uptime_formula"]
        .as_str()
        .unwrap()
        .ends_with("= 0.600000"));
    assert_eq!(devices[1]["points"]["points"], "0.000000");
}

#[test]
fn explain_ip_cap_and_the_leftover_unit_of_a_tie() {
    let tmp = tempfile::tempdir().unwrap();
    let out = settle("disputes", tmp.path());
    let farm = explain(&out, "farm", "text");
    assert!(farm.contains(
        "FAIL  more than max_devices_per_ip 8 devices share its IP address, and it is not among the first 8 -> IP_CAP"
    ));
    assert!(farm.contains("IP_CAP (excludes): 11 devices registered before the epoch end share"));
    // tie-a, tie-b and tie-c have equal remainders: account_id order deals the last
    // two leftover units to tie-a and tie-b.
    let tie_b = explain(&out, "tie-b", "text");
    assert!(
        tie_b.contains("This remainder ranks 3 of 6: one of them"),
        "{tie_b}"
    );
    assert!(tie_b.contains("token_units = 7 + 1 = 8"), "{tie_b}");
    let tie_c = explain(&out, "tie-c", "text");
    assert!(
        tie_c.contains("This remainder ranks 4 of 6: none of them"),
        "{tie_c}"
    );
}

#[test]
fn explain_boundaries_rentals_thresholds_and_mismatches() {
    let tmp = tempfile::tempdir().unwrap();
    let out = settle("boundaries", tmp.path());
    // acct-a: gold at the exact thresholds, rentals, SELF_RENTAL, LOW_UPTIME by one
    // slot, a leftover unit. acct-c: bronze and perf_ratio 0.50 at the boundary, and
    // a device just past both. acct-e: unknown model, model and hardware mismatch,
    // no benchmark.
    for account in ["acct-a", "acct-c", "acct-e"] {
        let text = explain(&out, account, "text");
        snapshot(
            &format!("audit__explain_boundaries_{}", account.replace('-', "_")),
            &text,
        );
    }
    let json = explain(&out, "acct-a", "json");
    snapshot("audit__explain_boundaries_acct_a_json", &json);
}

#[test]
fn explain_escapes_control_characters_from_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    copy_dir(&epoch_dir("disputes"), &input);
    fs::write(
        input.join("overrides.csv"),
        "device_id,action,ticket,note\nx02,exclude,T-1002,\"resold RED\nagain\"\n",
    )
    .unwrap();
    let out = run_ok(&input, tmp.path(), "out", &[], &[]);
    // A note cannot hold an ESC (the run refuses it), but a forged output can.
    let ex = fs::read_to_string(out.join("exclusions.csv")).unwrap();
    fs::write(
        out.join("exclusions.csv"),
        ex.replacen("resold RED", "resold \u{1b}[31mRED\u{1b}[0m", 1),
    )
    .unwrap();
    let text = explain(&out, "disputer", "text");
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.contains("ticket T-1002: resold \\u{1b}[31mRED\\u{1b}[0m\\nagain"),
        "{text}"
    );
}

#[test]
fn explain_failures_name_the_file_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = settle("disputes", tmp.path());
    let o = tally(&["explain", out.to_str().unwrap(), "nobody"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("account nobody is not in")
            && stderr(&o).contains("allocations.csv (it lists 6 accounts)"),
        "{}",
        stderr(&o)
    );

    let missing = tmp.path().join("missing");
    let o = tally(&["explain", missing.to_str().unwrap(), "farm"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("summary.json"), "{}", stderr(&o));

    let o = tally(&["explain", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = tally(
        &["explain", out.to_str().unwrap(), "farm", "--format", "xml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));

    // A published value the rules do not give (m01 was online in all 12 slots):
    // refused, with the file and line.
    let tampered = tmp.path().join("tampered");
    copy_dir(&out, &tampered);
    replace(
        &tampered.join("devices.csv"),
        "m01,acct-a,T4,1,12,",
        "m01,acct-a,T4,1,11,",
    );
    let o = tally(&["explain", tampered.to_str().unwrap(), "acct-a"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("devices.csv:14: device m01: uptime_points is published as \"0.600000\""),
        "{}",
        stderr(&o)
    );
}

/// The disputes epoch after a recalculation: the overrides withdrawn, t01 registered
/// with 3 GPUs instead of 1, and m02's first 6 heartbeats lost.
fn recalculated_disputes(tmp: &Path) -> PathBuf {
    let input = tmp.join("recalculated-in");
    copy_dir(&epoch_dir("disputes"), &input);
    fs::remove_file(input.join("overrides.csv")).unwrap();
    replace(
        &input.join("devices.csv"),
        "t01,tie-c,T4,1,",
        "t01,tie-c,T4,3,",
    );
    let hb = input.join("heartbeats.csv");
    let mut dropped = 0;
    let mut kept = String::new();
    for line in fs::read_to_string(&hb).unwrap().lines() {
        if line.contains(",m02,") && dropped < 6 {
            dropped += 1;
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    fs::write(&hb, kept).unwrap();
    run_ok(&input, tmp, "recalculated", &[], &[])
}

/// `(units gained, units lost, net)` from the account rows of `diff --format csv`.
fn units_moved(csv_text: &str) -> (i128, i128, i128) {
    let (mut gained, mut lost) = (0i128, 0i128);
    for row in csv_text_rows(csv_text) {
        if row["level"] == "account" {
            let change: i128 = row["token_units_change"]
                .trim_start_matches('+')
                .parse()
                .unwrap();
            if change > 0 {
                gained += change;
            } else {
                lost -= change;
            }
        }
    }
    (gained, lost, gained - lost)
}

#[test]
fn diff_names_the_inputs_that_changed_and_accounts_for_every_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let before = settle("disputes", tmp.path());
    let after = recalculated_disputes(tmp.path());
    let text = diff(&before, &after, "text");
    snapshot("audit__diff_disputes_recalculated", &text);
    let csv_text = diff(&before, &after, "csv");
    snapshot("audit__diff_disputes_recalculated_csv", &csv_text);

    // "Why did my points triple?": t01's gpu_count, nothing else.
    let t01 = csv_text_rows(&csv_text)
        .into_iter()
        .find(|r| r["device_id"] == "t01")
        .unwrap();
    assert_eq!(
        (
            t01["points_a"].as_str(),
            t01["points_b"].as_str(),
            t01["changed_inputs"].as_str()
        ),
        ("0.600000", "1.800000", "gpu_count 1 -> 3")
    );
    // Same pool: what some accounts gained, the others lost.
    let (gained, lost, net) = units_moved(&csv_text);
    assert_eq!((gained, lost, net), (19, 19, 0));
    assert!(
        text.contains("Units moved: 19 gained, 19 lost, net 0"),
        "{text}"
    );
    // Every account is a row of the CSV, listed largest change first.
    let accounts: Vec<String> = csv_text_rows(&csv_text)
        .into_iter()
        .filter(|r| r["level"] == "account")
        .map(|r| r["account_id"].clone())
        .collect();
    assert_eq!(
        accounts,
        ["tie-c", "farm", "disputer", "acct-a", "tie-a", "tie-b"]
    );
}

#[test]
fn diff_of_a_bigger_pool_nets_the_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let before = settle("disputes", tmp.path());
    let input = tmp.path().join("bigger-in");
    copy_dir(&epoch_dir("disputes"), &input);
    replace(&input.join("epoch.toml"), "pool = \"99\"", "pool = \"120\"");
    let after = run_ok(&input, tmp.path(), "bigger", &[], &[]);
    let (gained, lost, net) = units_moved(&diff(&before, &after, "csv"));
    assert_eq!(net, 120 - 99);
    assert_eq!(gained - lost, net);
    let text = diff(&before, &after, "text");
    assert!(
        text.contains("net +21 (allocated 120 in B - 99 in A)"),
        "{text}"
    );
}

#[test]
fn diff_of_a_rules_change_that_moves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let before = settle("boundaries", tmp.path());
    let after = run_ok(
        &epoch_dir("boundaries"),
        tmp.path(),
        "lenient",
        &["--rules", "tests/rules/v1-lenient.toml"],
        &[],
    );
    let text = diff(&before, &after, "text");
    snapshot("audit__diff_boundaries_lenient_rules", &text);
    assert_eq!(diff(&before, &before, "csv").lines().count(), 1 + 7);
}

#[test]
fn diff_and_explain_of_the_v2_recalculation() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = settle("boundaries", tmp.path());
    let v2 = run_ok(
        &epoch_dir("boundaries"),
        tmp.path(),
        "v2",
        &["--rules", "rules/v2.toml"],
        &[],
    );
    let text = diff(&v1, &v2, "text");
    snapshot("audit__diff_boundaries_v1_v2", &text);
    let (gained, lost, net) = units_moved(&diff(&v1, &v2, "csv"));
    assert_eq!((gained, lost, net), (51146, 51146, 0));

    let explained = explain(&v2, "acct-a", "text");
    assert!(
        explained.contains("FAIL  longest_streak_slots 12 < min_streak_slots 60 -> SHORT_STREAK"),
        "{explained}"
    );
    assert!(
        explained.contains("rented 3600 s by other accounts inside its online slots"),
        "{explained}"
    );
}
