//! The engine never panics on arbitrary table contents: random rows per table, mixing
//! valid identifiers, timestamps and decimals with arbitrary text (quotes, commas,
//! CR/LF, NUL, non-ASCII), through load, settle (with the split) and render. A run
//! may fail with an error; it must not panic. The invariants of a successful run are
//! checked by `tally_fuzz::check_and_render`.

use std::path::Path;

use proptest::prelude::*;

/// A cell: usually one the table expects, sometimes arbitrary text.
fn cell(valid: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(valid).prop_map(String::from),
        1 => "[a-z0-9,\"\r\n\0 é\u{feff}.:+-]{0,12}",
        1 => any::<String>(),
    ]
}

const IDS: &[&str] = &["d01", "d02", "d03", "d04", "d99"];
const ACCOUNTS: &[&str] = &["acct-a", "acct-b", "renter-x"];
const TIMES: &[&str] = &[
    "2024-03-01T00:00:00Z",
    "2024-03-01T00:05:00Z",
    "2024-03-01T01:59:59Z",
    "2024-03-01t00:10:00.5z",
    "2024-03-01T01:00:00+01:00",
    "1709251500",
    "2024-02-01T00:00:00Z",
    "2024-03-02T00:00:00Z",
];
const DECIMALS: &[&str] = &[
    "0",
    "25",
    "100.5",
    "500",
    "165.2",
    "989.4",
    "999999999999.999999999",
];
const MODELS: &[&str] = &["RTX-4090", "H100-80GB", "T4", "UNKNOWN"];
const HARDWARE: &[&str] = &["hw01", "hw02", "hw03"];
const IPS: &[&str] = &["10.0.0.1", "10.0.0.3", "2001:db8::2", "::ffff:10.0.0.1"];
const COUNTS: &[&str] = &["1", "2", "64"];
const ACTIONS: &[&str] = &["reinstate", "exclude"];
const NOTES: &[&str] = &["", "a note", "T-1"];

/// Rows of one table, as CSV text (fields quoted when they need it, or, rarely, not).
fn table(
    header: &'static str,
    columns: Vec<&'static [&'static str]>,
) -> impl Strategy<Value = String> {
    let row = columns.into_iter().map(cell).collect::<Vec<_>>();
    (
        proptest::collection::vec(row, 0..12),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(move |(rows, crlf, quirk)| {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut out = format!("{header}{end}");
            for r in rows {
                let fields: Vec<String> = r
                    .into_iter()
                    .map(|f| {
                        if quirk % 16 != 0 && f.contains([',', '"', '\r', '\n']) {
                            format!("\"{}\"", f.replace('"', "\"\""))
                        } else {
                            f
                        }
                    })
                    .collect();
                out.push_str(&fields.join(","));
                out.push_str(end);
            }
            out
        })
}

fn epoch_tables() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    (
        table(
            "device_id,account_id,gpu_model,gpu_count,hardware_id,ip,registered_at",
            vec![IDS, ACCOUNTS, MODELS, COUNTS, HARDWARE, IPS, TIMES],
        ),
        table("device_id,ts", vec![IDS, TIMES]),
        table(
            "device_id,ts,download_mbps,upload_mbps,latency_ms",
            vec![IDS, TIMES, DECIMALS, DECIMALS, DECIMALS],
        ),
        table(
            "device_id,ts,gpu_model,hardware_id,tflops",
            vec![IDS, TIMES, MODELS, HARDWARE, DECIMALS],
        ),
        table(
            "rental_id,device_id,renter_account_id,start,end",
            vec![IDS, IDS, ACCOUNTS, TIMES, TIMES],
        ),
        table(
            "device_id,action,ticket,note",
            vec![IDS, ACTIONS, NOTES, NOTES],
        ),
    )
        .prop_map(|(d, h, s, b, r, o)| {
            vec![
                ("devices", d),
                ("heartbeats", h),
                ("speedtests", s),
                ("benchmarks", b),
                ("rentals", r),
                ("overrides", o),
            ]
        })
}

/// Runs the tables as an epoch in `root/epoch` (rules beside it: an epoch directory
/// holds nothing else).
fn run(root: &Path, tables: &[(&str, String)]) {
    let dir = &root.join("epoch");
    std::fs::create_dir(dir).unwrap();
    std::fs::write(dir.join("epoch.toml"), tally_fuzz::BASE_EPOCH).unwrap();
    for (stem, text) in tables {
        std::fs::write(dir.join(format!("{stem}.csv")), text).unwrap();
    }
    let opts = tally_ingest::Options {
        rules_dir: root.join("rules"),
        threads: 2,
        ..Default::default()
    };
    std::fs::create_dir_all(&opts.rules_dir).unwrap();
    std::fs::write(
        opts.rules_dir.join("v1.toml"),
        tally_ingest::PUBLISHED_RULES[0].1,
    )
    .unwrap();
    // An error is an answer; a panic fails the test.
    let _ = tally_fuzz::settle_and_render(dir, &opts);
}

proptest! {
    // Each case is a full run of a tiny epoch (a few ms in a debug build).
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_never_panics_on_arbitrary_tables(tables in epoch_tables()) {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), &tables);
    }

    #[test]
    fn the_generator_runs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        tally_fuzz::run(&bytes);
    }
}

/// The bodies reach the engine: the base epoch, with any of its tables given back
/// unchanged, settles (so a fuzz input is judged by the rules, not refused for the
/// shape of its scratch directory).
#[test]
fn the_base_epoch_settles_through_every_table_target() {
    for (i, (stem, text)) in tally_fuzz::BASE_TABLES.iter().enumerate() {
        let mut data = vec![i as u8];
        data.extend_from_slice(text.as_bytes());
        assert_eq!(tally_fuzz::table_run(&data, "csv"), Some(Ok(())), "{stem}");
    }
}
