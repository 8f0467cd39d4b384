//! Honest failure: a bad input gives a located error, a non-zero exit and no output.

use std::fs;

use crate::common::*;

/// Copies the boundaries epoch, lets `edit` break it, runs, and checks the failure.
fn fails_with(edit: impl FnOnce(&std::path::Path), expected: &[&str], code: i32) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    copy_dir(&epoch_dir("boundaries"), &input);
    edit(&input);
    let out = tmp.path().join("out");
    let o = tally(
        &[
            "run",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in: {err}");
    }
    assert!(!out.exists(), "a failed run must not leave OUT_DIR");
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "stray files: {leftovers:?}");
}

fn append(path: &std::path::Path, line: &str) {
    let mut s = fs::read_to_string(path).unwrap();
    s.push_str(line);
    fs::write(path, s).unwrap();
}

fn replace(path: &std::path::Path, from: &str, to: &str) {
    let s = fs::read_to_string(path).unwrap();
    assert!(s.contains(from), "{from}");
    fs::write(path, s.replacen(from, to, 1)).unwrap();
}

#[test]
fn bad_registry_value_names_file_line_and_column() {
    fails_with(
        |d| {
            replace(
                &d.join("devices.csv"),
                "d05,acct-c,A100-80GB,1,",
                "d05,acct-c,A100-80GB,65,",
            )
        },
        &["devices.csv:6:", "gpu_count", "1 to 64"],
        1,
    );
}

#[test]
fn repeated_device_is_an_error() {
    fails_with(
        |d| {
            append(
                &d.join("devices.csv"),
                "d05,acct-x,T4,1,hwx,10.9.9.9,2024-02-01T00:00:00Z\n",
            )
        },
        &["devices.csv", "\"d05\"", "more than once"],
        1,
    );
}

#[test]
fn too_many_rejected_rows_fail_the_run() {
    // speedtests has 23 rows: one rejected row is above 0.001 of them.
    fails_with(
        |d| {
            append(
                &d.join("speedtests.csv"),
                "d01,2024-03-01T05:00:00Z,1e3,1,1\n",
            )
        },
        &["speedtests.csv", "1 of 24 rows rejected", "download_mbps"],
        1,
    );
}

#[test]
fn strict_fails_on_any_rejected_row() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = tally(
        &[
            "run",
            epoch_dir("boundaries").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--strict",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("heartbeats.csv:1540"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn missing_column_and_missing_table() {
    fails_with(
        |d| replace(&d.join("heartbeats.csv"), "device_id,ts", "device_id,time"),
        &["heartbeats.csv:1", "missing column \"ts\""],
        1,
    );
    fails_with(
        |d| fs::remove_file(d.join("rentals.csv")).unwrap(),
        &["rentals.csv", "missing"],
        1,
    );
}

#[test]
fn both_csv_and_parquet_is_an_error() {
    fails_with(
        |d| fs::write(d.join("rentals.parquet"), b"x").unwrap(),
        &["both rentals.csv and rentals.parquet"],
        1,
    );
}

#[test]
fn epoch_not_whole_slots() {
    fails_with(
        |d| replace(&d.join("epoch.toml"), "T10:00:00Z", "T10:00:01Z"),
        &["epoch.toml", "whole number"],
        1,
    );
}

#[test]
fn unknown_rules_version() {
    fails_with(
        |d| replace(&d.join("epoch.toml"), "rules = \"v1\"", "rules = \"v9\""),
        &["v9.toml", "no such rules file"],
        1,
    );
}

#[test]
fn float_in_parquet_is_refused() {
    use polars::prelude::*;
    fails_with(
        |d| {
            fs::remove_file(d.join("speedtests.csv")).unwrap();
            let mut df = df!(
                "device_id" => ["d01"], "ts" => ["2024-03-01T01:00:00Z"],
                "download_mbps" => [500.0f64], "upload_mbps" => ["250"], "latency_ms" => ["30"]
            )
            .unwrap();
            ParquetWriter::new(fs::File::create(d.join("speedtests.parquet")).unwrap())
                .finish(&mut df)
                .unwrap();
        },
        &[
            "speedtests.parquet",
            "download_mbps",
            "floating point is refused",
        ],
        1,
    );
}

#[test]
fn existing_output_is_refused_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("keep"), b"x").unwrap();
    let e = epoch_dir("boundaries");
    let o = tally(
        &["run", e.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(out.join("keep").exists());
    let o = tally(
        &[
            "run",
            e.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--force",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.join("keep").exists() && out.join("manifest.json").exists());
}

#[test]
fn line_numbers_are_physical_lines() {
    // Blank lines are skipped, a quoted field may span lines, CRLF is fine; the
    // rejected row is reported on the physical line it starts on.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    copy_dir(&epoch_dir("boundaries"), &input);
    fs::write(
        input.join("overrides.csv"),
        "device_id,action,ticket,note\r\n\r\nd14,exclude,T-1,\"two\r\nlines, and \"\"quotes\"\"\"\r\n\r\n",
    )
    .unwrap();
    // CRLF everywhere, two blank lines after the header and one right before the
    // rejected row (the last one, line 1540 as shipped).
    let hb = input.join("heartbeats.csv");
    let mut s = fs::read_to_string(&hb).unwrap();
    s = s.replacen("device_id,ts\n", "device_id,ts\n\n\n", 1);
    s = s.replacen("d99,", "\nd99,", 1);
    fs::write(&hb, s.replace('\n', "\r\n")).unwrap();
    let out = run_ok(&input, tmp.path(), "out", &[], &[]);
    let rejected = csv_rows(&out.join("rejected_rows.csv"));
    assert_eq!(rejected.len(), 1);
    // Line 1540 as shipped, plus three blank lines before it.
    assert_eq!(
        (rejected[0]["file"].as_str(), rejected[0]["line"].as_str()),
        ("heartbeats.csv", "1543")
    );
    assert_eq!(rejected[0]["raw"], "d99,2024-03-01T00:00:00Z");
    let devices = keyed(&out.join("devices.csv"));
    assert_eq!(devices["d14"]["reasons"], "MANUAL_EXCLUSION:T-1");
    let ex = csv_rows(&out.join("exclusions.csv"));
    let note = &ex.iter().find(|r| r["device_id"] == "d14").unwrap()["evidence"];
    assert_eq!(
        note,
        "dispute decision, ticket T-1: two\r\nlines, and \"quotes\""
    );
}

#[test]
fn published_rules_work_from_any_directory() {
    // From outside the repository, the default rules/ does not exist: v1 comes from
    // the binary, byte for byte the published file, so the manifest hash is the same.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = std::process::Command::new(bin())
        .current_dir(tmp.path())
        .args([
            "run",
            epoch_dir("boundaries").to_str().unwrap(),
            "--out",
            "out",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = run_ok(&epoch_dir("boundaries"), tmp.path(), "reference", &[], &[]);
    assert_eq!(files(&out), files(&reference));
    // An explicit --rules-dir without the version is still an error.
    let o = tally(
        &[
            "run",
            epoch_dir("boundaries").to_str().unwrap(),
            "--out",
            tmp.path().join("x").to_str().unwrap(),
            "--rules-dir",
            "tests",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such rules file"));
}

#[test]
fn an_edited_published_rules_version_is_refused() {
    // rules/SHA256SUMS records every published version; one value changed under the
    // same version name is a different rule set claiming a published name.
    let tmp = tempfile::tempdir().unwrap();
    let edited = tmp.path().join("v1.toml");
    let text = fs::read_to_string(std::path::Path::new(ROOT).join("rules/v1.toml")).unwrap();
    fs::write(
        &edited,
        text.replace("min_uptime = \"0.10\"", "min_uptime = \"0.05\""),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let e = epoch_dir("boundaries");
    let o = tally(
        &[
            "run",
            e.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--rules",
            edited.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("published versions are immutable"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn progress_is_silent_off_a_terminal() {
    // Tests run with stderr piped: whatever the run's length, only the closing line.
    let tmp = tempfile::tempdir().unwrap();
    for flags in [&[][..], &["--quiet"]] {
        let out = tmp.path().join(format!("out{}", flags.len()));
        let mut args = vec!["run", "tests/epochs/sample", "--out", out.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = tally(&args, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let lines: Vec<String> = stderr(&o).lines().map(String::from).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("tally: epoch gen-2024:"), "{lines:?}");
    }
}
