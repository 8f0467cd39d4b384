//! `tally gen` end to end: byte-identical output for one seed, and epochs that the
//! engine settles with every SPEC 3.2 reason and note, the same from CSV and Parquet.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use tally_gen::{generate, Format, GenError, Length, Params};

fn params(devices: u32, length: Length, seed: u64, format: Format) -> Params {
    Params {
        devices,
        length,
        seed,
        format,
        start: tally_gen::parse_start(tally_gen::DEFAULT_START).unwrap(),
    }
}

/// Every file of a directory, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Runs the engine in process, as `tally run` does: every output file, by name.
fn settle(epoch: &Path) -> Vec<(String, Vec<u8>)> {
    let opts = tally_ingest::Options {
        rules_file: None,
        rules_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules")),
        strict: false,
        progress: None,
        threads: 0,
    };
    let loaded = tally_ingest::load(epoch, &opts).unwrap();
    let settlement = loaded.settle();
    let run = tally_report::Run {
        epoch: &loaded.epoch,
        rules: &loaded.rules,
        rules_file: &loaded.rules_file,
        rules_text: &loaded.rules_text,
        settlement: &settlement,
        rejected: &loaded.rejected,
        counts: &loaded.counts,
        inputs: &loaded.inputs,
    };
    tally_report::render_all(&run, "test", false)
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a str {
    let bytes = &files.iter().find(|f| f.0 == name).unwrap().1;
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    for format in [Format::Csv, Format::Parquet] {
        let gen = |seed: u64, name: &str| {
            let out = tmp.path().join(name);
            generate(&params(150, Length::Hours(2), seed, format), &out, false).unwrap();
            files(&out)
        };
        let ext = format.extension();
        let a = gen(7, &format!("a-{ext}"));
        let b = gen(7, &format!("b-{ext}"));
        assert_eq!(a, b, "{ext}: same arguments, different bytes");
        let names: Vec<&str> = a.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "benchmarks",
                "devices",
                "epoch",
                "heartbeats",
                "overrides",
                "rentals",
                "speedtests"
            ]
            .map(|s| if s == "epoch" {
                "epoch.toml".to_string()
            } else {
                format!("{s}.{ext}")
            })
        );
        let c = gen(8, &format!("c-{ext}"));
        // Overrides name the first devices that qualify, which may coincide.
        for (x, y) in a
            .iter()
            .zip(&c)
            .filter(|(x, _)| !x.0.starts_with("overrides"))
        {
            assert_ne!(x.1, y.1, "{ext}: seeds 7 and 8 give the same {}", x.0);
        }
    }
}

#[test]
fn refuses_an_existing_directory_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("epoch");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("keep"), "x").unwrap();
    let p = params(5, Length::Hours(1), 1, Format::Csv);
    assert!(matches!(
        generate(&p, &out, false),
        Err(GenError::Exists(_))
    ));
    assert!(out.join("keep").exists());
    let report = generate(&p, &out, true).unwrap();
    assert!(!out.join("keep").exists());
    assert_eq!(report.id, "gen-s1-5x1h");
    assert!(fs::read_to_string(out.join("epoch.toml"))
        .unwrap()
        .contains("end = \"2024-03-01T01:00:00Z\""));
    // Nothing but the epoch is left beside it.
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn rejects_out_of_range_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("e");
    for p in [
        params(0, Length::Hours(1), 1, Format::Csv),
        params(1_000_001, Length::Hours(1), 1, Format::Csv),
        params(1, Length::Days(367), 1, Format::Csv),
        params(1, Length::Hours(0), 1, Format::Csv),
    ] {
        assert!(matches!(
            generate(&p, &out, false),
            Err(GenError::Invalid(_))
        ));
    }
    assert!(tally_gen::parse_start("2024-03-01").is_err());
    assert!(!out.exists());
}

/// The acceptance test of realism: a day of 2,000 devices shows every exclusion
/// reason and note of SPEC 3.2, a few rejected rows per event table (the run still
/// succeeds), and the same allocations, devices and exclusions from CSV and Parquet.
#[test]
fn a_day_of_2000_devices_has_every_anomaly_in_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let mut settled = Vec::new();
    for format in [Format::Csv, Format::Parquet] {
        let out = tmp.path().join(format.extension());
        let report = generate(&params(2_000, Length::Hours(24), 1, format), &out, false).unwrap();
        let hb = &report.tables[1];
        assert!(hb.rows > 1_500_000, "{report}");
        assert!(hb.malformed >= 3, "{report}");
        settled.push(settle(&out));
    }
    let csv = &settled[0];
    let devices = file(csv, "devices.csv");
    let header: Vec<&str> = devices.lines().next().unwrap().split(',').collect();
    let reasons = header.iter().position(|&c| c == "reasons").unwrap();
    let codes: BTreeSet<&str> = devices
        .lines()
        .skip(1)
        .flat_map(|l| l.split(',').nth(reasons).unwrap().split(';'))
        .map(|c| c.split(':').next().unwrap())
        .collect();
    let exclusions = file(csv, "exclusions.csv");
    for code in [
        "REGISTERED_AFTER_EPOCH",
        "UNKNOWN_GPU_MODEL",
        "DUPLICATE_HARDWARE",
        "IP_CAP",
        "NO_BENCHMARK",
        "MODEL_MISMATCH",
        "HARDWARE_MISMATCH",
        "IMPOSSIBLE_BENCHMARK",
        "SUSPECTED_VIRTUAL_GPU",
        "LOW_UPTIME",
        "REINSTATED",
        "MANUAL_EXCLUSION",
    ] {
        assert!(
            exclusions.contains(&format!(",{code}")),
            "no {code} in exclusions.csv"
        );
        assert!(codes.contains(code), "no {code} in devices.csv: {codes:?}");
    }
    for note in ["INSUFFICIENT_SPEEDTESTS", "LOW_BANDWIDTH", "SELF_RENTAL"] {
        assert!(codes.contains(note), "no {note} in devices.csv: {codes:?}");
    }
    let rejected = file(csv, "rejected_rows.csv");
    for table in ["heartbeats.csv", "speedtests.csv", "benchmarks.csv"] {
        assert!(rejected.contains(&format!("\n{table},")), "{rejected}");
    }
    // Heartbeats before registration, and events outside the epoch, are ignored.
    let summary: serde_json::Value = serde_json::from_str(file(csv, "summary.json")).unwrap();
    for table in ["heartbeats", "speedtests", "benchmarks", "rentals"] {
        assert!(
            summary["tables"][table]["ignored"].as_u64().unwrap() > 0,
            "{table}"
        );
    }
    for name in ["allocations.csv", "devices.csv", "exclusions.csv"] {
        assert_eq!(
            file(csv, name),
            file(&settled[1], name),
            "{name} differs between CSV and Parquet"
        );
    }
}
