//! Hostile input: a battery of malformed epochs, each a copy of the `boundaries`
//! epoch with one thing broken. Every one must give a non-zero exit (1 for bad data,
//! 2 for a bad invocation), a message naming the file and, where there is one, the
//! line; no output directory, no stray file, and no panic. The legal forms of CSV
//! (BOM, CRLF, quoting) must stay accepted and change no report.
//!
//! The walk collects every case that misbehaves and reports them all at once.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// What a case expects.
enum Expect {
    /// Exit code, and substrings of stderr (file, line, what was wrong).
    Fails(i32, Vec<String>),
    /// A successful run.
    Runs,
}

type Edit = Box<dyn Fn(&Path)>;

struct Case {
    name: String,
    edit: Edit,
    expect: Expect,
    /// Extra arguments of `tally run` (`{tmp}` is the case's scratch directory).
    args: Vec<String>,
}

fn fails(code: i32, has: &[&str]) -> Expect {
    Expect::Fails(code, has.iter().map(|s| s.to_string()).collect())
}

fn case(name: &str, edit: Edit, expect: Expect) -> Case {
    Case {
        name: name.into(),
        edit,
        expect,
        args: vec![],
    }
}

fn bytes(dir: &Path, file: &str) -> Vec<u8> {
    fs::read(dir.join(file)).unwrap()
}

/// Replaces the first `from` of `file` by `to`.
fn sub(file: &'static str, from: &'static [u8], to: Vec<u8>) -> Edit {
    Box::new(move |d| {
        let b = bytes(d, file);
        let at = b
            .windows(from.len())
            .position(|w| w == from)
            .unwrap_or_else(|| panic!("{file} has no {:?}", String::from_utf8_lossy(from)));
        let mut out = b[..at].to_vec();
        out.extend_from_slice(&to);
        out.extend_from_slice(&b[at + from.len()..]);
        fs::write(d.join(file), out).unwrap();
    })
}

fn append(file: &'static str, line: Vec<u8>) -> Edit {
    Box::new(move |d| {
        let mut b = bytes(d, file);
        b.extend_from_slice(&line);
        fs::write(d.join(file), b).unwrap();
    })
}

fn write(file: &'static str, content: Vec<u8>) -> Edit {
    Box::new(move |d| fs::write(d.join(file), &content).unwrap())
}

fn remove(file: &'static str) -> Edit {
    Box::new(move |d| fs::remove_file(d.join(file)).unwrap())
}

/// Every CSV table of the epoch rewritten by `f`.
fn every_csv(f: fn(&[u8]) -> Vec<u8>) -> Edit {
    Box::new(move |d| {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "csv") {
                let b = fs::read(&p).unwrap();
                fs::write(&p, f(&b)).unwrap();
            }
        }
    })
}

/// Every field of a CSV quoted, with `""` for a quote inside.
fn quote_all(b: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(b.to_vec()).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let fields: Vec<String> = line
            .split(',')
            .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// A Parquet table written from named columns.
fn parquet(stem: &'static str, columns: fn() -> Vec<polars::prelude::Column>) -> Edit {
    Box::new(move |d| {
        use polars::prelude::*;
        let _ = fs::remove_file(d.join(format!("{stem}.csv")));
        let mut df = DataFrame::new_infer_height(columns()).unwrap();
        let f = fs::File::create(d.join(format!("{stem}.parquet"))).unwrap();
        ParquetWriter::new(f).finish(&mut df).unwrap();
    })
}

fn heartbeat_columns() -> Vec<polars::prelude::Column> {
    use polars::prelude::*;
    vec![
        Column::new("device_id".into(), vec!["d01".to_string(); 3]),
        Column::new("ts".into(), vec!["2024-03-01T00:00:00Z".to_string(); 3]),
    ]
}

/// A valid Parquet heartbeats table, then `f` applied to its bytes.
fn parquet_bytes(f: fn(Vec<u8>) -> Vec<u8>) -> Edit {
    Box::new(move |d| {
        parquet("heartbeats", heartbeat_columns)(d);
        let p = d.join("heartbeats.parquet");
        let b = fs::read(&p).unwrap();
        fs::write(&p, f(b)).unwrap();
    })
}

/// A rules file beside the epoch (passed with `--rules`), v1 with one edit.
fn with_rules(name: &str, from: &'static str, to: &'static str, has: &[&str]) -> Case {
    let v1 = fs::read_to_string(Path::new(ROOT).join("rules/v1.toml")).unwrap();
    assert!(v1.contains(from), "{from}");
    let text = v1.replacen(from, to, 1);
    Case {
        name: format!("rules: {name}"),
        edit: Box::new(move |d| {
            fs::write(d.parent().unwrap().join("r.toml"), &text).unwrap();
        }),
        expect: fails(1, has),
        args: vec!["--rules".into(), "{tmp}/r.toml".into()],
    }
}

const REG: &str = "devices.csv";
const ST: &str = "speedtests.csv";

/// The registry's second line (first device) with `from` replaced: an error at once,
/// on line 2, naming the column.
fn registry(name: &str, from: &'static [u8], to: &[u8], column: &str) -> Case {
    case(
        &format!("registry: {name}"),
        sub(REG, from, to.to_vec()),
        fails(1, &["devices.csv:2:", column]),
    )
}

/// A speedtest row appended with `download_mbps` set to `value`: a rejected row on line
/// 25, over max_rejected_ratio (the table has 23 rows), so the run fails.
fn speedtest(name: &str, value: &[u8]) -> Case {
    let mut line = b"d01,2024-03-01T01:00:00Z,".to_vec();
    line.extend_from_slice(value);
    line.extend_from_slice(b",250,30\n");
    case(
        &format!("speedtests: {name}"),
        append(ST, line),
        fails(1, &["speedtests.csv", "line 25", "download_mbps"]),
    )
}

/// `registered_at` of the first device set to `ts`.
fn timestamp(name: &str, ts: &str) -> Case {
    registry(
        &format!("timestamp {name}"),
        b"2024-02-01T00:00:00Z",
        ts.as_bytes(),
        "registered_at",
    )
}

fn epoch_toml(name: &str, from: &'static str, to: &'static str, has: &[&str]) -> Case {
    case(
        &format!("epoch.toml: {name}"),
        sub("epoch.toml", from.as_bytes(), to.as_bytes().to_vec()),
        fails(1, has),
    )
}

fn cases() -> Vec<Case> {
    let big_line = |quoted: bool| {
        let mut l = b"d01,".to_vec();
        if quoted {
            l.push(b'"');
        }
        l.extend(std::iter::repeat_n(b'9', 100 << 20));
        if quoted {
            l.push(b'"');
        }
        l.push(b'\n');
        l
    };
    let wide_header = |n: usize| {
        let mut h = b"device_id,ts".to_vec();
        for i in 0..n {
            h.extend_from_slice(format!(",x{i}").as_bytes());
        }
        h.push(b'\n');
        h
    };
    let mut v = vec![
        // Files.
        case(
            "missing devices",
            remove(REG),
            fails(1, &["devices.csv", "missing"]),
        ),
        case(
            "missing rentals",
            remove("rentals.csv"),
            fails(1, &["rentals.csv", "missing"]),
        ),
        case(
            "missing epoch.toml",
            remove("epoch.toml"),
            fails(1, &["epoch.toml", "cannot read"]),
        ),
        case(
            "extra file",
            write("notes.txt", b"hello".to_vec()),
            fails(1, &["notes.txt", "unexpected entry"]),
        ),
        case(
            "misspelt overrides",
            write(
                "overides.csv",
                b"device_id,action,ticket,note\nd01,exclude,T-1,x\n".to_vec(),
            ),
            fails(1, &["overides.csv", "unexpected entry"]),
        ),
        case(
            "hidden file",
            write(".DS_Store", b"x".to_vec()),
            fails(1, &[".DS_Store", "unexpected entry"]),
        ),
        case(
            "directory as a table",
            Box::new(|d| {
                fs::remove_file(d.join("rentals.csv")).unwrap();
                fs::create_dir(d.join("rentals.csv")).unwrap();
            }),
            fails(1, &["rentals.csv", "not a regular file"]),
        ),
        case(
            "FIFO as a table",
            Box::new(|d| {
                fs::remove_file(d.join("rentals.csv")).unwrap();
                let ok = std::process::Command::new("mkfifo")
                    .arg(d.join("rentals.csv"))
                    .status()
                    .unwrap()
                    .success();
                assert!(ok);
            }),
            fails(1, &["rentals.csv", "not a regular file"]),
        ),
        case(
            "broken symlink as a table",
            Box::new(|d| {
                fs::remove_file(d.join("rentals.csv")).unwrap();
                std::os::unix::fs::symlink("/nonexistent/x", d.join("rentals.csv")).unwrap();
            }),
            fails(1, &["rentals.csv", "cannot read"]),
        ),
        case(
            "both CSV and Parquet",
            write("rentals.parquet", b"PAR1".to_vec()),
            fails(1, &["rentals.csv", "both rentals.csv and rentals.parquet"]),
        ),
        // Headers and structure.
        case(
            "missing column",
            sub(ST, b"latency_ms", b"latency".to_vec()),
            fails(1, &["speedtests.csv:1:", "missing column \"latency_ms\""]),
        ),
        case(
            "column name of another case",
            sub(ST, b"latency_ms", b"Latency_ms".to_vec()),
            fails(1, &["speedtests.csv:1:", "missing column \"latency_ms\""]),
        ),
        case(
            "repeated column",
            sub(
                "heartbeats.csv",
                b"device_id,ts",
                b"device_id,ts,ts".to_vec(),
            ),
            fails(1, &["heartbeats.csv:1:", "named twice"]),
        ),
        case(
            "empty file",
            write("heartbeats.csv", vec![]),
            fails(1, &["heartbeats.csv", "empty file"]),
        ),
        case(
            "registry with a header only",
            write(
                REG,
                b"device_id,account_id,gpu_model,gpu_count,hardware_id,ip,registered_at\n".to_vec(),
            ),
            fails(1, &["devices.csv", "no devices"]),
        ),
        case(
            "event table with a header only",
            write(
                "rentals.csv",
                b"rental_id,device_id,renter_account_id,start,end\n".to_vec(),
            ),
            Expect::Runs,
        ),
        case(
            "header of 2000 columns",
            write("heartbeats.csv", wide_header(2_000)),
            fails(
                1,
                &["heartbeats.csv:1:", "2002 columns, more than the 1024"],
            ),
        ),
        case(
            "header of a million columns",
            write("heartbeats.csv", wide_header(1_000_000)),
            fails(1, &["heartbeats.csv:1:", "longer than 1048576 bytes"]),
        ),
        case(
            "line of 100 MB",
            append("heartbeats.csv", big_line(false)),
            fails(1, &["heartbeats.csv:1541:", "longer than 1048576 bytes"]),
        ),
        case(
            "quoted field of 100 MB",
            append("heartbeats.csv", big_line(true)),
            fails(1, &["heartbeats.csv:1541:", "longer than 1048576 bytes"]),
        ),
        case(
            "record with too few fields (registry)",
            append(REG, b"d99,acct-z\n".to_vec()),
            fails(1, &["devices.csv:16:", "expected 7 fields"]),
        ),
        case(
            "record with too many fields",
            append(ST, b"d01,2024-03-01T01:00:00Z,1,2,3,4\n".to_vec()),
            fails(1, &["speedtests.csv", "line 25", "expected 5 fields"]),
        ),
        case(
            "unclosed quote",
            append(
                REG,
                b"d99,\"acct-z,T4,1,hw,10.9.9.9,2024-02-01T00:00:00Z\n".to_vec(),
            ),
            fails(1, &["devices.csv:16:", "never closed"]),
        ),
        case(
            "bare CR as a line end",
            append(
                "heartbeats.csv",
                b"d01,2024-03-01T00:00:00Z\rd02,2024-03-01T00:00:00Z\n".to_vec(),
            ),
            fails(
                1,
                &["heartbeats.csv:1541:", "CR that is not followed by LF"],
            ),
        ),
        // Encoding.
        case(
            "invalid UTF-8 in the registry",
            sub(REG, b"acct-a", b"acct-\xff".to_vec()),
            fails(1, &["devices.csv:2:", "not UTF-8"]),
        ),
        case(
            "invalid UTF-8 in a header",
            sub(
                "heartbeats.csv",
                b"device_id,ts",
                b"device_id,ts,\xff".to_vec(),
            ),
            fails(1, &["heartbeats.csv:1:", "not UTF-8"]),
        ),
        speedtest("invalid UTF-8", b"5\xff"),
        registry("NUL byte", b"acct-a", b"acct\0a", "account_id"),
        speedtest("NUL byte", b"5\0"),
        case(
            "quoted comma in an address",
            sub(REG, b"10.0.0.1,", b"\"10.0.0.1,10.0.0.2\",".to_vec()),
            fails(1, &["devices.csv:2:", "ip"]),
        ),
        case(
            "quoted newline in an identifier",
            sub(REG, b"acct-a", b"\"acct\na\"".to_vec()),
            fails(1, &["devices.csv:2:", "account_id"]),
        ),
        case(
            "quoted quote in an identifier",
            sub(REG, b"acct-a", b"\"acct\"\"a\"".to_vec()),
            fails(1, &["devices.csv:2:", "account_id"]),
        ),
        // Numbers.
        speedtest("exponent", b"1e3"),
        speedtest("plus sign", b"+5"),
        speedtest("minus sign", b"-5"),
        speedtest("thousands separator", b"\"1,000\""),
        speedtest("NaN", b"NaN"),
        speedtest("inf", b"inf"),
        speedtest("40 digits", &[b'1'; 40]),
        speedtest("10 decimal places", b"1.0000000001"),
        speedtest("leading space", b" 5"),
        speedtest("hexadecimal", b"0x10"),
        speedtest("empty", b""),
        registry("gpu_count 0", b"RTX-4090,1,", b"RTX-4090,0,", "gpu_count"),
        registry("gpu_count 65", b"RTX-4090,1,", b"RTX-4090,65,", "gpu_count"),
        registry("gpu_count +1", b"RTX-4090,1,", b"RTX-4090,+1,", "gpu_count"),
        registry(
            "gpu_count 1.0",
            b"RTX-4090,1,",
            b"RTX-4090,1.0,",
            "gpu_count",
        ),
        registry(
            "gpu_count 1e0",
            b"RTX-4090,1,",
            b"RTX-4090,1e0,",
            "gpu_count",
        ),
        registry(
            "gpu_count of 40 digits",
            b"RTX-4090,1,",
            &[b"RTX-4090,".as_slice(), &[b'1'; 40], b","].concat(),
            "gpu_count",
        ),
        // Timestamps.
        timestamp("with no offset", "2024-02-01T00:00:00"),
        timestamp("year 0", "0000-02-01T00:00:00Z"),
        timestamp("year 10000", "10000-02-01T00:00:00Z"),
        timestamp("leap second", "2024-02-01T23:59:60Z"),
        timestamp("hour 24", "2024-02-01T24:00:00Z"),
        timestamp("30 February", "2024-02-30T00:00:00Z"),
        timestamp("offset +24:00", "2024-02-01T00:00:00+24:00"),
        timestamp("space for T", "2024-02-01 00:00:00Z"),
        timestamp("12 digits", "999999999999"),
        timestamp("negative", "-1"),
        timestamp("empty", ""),
        // Identifiers.
        registry("empty identifier", b"d01,acct-a", b",acct-a", "device_id"),
        registry(
            "identifier of 129 characters",
            b"acct-a",
            &[b'a'; 129],
            "account_id",
        ),
        registry(
            "identifier starting with =",
            b"acct-a",
            b"=acct-a",
            "account_id",
        ),
        registry(
            "identifier starting with +",
            b"acct-a",
            b"+acct-a",
            "account_id",
        ),
        registry(
            "identifier starting with -",
            b"acct-a",
            b"-acct-a",
            "account_id",
        ),
        registry("identifier with @", b"acct-a", b"acct@a", "account_id"),
        registry("identifier with a tab", b"acct-a", b"acct\ta", "account_id"),
        registry(
            "identifier with a space",
            b"acct-a",
            b"acct a",
            "account_id",
        ),
        registry(
            "non-ASCII identifier",
            b"acct-a",
            "acct-é".as_bytes(),
            "account_id",
        ),
        registry("IPv6 zone id", b"10.0.0.1", b"fe80::1%eth0", "ip"),
        registry("IPv4 out of range", b"10.0.0.1", b"256.0.0.1", "ip"),
        case(
            "repeated device",
            append(
                REG,
                b"d01,acct-x,T4,1,hwx,10.9.9.9,2024-02-01T00:00:00Z\n".to_vec(),
            ),
            fails(1, &["devices.csv", "\"d01\"", "more than once"]),
        ),
        case(
            "event of an unknown device",
            append(ST, b"ghost,2024-03-01T01:00:00Z,500,250,30\n".to_vec()),
            fails(1, &["speedtests.csv", "line 25", "not in the registry"]),
        ),
        case(
            "rental that ends before it starts",
            append(
                "rentals.csv",
                b"r9,d01,renter-x,2024-03-01T02:00:00Z,2024-03-01T01:00:00Z\n".to_vec(),
            ),
            fails(1, &["rentals.csv", "line 7", "end after it starts"]),
        ),
        case(
            "override action of another case",
            write(
                "overrides.csv",
                b"device_id,action,ticket,note\nd01,Exclude,T-1,x\n".to_vec(),
            ),
            fails(1, &["overrides.csv", "line 2", "action"]),
        ),
        case(
            "override note of 1001 characters",
            write(
                "overrides.csv",
                [
                    b"device_id,action,ticket,note\nd01,exclude,T-1,".as_slice(),
                    &[b'n'; 1001],
                    b"\n",
                ]
                .concat(),
            ),
            fails(1, &["overrides.csv", "line 2", "at most 1000 characters"]),
        ),
        case(
            "override note with an escape sequence",
            write(
                "overrides.csv",
                b"device_id,action,ticket,note\nd01,exclude,T-1,\"\x1b[2Jok\"\n".to_vec(),
            ),
            fails(1, &["overrides.csv", "line 2", "control character"]),
        ),
        // Parquet.
        case(
            "empty Parquet file",
            Box::new(|d| {
                fs::remove_file(d.join("heartbeats.csv")).unwrap();
                fs::write(d.join("heartbeats.parquet"), b"").unwrap();
            }),
            fails(1, &["heartbeats.parquet", "not a readable Parquet file"]),
        ),
        case(
            "truncated Parquet file",
            parquet_bytes(|b| b[..b.len() - 20].to_vec()),
            fails(1, &["heartbeats.parquet", "not a readable Parquet file"]),
        ),
        case(
            "Parquet file cut in half",
            parquet_bytes(|b| b[..b.len() / 2].to_vec()),
            fails(1, &["heartbeats.parquet", "not a readable Parquet file"]),
        ),
        case(
            "Parquet with a corrupt footer",
            parquet_bytes(|mut b| {
                let n = b.len();
                for x in &mut b[n - 60..n - 8] {
                    *x ^= 0x5a;
                }
                b
            }),
            fails(1, &["heartbeats.parquet"]),
        ),
        case(
            "CSV bytes named .parquet",
            Box::new(|d| {
                fs::rename(d.join("heartbeats.csv"), d.join("heartbeats.parquet")).unwrap();
            }),
            fails(1, &["heartbeats.parquet", "not a readable Parquet file"]),
        ),
        case(
            "Parquet float column",
            parquet("speedtests", || {
                use polars::prelude::*;
                vec![
                    Column::new("device_id".into(), vec!["d01"]),
                    Column::new("ts".into(), vec!["2024-03-01T01:00:00Z"]),
                    Column::new("download_mbps".into(), vec![500.0f64]),
                    Column::new("upload_mbps".into(), vec!["250"]),
                    Column::new("latency_ms".into(), vec!["30"]),
                ]
            }),
            fails(
                1,
                &[
                    "speedtests.parquet",
                    "download_mbps",
                    "floating point is refused",
                ],
            ),
        ),
        case(
            "Parquet boolean column",
            parquet("devices", || {
                use polars::prelude::*;
                vec![
                    Column::new("device_id".into(), vec!["d01"]),
                    Column::new("account_id".into(), vec!["a"]),
                    Column::new("gpu_model".into(), vec!["T4"]),
                    Column::new("gpu_count".into(), vec![true]),
                    Column::new("hardware_id".into(), vec!["h"]),
                    Column::new("ip".into(), vec!["10.0.0.1"]),
                    Column::new("registered_at".into(), vec!["2024-02-01T00:00:00Z"]),
                ]
            }),
            fails(1, &["devices.parquet", "gpu_count", "type bool"]),
        ),
        case(
            "Parquet list column",
            parquet("heartbeats", || {
                use polars::prelude::*;
                // Two values in one row: the page checks would refuse the chunk
                // first, with a message about counts instead of the type.
                let ts = Series::new("".into(), vec!["2024-03-01T01:00:00Z", "x"]);
                vec![
                    Column::new("device_id".into(), vec!["d01"]),
                    Column::new("ts".into(), vec![ts]),
                ]
            }),
            fails(
                1,
                &["heartbeats.parquet", "column \"ts\" has Parquet type list"],
            ),
        ),
        case(
            "Parquet missing column",
            parquet("heartbeats", || {
                use polars::prelude::*;
                vec![Column::new("device_id".into(), vec!["d01"])]
            }),
            fails(1, &["heartbeats.parquet", "missing column \"ts\""]),
        ),
        case(
            "Parquet gpu_count out of range",
            parquet("devices", || {
                use polars::prelude::*;
                vec![
                    Column::new("device_id".into(), vec!["d01"]),
                    Column::new("account_id".into(), vec!["a"]),
                    Column::new("gpu_model".into(), vec!["T4"]),
                    Column::new("gpu_count".into(), vec![100_000_000_000i64]),
                    Column::new("hardware_id".into(), vec!["h"]),
                    Column::new("ip".into(), vec!["10.0.0.1"]),
                    Column::new("registered_at".into(), vec!["2024-02-01T00:00:00Z"]),
                ]
            }),
            fails(1, &["devices.parquet:1:", "gpu_count"]),
        ),
        // epoch.toml.
        epoch_toml(
            "reversed interval",
            "end = \"2024-03-01T10:00:00Z\"",
            "end = \"2024-02-01T10:00:00Z\"",
            &["epoch.toml:3:", "after start"],
        ),
        epoch_toml(
            "empty interval",
            "end = \"2024-03-01T10:00:00Z\"",
            "end = \"2024-03-01T00:00:00Z\"",
            &["epoch.toml:3:", "after start"],
        ),
        epoch_toml(
            "not whole slots",
            "end = \"2024-03-01T10:00:00Z\"",
            "end = \"2024-03-01T10:00:01Z\"",
            &["epoch.toml", "whole number of 300 s slots"],
        ),
        epoch_toml(
            "longer than 366 days",
            "end = \"2024-03-01T10:00:00Z\"",
            "end = \"2026-03-01T10:00:00Z\"",
            &["epoch.toml:3:", "366"],
        ),
        epoch_toml(
            "pool with too many decimals",
            "pool = \"1000\"",
            "pool = \"1000.001\"",
            &["epoch.toml:4:", "pool"],
        ),
        epoch_toml(
            "pool of 0",
            "pool = \"1000\"",
            "pool = \"0\"",
            &["epoch.toml:4:", "pool"],
        ),
        epoch_toml(
            "negative pool",
            "pool = \"1000\"",
            "pool = \"-1000\"",
            &["epoch.toml:4:", "pool"],
        ),
        epoch_toml(
            "pool with an exponent",
            "pool = \"1000\"",
            "pool = \"1e3\"",
            &["epoch.toml:4:", "pool"],
        ),
        epoch_toml(
            "pool as a TOML number",
            "pool = \"1000\"",
            "pool = 1000",
            &["epoch.toml:4:", "expected a string"],
        ),
        epoch_toml(
            "pool of 40 digits",
            "pool = \"1000\"",
            "pool = \"1000000000000000000000000000000000000000\"",
            &["epoch.toml:4:", "pool"],
        ),
        epoch_toml(
            "19 decimals",
            "decimals = 2",
            "decimals = 19",
            &["epoch.toml:5:", "decimals"],
        ),
        epoch_toml(
            "unknown rules version",
            "rules = \"v1\"",
            "rules = \"v9\"",
            &["v9", "no such rules file"],
        ),
        epoch_toml(
            "rules version with a path",
            "rules = \"v1\"",
            "rules = \"../v1\"",
            &["epoch.toml:6:", "rules"],
        ),
        epoch_toml(
            "id with a space",
            "id = \"boundaries\"",
            "id = \"bound aries\"",
            &["epoch.toml:1:", "id"],
        ),
        epoch_toml(
            "start with no offset",
            "start = \"2024-03-01T00:00:00Z\"",
            "start = \"2024-03-01T00:00:00\"",
            &["epoch.toml:2:", "start"],
        ),
        epoch_toml(
            "unknown key",
            "rules = \"v1\"",
            "rules = \"v1\"\nsurprise = 1",
            &["epoch.toml:7:", "unknown field"],
        ),
        epoch_toml(
            "missing key",
            "decimals = 2\n",
            "",
            &["epoch.toml", "decimals"],
        ),
        epoch_toml(
            "repeated key",
            "decimals = 2\n",
            "decimals = 2\ndecimals = 3\n",
            &["epoch.toml:6:", "duplicate key"],
        ),
        case(
            "epoch.toml not TOML",
            write("epoch.toml", b"id = \n".to_vec()),
            fails(1, &["epoch.toml:1:"]),
        ),
        case(
            "epoch.toml not UTF-8",
            write("epoch.toml", b"id = \"\xff\"\n".to_vec()),
            fails(1, &["epoch.toml", "not UTF-8"]),
        ),
        case(
            "epoch.toml of 2 MiB",
            write("epoch.toml", vec![b'#'; 2 << 20]),
            fails(1, &["epoch.toml", "larger than 1048576 bytes"]),
        ),
        // Rules files.
        with_rules(
            "negative multiplier",
            "multiplier = \"",
            "multiplier = \"-",
            &["r.toml:", "multiplier", "non-negative"],
        ),
        with_rules(
            "duplicate model",
            "{ name = \"T4\",",
            "{ name = \"RTX-4090\",",
            &["r.toml:", "listed twice"],
        ),
        with_rules(
            "float instead of a string",
            "min_uptime = \"0.10\"",
            "min_uptime = 0.10",
            &["r.toml:", "floating point"],
        ),
        with_rules(
            "slot of 0 seconds",
            "slot_seconds = 300",
            "slot_seconds = 0",
            &["r.toml:", "slot_seconds"],
        ),
        with_rules(
            "unknown key",
            "min_speedtests = 2",
            "min_speedtests = 2\nbonus = \"1\"",
            &["r.toml:", "unknown field"],
        ),
        with_rules(
            "a published version edited",
            "min_speedtests = 2",
            "min_speedtests = 3",
            &["r.toml", "v1", "published"],
        ),
        // Legal forms stay legal.
        case(
            "UTF-8 BOM on every table",
            every_csv(|b| [b"\xEF\xBB\xBF".as_slice(), b].concat()),
            Expect::Runs,
        ),
        case(
            "CRLF line ends on every table",
            every_csv(|b| {
                String::from_utf8(b.to_vec())
                    .unwrap()
                    .replace('\n', "\r\n")
                    .into_bytes()
            }),
            Expect::Runs,
        ),
        case("every field quoted", every_csv(quote_all), Expect::Runs),
        case(
            "blank lines",
            every_csv(|b| [b, b"\n\n".as_slice()].concat()),
            Expect::Runs,
        ),
    ];
    // The same epoch, but more devices on one account than an account may have.
    v.push(case(
        "100,001 devices on one account",
        Box::new(|d| {
            let mut reg = bytes(d, REG);
            for i in 0..100_001 {
                reg.extend_from_slice(
                    format!(
                        "z{i},acct-big,T4,1,hz{i},10.{}.{}.{},2024-02-01T00:00:00Z\n",
                        100 + i / 62_500,
                        i / 250 % 250,
                        i % 250
                    )
                    .as_bytes(),
                );
            }
            fs::write(d.join(REG), reg).unwrap();
        }),
        fails(
            1,
            &["devices.csv", "\"acct-big\"", "more than 100000 devices"],
        ),
    ));
    // More rejected rows than tally keeps: a failure at once, not a heap of them.
    v.push(case(
        "1,000,001 rejected rows",
        Box::new(|d| {
            let mut hb = bytes(d, "heartbeats.csv");
            for _ in 0..1_000_001 {
                hb.extend_from_slice(b"d01,x\n");
            }
            fs::write(d.join("heartbeats.csv"), hb).unwrap();
        }),
        fails(
            1,
            &[
                "heartbeats.csv:1540:",
                "more than 1000000 rows of this table are rejected",
            ],
        ),
    ));
    // A bad invocation is exit code 2, and leaves an existing OUT_DIR alone.
    v.push(Case {
        name: "unknown flag".into(),
        edit: Box::new(|_| {}),
        expect: fails(2, &["--frobnicate"]),
        args: vec!["--frobnicate".into()],
    });
    v.push(Case {
        name: "threads not a number".into(),
        edit: Box::new(|_| {}),
        expect: fails(2, &["--threads"]),
        args: vec!["--threads".into(), "many".into()],
    });
    v
}

/// Runs one case in a fresh scratch directory; what went wrong, if anything.
fn check(c: &Case, clean: &std::collections::BTreeMap<String, Vec<u8>>) -> Option<String> {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    copy_dir(&epoch_dir("boundaries"), &input);
    (c.edit)(&input);
    let out = tmp.path().join("out");
    let tmp_text = tmp.path().to_str().unwrap();
    let mut args: Vec<String> = vec![
        "run".into(),
        input.to_str().unwrap().into(),
        "--out".into(),
        out.to_str().unwrap().into(),
    ];
    args.extend(c.args.iter().map(|a| a.replace("{tmp}", tmp_text)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = tally(&args, &[]);
    let err = stderr(&o);
    let mut problems = Vec::new();
    if err.contains("panicked") || o.status.code() == Some(101) {
        problems.push("panicked".to_string());
    }
    match &c.expect {
        Expect::Runs => {
            if !o.status.success() {
                problems.push(format!("exit {:?}", o.status.code()));
            } else {
                // A legal form of the same data changes no report (only the input
                // hashes in the manifest and summary, and the raw text of a rejected
                // row, which is published as written).
                for (name, b) in files(&out) {
                    let same = clean.get(&name) == Some(&b)
                        || !name.ends_with(".csv")
                        || c.name.contains("header only")
                        || (c.name == "every field quoted" && name == "rejected_rows.csv");
                    if !same {
                        problems.push(format!("{name} differs from the plain run"));
                    }
                }
            }
        }
        Expect::Fails(code, has) => {
            if o.status.code() != Some(*code) {
                problems.push(format!("exit {:?}, expected {code}", o.status.code()));
            }
            for h in has {
                if !err.contains(h.as_str()) {
                    problems.push(format!("no {h:?} in the message"));
                }
            }
            if out.exists() {
                problems.push("OUT_DIR exists".into());
            }
            let left: Vec<PathBuf> = fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p != &input && p.file_name().unwrap() != "r.toml")
                .collect();
            if !left.is_empty() {
                problems.push(format!("stray files {left:?}"));
            }
        }
    }
    (!problems.is_empty()).then(|| {
        let first_line = err
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect::<String>();
        format!(
            "{}: {}\n    stderr: {first_line}",
            c.name,
            problems.join("; ")
        )
    })
}

#[test]
fn every_malformed_epoch_fails_cleanly_and_legal_forms_run() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = files(&run_ok(
        &epoch_dir("boundaries"),
        tmp.path(),
        "clean",
        &[],
        &[],
    ));
    let cases = cases();
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(names.insert(c.name.clone()), "case {:?} twice", c.name);
    }
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c, &clean)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Characters a terminal acts on, besides the line end.
fn control_chars(text: &[u8]) -> Vec<u8> {
    text.iter()
        .copied()
        .filter(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
        .collect()
}

/// Published files are read by the people they judge: a rejected row's text and a
/// dispute note are attacker-controlled, yet no CSV cell may start a spreadsheet
/// formula, no IP address may appear anywhere, and `explain` and `diff` print control
/// characters escaped.
#[test]
fn published_files_are_safe_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    copy_dir(&epoch_dir("boundaries"), &input);
    // The epoch's one rejected heartbeat, now with a formula for its device.
    let hb = fs::read_to_string(input.join("heartbeats.csv")).unwrap();
    fs::write(
        input.join("heartbeats.csv"),
        hb.replacen("d99,", "=1+2,", 1),
    )
    .unwrap();
    let note = "=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")";
    fs::write(
        input.join("overrides.csv"),
        format!("device_id,action,ticket,note\nd01,exclude,T-9,\"{note}\"\n"),
    )
    .unwrap();
    let clean = run_ok(&epoch_dir("boundaries"), tmp.path(), "clean", &[], &[]);
    let out = run_ok(&input, tmp.path(), "out", &["--emit-measurements"], &[]);

    let registry = csv_rows(&input.join("devices.csv"));
    let ips: Vec<String> = registry.iter().map(|r| r["ip"].clone()).collect();
    let mut escaped = 0;
    for (name, bytes) in files(&out) {
        let text = String::from_utf8(bytes).unwrap();
        for ip in &ips {
            assert!(!text.contains(ip.as_str()), "{name} shows the IP {ip}");
        }
        if !name.ends_with(".csv") {
            continue;
        }
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        for rec in r.records() {
            for cell in rec.unwrap().iter() {
                let number = cell
                    .trim_start_matches(['-', '+'])
                    .split_once('.')
                    .map_or(cell.trim_start_matches(['-', '+']), |(i, _)| i)
                    .bytes()
                    .all(|b| b.is_ascii_digit());
                let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
                assert!(!risky || number, "{name}: cell {cell:?} starts a formula");
                escaped += usize::from(cell.starts_with("'="));
            }
        }
    }
    assert_eq!(
        escaped, 1,
        "the formula of the rejected row (the note's cell starts with its ticket)"
    );

    // An auditor may be handed a tampered output directory: whatever it holds,
    // `explain` and `diff` print control characters escaped.
    let forged = tmp.path().join("forged");
    copy_dir(&out, &forged);
    let ex = fs::read_to_string(forged.join("exclusions.csv")).unwrap();
    assert!(ex.contains("=HYPERLINK"));
    fs::write(
        forged.join("exclusions.csv"),
        ex.replacen("=HYPERLINK", "\u{1b}[2J\u{7}=HYPERLINK", 1),
    )
    .unwrap();

    let explain = tally(&["explain", forged.to_str().unwrap(), "acct-a"], &[]);
    assert!(explain.status.success(), "{}", stderr(&explain));
    assert_eq!(
        control_chars(&explain.stdout),
        b"",
        "explain printed control characters"
    );
    let text = String::from_utf8(explain.stdout).unwrap();
    assert!(
        text.contains("\\u{1b}[2J\\u{7}=HYPERLINK"),
        "the note, its control characters shown escaped: {text}"
    );

    for format in ["text", "csv"] {
        let diff = tally(
            &[
                "diff",
                clean.to_str().unwrap(),
                forged.to_str().unwrap(),
                "--format",
                format,
            ],
            &[],
        );
        assert!(diff.status.success(), "{}", stderr(&diff));
        assert_eq!(
            control_chars(&diff.stdout),
            b"",
            "diff printed control characters"
        );
    }
}

/// An output directory that overlaps the epoch is refused (exit 2) before anything
/// is read or written: inside it, the reports would be an unexpected entry of the
/// epoch; as the epoch itself or a parent, `--force` would replace the inputs.
#[test]
fn output_directory_overlapping_the_epoch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    copy_dir(&epoch_dir("boundaries"), &input);
    let before = files(&input);
    for out in [input.join("out"), input.clone(), tmp.path().to_path_buf()] {
        for force in [false, true] {
            let mut args = vec![
                "run",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ];
            if force {
                args.push("--force");
            }
            let o = tally(&args, &[]);
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
            assert!(stderr(&o).contains("overlap"), "{}", stderr(&o));
            assert_eq!(files(&input), before, "the inputs are untouched");
        }
    }
}
