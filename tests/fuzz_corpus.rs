//! Replays the fuzzers' regression corpus (`crates/fuzz/corpus/<target>/`) through the
//! target bodies of `tally-fuzz`, so that every input that once crashed tally, and a
//! minimized set covering what the fuzzers reached, runs on stable Rust in CI without
//! cargo-fuzz. A panic names the file.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus() {
    for (target, _) in tally_fuzz::TARGETS {
        assert!(
            !corpus(target).is_empty(),
            "crates/fuzz/corpus/{target} is empty"
        );
    }
}

fn replay(target: &str) {
    let (_, body) = tally_fuzz::TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .expect("a target");
    for file in corpus(target) {
        let bytes = std::fs::read(&file).unwrap();
        let r = std::panic::catch_unwind(|| body(&bytes));
        assert!(r.is_ok(), "{target}: {} panicked", file.display());
    }
}

#[test]
fn csv_table() {
    replay("csv_table");
}

#[test]
fn parquet_table() {
    replay("parquet_table");
}

#[test]
fn epoch_toml() {
    replay("epoch_toml");
}

#[test]
fn rules() {
    replay("rules");
}

#[test]
fn run() {
    replay("run");
}

/// Writes seeds for the fuzzers that the repository does not hold as files: the base
/// epoch's `epoch.toml` and CSV tables, and the tables of the base epoch and of two
/// test epochs as Parquet (typed columns where `parquet_copy` makes them); table
/// seeds are prefixed with their table's selector byte. Run by hand:
/// `SEEDS=dir cargo test --test integration write_seeds -- --ignored`.
#[test]
#[ignore]
fn write_seeds() {
    let out = PathBuf::from(std::env::var("SEEDS").expect("SEEDS=directory"));
    for t in ["csv_table", "parquet_table", "epoch_toml"] {
        std::fs::create_dir_all(out.join(t)).unwrap();
    }
    std::fs::write(out.join("epoch_toml/base.toml"), tally_fuzz::BASE_EPOCH).unwrap();
    let base = tempfile::tempdir().unwrap();
    for (stem, text) in tally_fuzz::BASE_TABLES {
        std::fs::write(base.path().join(format!("{stem}.csv")), text).unwrap();
    }
    for (stem, seed) in tally_fuzz::table_seeds(base.path()) {
        std::fs::write(out.join(format!("csv_table/base-{stem}")), seed).unwrap();
    }
    let mut epochs = vec![("base".to_string(), base.path().to_path_buf())];
    for name in ["boundaries", "sample"] {
        epochs.push((name.to_string(), crate::common::epoch_dir(name)));
    }
    for (name, dir) in epochs {
        let pq = tempfile::tempdir().unwrap();
        let to = pq.path().join("e");
        crate::common::parquet_copy(&dir, &to);
        for (i, (stem, _)) in tally_fuzz::BASE_TABLES.iter().enumerate() {
            if let Ok(bytes) = std::fs::read(to.join(format!("{stem}.parquet"))) {
                let mut seed = vec![i as u8];
                seed.extend(bytes);
                std::fs::write(out.join(format!("parquet_table/{name}-{stem}")), seed).unwrap();
            }
        }
    }
}

/// The Parquet files that once made tally panic or abort (`crash-*`), at least one.
fn parquet_crashes() -> Vec<PathBuf> {
    let crashes: Vec<PathBuf> = corpus("parquet_table")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("crash-")
        })
        .collect();
    assert!(!crashes.is_empty());
    crashes
}

/// The Parquet files that made polars panic are refused with an error naming the file.
#[test]
fn parquet_crash_reproducers_are_errors_naming_the_file() {
    for file in parquet_crashes() {
        let bytes = std::fs::read(&file).unwrap();
        let r = tally_fuzz::table_run(&bytes, "parquet").unwrap();
        let e = r.expect_err("a malformed Parquet file is an error");
        assert!(
            e.contains(".parquet: not a readable Parquet file")
                || e.contains(".parquet:1: missing column"),
            "{}: {e}",
            file.display()
        );
    }
}

/// The same files through the binary: exit 1, one line on stderr naming the file (the
/// contained panic prints nothing of its own, whichever thread of polars' it was on),
/// and no OUT_DIR; no abort.
#[test]
fn parquet_crash_reproducers_fail_the_cli_with_one_line() {
    for file in parquet_crashes() {
        let bytes = std::fs::read(&file).unwrap();
        let stem = tally_fuzz::table_of(bytes[0]);
        let tmp = tempfile::tempdir().unwrap();
        let epoch = tmp.path().join("epoch");
        crate::common::copy_dir(&crate::common::epoch_dir("boundaries"), &epoch);
        // (boundaries has no overrides.csv)
        let _ = std::fs::remove_file(epoch.join(format!("{stem}.csv")));
        std::fs::write(epoch.join(format!("{stem}.parquet")), &bytes[1..]).unwrap();
        let out = tmp.path().join("out");
        // Under a 16 GiB address-space limit, so that a huge allocation fails (and
        // aborts) here as it would on a machine without overcommit, instead of being
        // reserved lazily.
        let o = std::process::Command::new("sh")
            .current_dir(crate::common::ROOT)
            .args(["-c", "ulimit -v 16777216 && exec \"$@\"", "sh"])
            .arg(crate::common::bin())
            .args([
                "run",
                epoch.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .expect("run tally under sh");
        let err = crate::common::stderr(&o);
        let what = file.display();
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        // Unreadable, but for the footer on which two thrift decoders disagree: tally
        // hands polars the footer re-encoded, and the file is then read (and found to
        // lack the registry's columns).
        let expected = if what.to_string().ends_with("footer-decoders-disagree") {
            format!("tally: error: {stem}.parquet:1: missing column \"account_id\"")
        } else {
            format!("tally: error: {stem}.parquet: not a readable Parquet file")
        };
        assert!(err.starts_with(&expected), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(!out.exists(), "{what}: OUT_DIR was written");
        // This one aborted the process (polars asked for 2^61 bytes): the page headers
        // are now checked before polars sees them.
        if what
            .to_string()
            .ends_with("crash-parquet-negative-page-values-abort")
        {
            assert!(
                err.contains(
                    "row group 0 (counting from 0), column \"ts\": \
                     the page at byte 243 declares -11 values; expected 0 to 14"
                ),
                "{err}"
            );
        }
    }
}
