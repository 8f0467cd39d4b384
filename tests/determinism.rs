//! SPEC 5: the same inputs give byte-identical outputs, whatever the thread count,
//! the order of input rows, or the input format.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;

const EPOCHS: [&str; 3] = ["boundaries", "disputes", "sample"];

/// Everything but what legitimately follows the input files as given: the
/// manifest's input hashes, and the line numbers and raw text of rejected rows.
fn comparable(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut f = files(dir);
    let manifest: serde_json::Value =
        serde_json::from_slice(&f.remove("manifest.json").unwrap()).unwrap();
    let mut outputs = manifest["outputs"].clone();
    outputs
        .as_array_mut()
        .unwrap()
        .retain(|o| o["file"] != "rejected_rows.csv");
    f.insert("manifest outputs".into(), outputs.to_string().into_bytes());
    let rejected = csv_rows(&dir.join("rejected_rows.csv"));
    let mut reasons: Vec<String> = rejected.iter().map(|r| r["reason"].clone()).collect();
    reasons.sort();
    f.insert("rejected_rows.csv".into(), reasons.join("\n").into_bytes());
    f
}

#[test]
fn one_thread_or_many_same_bytes() {
    for name in EPOCHS {
        let tmp = tempfile::tempdir().unwrap();
        let a = run_ok(
            &epoch_dir(name),
            tmp.path(),
            "a",
            &[],
            &[("POLARS_MAX_THREADS", "1")],
        );
        let b = run_ok(&epoch_dir(name), tmp.path(), "b", &["--threads", "4"], &[]);
        assert_eq!(files(&a), files(&b), "{name}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(6))]

    /// Any permutation of the rows of every table gives the same reports.
    #[test]
    fn shuffled_rows_same_bytes(seed in proptest::prelude::any::<u64>(), which in 0usize..EPOCHS.len()) {
        let name = EPOCHS[which];
        let tmp = tempfile::tempdir().unwrap();
        let base = run_ok(&epoch_dir(name), tmp.path(), "base", &[], &[]);
        let shuffled = tmp.path().join("in");
        shuffled_copy(&epoch_dir(name), &shuffled, seed);
        let out = run_ok(&shuffled, tmp.path(), "out", &[], &[]);
        proptest::prop_assert_eq!(comparable(&base), comparable(&out), "{}, seed {}", name, seed);
    }
}

#[test]
fn parquet_same_bytes() {
    for name in EPOCHS {
        let tmp = tempfile::tempdir().unwrap();
        let base = run_ok(&epoch_dir(name), tmp.path(), "base", &[], &[]);
        let pq = tmp.path().join("pq");
        parquet_copy(&epoch_dir(name), &pq);
        assert!(pq.join("heartbeats.parquet").exists());
        let out = run_ok(&pq, tmp.path(), "out", &[], &[]);
        let (mut a, mut b) = (comparable(&base), comparable(&out));
        // The summary names each table's file: .csv against .parquet.
        let strip = |m: &mut BTreeMap<String, Vec<u8>>| {
            let s = String::from_utf8(m.remove("summary.json").unwrap()).unwrap();
            m.insert(
                "summary.json".into(),
                s.replace(".parquet", ".csv").into_bytes(),
            );
            m.remove("manifest outputs");
        };
        strip(&mut a);
        strip(&mut b);
        assert_eq!(a, b, "{name}");
        // Every report but the summary is byte-identical, and the manifest says so.
        for f in ["allocations.csv", "devices.csv", "exclusions.csv"] {
            assert_eq!(files(&base)[f], files(&out)[f], "{name} {f}");
        }
    }
}

/// The same three checks on any epoch, by hand (not in CI); leaves its work in a
/// directory it names, for inspection:
/// `TALLY_EPOCH=/path/to/epoch cargo test --release --test integration -- --ignored any_epoch --nocapture`
#[test]
#[ignore]
fn any_epoch_threads_shuffle_parquet() {
    let epoch = std::path::PathBuf::from(std::env::var("TALLY_EPOCH").expect("set TALLY_EPOCH"));
    let dir = tempfile::Builder::new()
        .prefix("tally-any-epoch-")
        .tempdir()
        .unwrap()
        .keep();
    eprintln!("working in {}", dir.display());
    let base = run_ok(&epoch, &dir, "base", &[], &[]);
    let one = run_ok(&epoch, &dir, "one", &["--threads", "1"], &[]);
    assert_eq!(files(&base), files(&one), "one thread");
    shuffled_copy(&epoch, &dir.join("in-shuffled"), 7);
    let shuffled = run_ok(&dir.join("in-shuffled"), &dir, "shuffled", &[], &[]);
    assert_eq!(comparable(&base), comparable(&shuffled), "shuffled");
    parquet_copy(&epoch, &dir.join("in-pq"));
    let pq = run_ok(&dir.join("in-pq"), &dir, "pq", &[], &[]);
    for f in ["allocations.csv", "devices.csv", "exclusions.csv"] {
        assert_eq!(files(&base)[f], files(&pq)[f], "parquet {f}");
    }
    eprintln!(
        "{}: identical with one thread, shuffled rows and Parquet",
        epoch.display()
    );
}
