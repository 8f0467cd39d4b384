//! `tally verify`, `tally rules` and `tally campaign` (issue 3).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

fn verify(out: &Path, input: &Path) -> (Option<i32>, String) {
    let o = tally(
        &[
            "verify",
            out.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        &[],
    );
    (
        o.status.code(),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o)),
    )
}

/// A fresh run of `epoch` (copied, so the test may edit the inputs) and its output.
fn published(tmp: &Path, epoch: &str, flags: &[&str]) -> (PathBuf, PathBuf) {
    let input = tmp.join("input");
    copy_dir(&epoch_dir(epoch), &input);
    let out = run_ok(&input, tmp, "out", flags, &[]);
    (input, out)
}

#[test]
fn an_untouched_run_verifies() {
    for (epoch, flags) in [
        ("boundaries", &[][..]),
        ("disputes", &[]),
        ("oracle-f1", &["--rules", "tests/rules/v1-lenient.toml"]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (input, out) = published(tmp.path(), epoch, flags);
        let (code, text) = verify(&out, &input);
        assert_eq!(code, Some(0), "{epoch}: {text}");
        assert!(text.contains("verified"), "{text}");
    }
}

#[test]
fn a_changed_output_byte_is_caught_with_its_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = published(tmp.path(), "boundaries", &[]);
    let p = out.join("allocations.csv");
    fs::write(
        &p,
        fs::read_to_string(&p)
            .unwrap()
            .replace("acct-a,2,1,10.140000,9651", "acct-a,2,1,10.140000,9652"),
    )
    .unwrap();
    let (code, text) = verify(&out, &input);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("output allocations.csv: its SHA-256 differs from the manifest"),
        "{text}"
    );
    assert!(
        text.contains("re-run allocations.csv: differs first at line 2"),
        "{text}"
    );
    assert!(
        text.contains("published: acct-a,2,1,10.140000,9652"),
        "{text}"
    );
    assert!(
        text.contains("re-run:    acct-a,2,1,10.140000,9651"),
        "{text}"
    );
}

#[test]
fn a_changed_input_row_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = published(tmp.path(), "boundaries", &[]);
    let p = input.join("benchmarks.csv");
    fs::write(
        &p,
        fs::read_to_string(&p)
            .unwrap()
            .replace("1137.82", "1137.81"),
    )
    .unwrap();
    let (code, text) = verify(&out, &input);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("input benchmarks.csv: differs from the one the run read"),
        "{text}"
    );
    assert!(
        text.contains("re-run devices.csv: differs first at line 5"),
        "{text}"
    );
}

#[test]
fn edited_rules_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = published(tmp.path(), "boundaries", &[]);
    let p = out.join("rules.toml");
    fs::write(
        &p,
        fs::read_to_string(&p)
            .unwrap()
            .replace("min_uptime = \"0.10\"", "min_uptime = \"0.05\""),
    )
    .unwrap();
    let (code, text) = verify(&out, &input);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("rules v1: rules.toml differs from the rules file the run used"),
        "{text}"
    );
}

#[test]
fn a_missing_or_added_file_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = published(tmp.path(), "boundaries", &[]);
    fs::remove_file(out.join("exclusions.csv")).unwrap();
    let (code, text) = verify(&out, &input);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("output exclusions.csv: missing"), "{text}");

    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = published(tmp.path(), "boundaries", &[]);
    fs::write(
        input.join("overrides.csv"),
        "device_id,action,ticket,note\nd02,reinstate,T-1,\n",
    )
    .unwrap();
    let (code, text) = verify(&out, &input);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("input overrides.csv: present now, but the run did not read it"),
        "{text}"
    );
}

#[test]
fn rules_check_and_list() {
    let o = tally(&["rules", "check", "rules/v2.toml"], &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("version v2") && out.contains("published: yes"),
        "{out}"
    );
    let o = tally(&["rules", "check", "tests/rules/v1-lenient.toml"], &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("published: no"));
    let tmp = tempfile::tempdir().unwrap();
    let edited = tmp.path().join("v1.toml");
    fs::write(
        &edited,
        fs::read_to_string(Path::new(ROOT).join("rules/v1.toml"))
            .unwrap()
            .replace("\"1.10\"", "\"1.20\""),
    )
    .unwrap();
    let o = tally(&["rules", "check", edited.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("v1 is published with SHA-256"),
        "{}",
        stderr(&o)
    );
    let o = tally(
        &["rules", "check", "tests/epochs/boundaries/epoch.toml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let o = tally(&["rules", "list"], &[]);
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    let sums = fs::read_to_string(Path::new(ROOT).join("rules/SHA256SUMS")).unwrap();
    for line in sums.lines() {
        let (hash, file) = line.split_once("  ").unwrap();
        assert!(
            list.contains(&format!("{} {hash}", file.trim_end_matches(".toml"))),
            "{list}"
        );
    }
}

/// Two phases of one campaign: `boundaries` (pool 1000) and a later copy of it with
/// pool 2000 whose events all fall before it (nobody earns: all unallocated).
fn campaign_runs(tmp: &Path) -> (PathBuf, PathBuf) {
    let a = run_ok(&epoch_dir("boundaries"), tmp, "phase1", &[], &[]);
    let later = tmp.join("phase2-input");
    copy_dir(&epoch_dir("boundaries"), &later);
    fs::write(
        later.join("epoch.toml"),
        "id = \"phase-2\"\nstart = \"2024-03-01T10:00:00Z\"\nend = \"2024-03-01T20:00:00Z\"\npool = \"2000\"\ndecimals = 2\nrules = \"v1\"\n",
    )
    .unwrap();
    let b = run_ok(&later, tmp, "phase2", &[], &[]);
    (a, b)
}

#[test]
fn campaign_adds_epochs_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = campaign_runs(tmp.path());
    let o = tally(
        &[
            "campaign",
            b.to_str().unwrap(),
            a.to_str().unwrap(),
            "--total",
            "3000",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = String::from_utf8(o.stdout).unwrap();
    insta_settings().bind(|| insta::assert_snapshot!("campaign__two_phases.csv", table));
    // Every unit of the 3000.00 tokens is in the table, allocated or not.
    let total: u128 = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse::<u128>().unwrap())
        .sum();
    assert_eq!(total, 300_000);

    let o = tally(
        &[
            "campaign",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--total",
            "3000.01",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("add up to 3000.00, not the campaign total 3000.01"),
        "{}",
        stderr(&o)
    );
    let o = tally(
        &[
            "campaign",
            a.to_str().unwrap(),
            a.to_str().unwrap(),
            "--total",
            "2000",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("overlap"), "{}", stderr(&o));
}

#[test]
fn verify_keeps_an_unusual_rules_file_name() {
    // Any file name the run accepted is recorded, and the re-run must record it too.
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("my\trules {}.toml", "r".repeat(210));
    let rules = tmp.path().join(&name);
    fs::copy(Path::new(ROOT).join("tests/rules/v1-lenient.toml"), &rules).unwrap();
    let (input, out) = published(
        tmp.path(),
        "boundaries",
        &["--rules", rules.to_str().unwrap()],
    );
    let (code, text) = verify(&out, &input);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn campaign_refuses_allocations_that_do_not_add_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = campaign_runs(tmp.path());
    let p = a.join("allocations.csv");
    fs::write(
        &p,
        fs::read_to_string(&p)
            .unwrap()
            .replace("acct-a,2,1,10.140000,9651", "acct-a,2,1,10.140000,99651"),
    )
    .unwrap();
    let o = tally(
        &[
            "campaign",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--total",
            "3000",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("allocations.csv:2:"), "{}", stderr(&o));
}
