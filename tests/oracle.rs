//! Agreement with the independent implementation of the SPEC in
//! `tests/oracle/oracle.py` (written from the SPEC alone, in Python, with exact
//! fractions). Its answers for each fixture are frozen in `tests/expected/`, so this
//! test needs no Python; `tests/oracle/check.sh` cross-checks any epoch live.

use std::path::Path;

use crate::common::*;

/// (expected answers in `tests/expected/`, epoch in `tests/epochs/`, extra flags).
/// oracle-f1 and oracle-f3 are full of deliberately bad rows, more than v1's
/// max_rejected_ratio allows; they run with a test copy of v1 that differs only in
/// that limit. `-v2` cases run an epoch under the published rules v2 (SPEC 8).
const V2: &[&str] = &["--rules", "rules/v2.toml"];
const CASES: [(&str, &str, &[&str]); 12] = [
    ("boundaries", "boundaries", &[]),
    ("disputes", "disputes", &[]),
    ("disputes-v2", "disputes", V2),
    (
        "oracle-f1",
        "oracle-f1",
        &["--rules", "tests/rules/v1-lenient.toml"],
    ),
    ("oracle-f2", "oracle-f2", &[]),
    (
        "oracle-f3",
        "oracle-f3",
        &["--rules", "tests/rules/v1-lenient.toml"],
    ),
    ("oracle-f4", "oracle-f4", &[]),
    ("oracle-v2-epochA", "oracle-v2-epochA", &[]),
    ("oracle-v2-epochB", "oracle-v2-epochB", &[]),
    ("oracle-v2-epochB-v2", "oracle-v2-epochB", V2),
    ("sample", "sample", &[]),
    ("sample-v2", "sample", V2),
];

pub fn assert_agrees(tally_out: &Path, expected: &Path, name: &str) {
    let tables = [
        (
            "devices.csv",
            "oracle_devices.csv",
            &["online_slots", "points", "eligible", "reasons"][..],
        ),
        (
            "allocations.csv",
            "oracle_accounts.csv",
            &["points", "token_units"][..],
        ),
    ];
    for (ours, theirs, columns) in tables {
        let got = keyed(&tally_out.join(ours));
        let want = keyed(&expected.join(theirs));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}: {ours} rows"
        );
        for (id, w) in &want {
            for &c in columns {
                assert_eq!(got[id][c], w[c], "{name}: {ours} {id} {c}");
            }
        }
    }
}

#[test]
fn agrees_with_the_oracle_on_every_fixture() {
    for (name, epoch, flags) in CASES {
        let tmp = tempfile::tempdir().unwrap();
        let out = run_ok(&epoch_dir(epoch), tmp.path(), "out", flags, &[]);
        assert_agrees(
            &out,
            &Path::new(ROOT).join("tests/expected").join(name),
            name,
        );
    }
}
