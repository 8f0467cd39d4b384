//! Helpers shared by the integration tests: running the binary, reading outputs,
//! rewriting epochs (shuffled rows, Parquet), and the one insta configuration.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BUILT: &str = env!("CARGO_BIN_EXE_tally");

/// The binary under test: the one cargo built, or `$TALLY_BIN` (to test a release
/// build, or a copy that another build into the same target directory cannot replace).
pub fn bin() -> String {
    std::env::var("TALLY_BIN").unwrap_or_else(|_| BUILT.to_string())
}
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every snapshot lives in the top-level `snapshots/`, named by the snapshot alone.
/// CI runs with `INSTA_UPDATE=no`, so a changed snapshot fails instead of being written.
pub fn insta_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(Path::new(ROOT).join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
}

/// Pins every file of an output directory as `<prefix>__<file name>`.
pub fn snapshot_all(prefix: &str, out: &Path) {
    insta_settings().bind(|| {
        for (name, bytes) in files(out) {
            insta::assert_snapshot!(
                format!("{prefix}__{name}"),
                String::from_utf8(bytes).unwrap()
            );
        }
    });
}

pub fn epoch_dir(name: &str) -> PathBuf {
    Path::new(ROOT).join("tests/epochs").join(name)
}

/// Runs `tally` from the repository root (where `rules/` is).
pub fn tally(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.current_dir(ROOT).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run tally")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs an epoch into a fresh directory under `tmp` and returns it; panics with
/// stderr if the run fails.
pub fn run_ok(
    epoch: &Path,
    tmp: &Path,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    let out = tmp.join(name);
    let mut args = vec![
        "run",
        epoch.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = tally(&args, env);
    assert!(o.status.success(), "tally run failed: {}", stderr(&o));
    out
}

/// All files of a directory: name -> bytes.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A CSV output as rows of column -> value.
pub fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    csv_text_rows(&fs::read_to_string(path).unwrap())
}

/// CSV text as rows of column -> value.
pub fn csv_text_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            headers
                .iter()
                .zip(rec.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Rows keyed by their first column.
pub fn keyed(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let first = r.headers().unwrap()[0].to_string();
    csv_rows(path)
        .into_iter()
        .map(|row| (row[&first].clone(), row))
        .collect()
}

/// One column of a CSV output, keyed by the first column, as `(key, value)` pairs.
pub fn column(path: &Path, name: &str) -> Vec<(String, String)> {
    keyed(path)
        .into_iter()
        .map(|(k, row)| (k, row[name].clone()))
        .collect()
}

/// `expected` as owned pairs, to compare with [`column`].
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A small deterministic generator (SplitMix64) for shuffles.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Copies an epoch with the data rows of every CSV table shuffled (header first).
pub fn shuffled_copy(from: &Path, to: &Path, seed: u64) {
    copy_dir(from, to);
    let mut rng = Rng(seed);
    for e in fs::read_dir(to).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv") {
            let text = fs::read_to_string(&p).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            let header = lines.remove(0);
            rng.shuffle(&mut lines);
            let mut out = String::from(header);
            out.push('\n');
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
            fs::write(&p, out).unwrap();
        }
    }
}

/// Copies an epoch with every CSV table rewritten as Parquet. Timestamps become
/// native timestamps (heartbeats, in milliseconds) or Unix-second integers
/// (rentals); decimals become DECIMAL(21, 9) (speedtests); `gpu_count` an integer;
/// everything else stays a string, so both forms of SPEC 2 are exercised.
pub fn parquet_copy(from: &Path, to: &Path) {
    use polars::prelude::*;
    copy_dir(from, to);
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "csv") {
            continue;
        }
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        // A record with the wrong number of fields (a rejected row in CSV) has no
        // Parquet form: it is left out, and the reports must not change for it.
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&p)
            .unwrap();
        let headers: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<csv::StringRecord> = r
            .records()
            .map(Result::unwrap)
            .filter(|rec| rec.len() == headers.len())
            .collect();
        let columns: Vec<Column> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let text: Vec<&str> = rows.iter().map(|r| r.get(i).unwrap_or("")).collect();
                let strings = || {
                    Column::new(
                        h.into(),
                        text.iter().map(|s| s.to_string()).collect::<Vec<String>>(),
                    )
                };
                // A column with a value its native type cannot hold (a deliberately
                // bad row) stays text, which is as legal in Parquet.
                let ts: Option<Vec<i64>> = text
                    .iter()
                    .map(|s| tally_core::value::parse_timestamp(s).ok())
                    .collect();
                let dec: Option<Vec<i128>> = text
                    .iter()
                    .map(|s| {
                        tally_core::value::parse_decimal(s)
                            .ok()
                            .map(tally_core::value::to_scaled)
                    })
                    .collect();
                match (stem.as_str(), h.as_str(), ts, dec) {
                    ("heartbeats", "ts", Some(ts), _) => {
                        Int64Chunked::from_vec(h.into(), ts.iter().map(|s| s * 1000).collect())
                            .into_datetime(TimeUnit::Milliseconds, None)
                            .into_column()
                    }
                    ("rentals", "start" | "end", Some(ts), _) => Column::new(h.into(), ts),
                    ("devices", "gpu_count", _, _)
                        if text.iter().all(|s| s.parse::<i32>().is_ok()) =>
                    {
                        Column::new(
                            h.into(),
                            text.iter()
                                .map(|s| s.parse::<i32>().unwrap())
                                .collect::<Vec<i32>>(),
                        )
                    }
                    ("speedtests", "download_mbps" | "upload_mbps" | "latency_ms", _, Some(v)) => {
                        Int128Chunked::from_vec(h.into(), v)
                            .into_decimal(21, 9)
                            .unwrap()
                            .into_column()
                    }
                    _ => strings(),
                }
            })
            .collect();
        let mut df = DataFrame::new_infer_height(columns).unwrap();
        fs::remove_file(to.join(p.file_name().unwrap())).unwrap();
        let f = fs::File::create(to.join(format!("{stem}.parquet"))).unwrap();
        ParquetWriter::new(f).finish(&mut df).unwrap();
    }
}
