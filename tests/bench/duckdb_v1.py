#!/usr/bin/env python3
"""SPEC v1's per-device aggregation (the measurement table) in DuckDB SQL.

Usage:
    python3 tests/bench/duckdb_v1.py EPOCH_DIR OUT_CSV [--threads N]
        [--memory-limit SIZE] [--temp-dir DIR] [--slot-seconds S] [--no-rental-online]

This is the query a data engineer would write to get the table that
`tally run --emit-measurements` writes as `measurements.csv`, for the benchmark
in tests/bench/bench.sh: DuckDB reads the epoch's CSV or Parquet files directly,
sets aside the rows tally would reject, and computes, per registry device, exactly
(integers, DECIMAL(21,9) and HUGEINT; never a float):

  heartbeats, online_slots, longest_streak_slots,
  speedtests, median_download_mbps, median_upload_mbps, median_latency_ms,
  benchmarks, median_tflops, benchmarks_other_model, other_models,
  benchmarks_other_hardware, other_hardware_ids,
  rental_seconds, self_rental_seconds, rental_online_seconds

It writes OUT_CSV with the same columns, number formats and row order (device_id,
byte order) as tally's measurements.csv, so the two files can be compared with cmp.

What is timed: the script prints, on stderr, `duckdb_v1: query_seconds=X` for the
one statement that reads the files, aggregates and writes OUT_CSV. Python's start,
`import duckdb` and reading the CSV header lines are outside it. bench.sh compares
this time with tally's whole run, and shows /usr/bin/time's figures for the process
(wall, CPU, peak RSS) beside it.

Validation, as tally does it (SPEC 2.1, 2.2), for the columns the table uses:
- a CSV record with more or fewer fields than the header is dropped (DuckDB's
  reader in strict mode with ignore_errors); an empty field is NULL, hence invalid;
- device_id must be in the registry (an inner join; registry ids are identifiers);
- other identifiers (gpu_model, hardware_id, rental_id, renter_account_id) must
  match [A-Za-z0-9][A-Za-z0-9._:-]{0,127};
- timestamps: Unix seconds as 1 to 11 digits, or RFC 3339
  YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM) with T/Z in either case, year
  0001-9999, hour <= 23, minute and second <= 59, offset <= 23:59, a date that
  exists; fractions floored. Parquet timestamps (any unit) are floored to seconds;
  Parquet integers are Unix seconds (0 to 99999999999);
- decimals: [0-9]{1,12}(\\.[0-9]{1,9})? as text; Parquet DECIMAL (scale <= 9) or
  integers below 10^12;
- rentals with end <= start are dropped.
What it does not do (tally does): the registry itself is trusted, not validated
(tally refuses an invalid registry); a CSV file that mixes LF and CRLF line ends
makes DuckDB's strict reader fail where tally reads it;
the 0.1% rejected-row limit, rejected_rows.csv and the rest of the run (scoring,
split, reports) are not reproduced: this is the aggregation only.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
import tomllib
from pathlib import Path

import duckdb

TABLES = {
    "devices": ["device_id", "account_id", "gpu_model", "hardware_id", "registered_at"],
    "heartbeats": ["device_id", "ts"],
    "speedtests": ["device_id", "ts", "download_mbps", "upload_mbps", "latency_ms"],
    "benchmarks": ["device_id", "ts", "gpu_model", "hardware_id", "tflops"],
    "rentals": ["rental_id", "device_id", "renter_account_id", "start", "end"],
}
KIND = {  # column -> kind of value (SPEC 2.1)
    "device_id": "id", "account_id": "id", "gpu_model": "id", "hardware_id": "id",
    "rental_id": "id", "renter_account_id": "id",
    "registered_at": "ts", "ts": "ts", "start": "ts", "end": "ts",
    "download_mbps": "dec", "upload_mbps": "dec", "latency_ms": "dec", "tflops": "dec",
}

# Every helper is a DuckDB macro: the SQL below is plain DuckDB, nothing is done in
# Python per row.
MACROS = r"""
-- SPEC 2.1 identifier
CREATE OR REPLACE MACRO is_ident(s) AS
    regexp_full_match(s, '[A-Za-z0-9][A-Za-z0-9._:-]{0,127}');

-- floor division for BIGINT (DuckDB's // truncates towards zero)
CREATE OR REPLACE MACRO fdiv(a, b) AS (a - (((a % b) + b) % b)) // b;

-- SPEC 2.1 timestamp text -> Unix seconds, NULL when it is not one.
-- First the canonical form YYYY-MM-DDTHH:MM:SSZ (all that `tally gen` writes), on a
-- cheap path: DuckDB's strptime checks ranges and that the day exists, but it skips
-- leading white space and accepts year 0000, hence the guards s >= '0001' AND s < ':'
-- (byte order: a digit first, and not year 0000); the LIKE mask fixes the length and
-- the separators. Then Unix seconds; then the general RFC 3339 form (offsets,
-- fractions, t/z), checked by one anchored pattern, the day by a DATE cast.
CREATE OR REPLACE MACRO ts_text(s) AS CASE
    WHEN s LIKE '____-__-__T__:__:__Z' AND s >= '0001' AND s < ':'
    THEN epoch_us(TRY_STRPTIME(s, '%Y-%m-%dT%H:%M:%SZ')) // 1000000
    WHEN regexp_full_match(s, '[0-9]{1,11}') THEN CAST(s AS BIGINT)
    WHEN regexp_full_match(s,
        '[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])')
         AND s[1:4] <> '0000'
    THEN (TRY_CAST(s[1:10] AS DATE) - DATE '1970-01-01') * 86400
         + CAST(s[12:13] AS BIGINT) * 3600 + CAST(s[15:16] AS BIGINT) * 60 + CAST(s[18:19] AS BIGINT)
         - CASE WHEN s[-1:] IN ('Z', 'z') THEN 0
                ELSE (CASE WHEN s[-6:-6] = '+' THEN 1 ELSE -1 END)
                     * (CAST(s[-5:-4] AS BIGINT) * 3600 + CAST(s[-2:] AS BIGINT) * 60) END
    END;

-- SPEC 2.1 decimal text -> DECIMAL(21,9), NULL when it is not one (exact: at most 9
-- places, so the cast never rounds)
CREATE OR REPLACE MACRO dec_text(s) AS CASE
    WHEN regexp_full_match(s, '[0-9]{1,12}(\.[0-9]{1,9})?') THEN CAST(s AS DECIMAL(21,9)) END;

-- a native Parquet value of a decimal column: inside [0, 10^12)
CREATE OR REPLACE MACRO dec_native(x) AS CASE
    WHEN x >= 0 AND x < 1000000000000 THEN CAST(x AS DECIMAL(21,9)) END;

-- Unix seconds within 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z
CREATE OR REPLACE MACRO ts_range(t) AS CASE
    WHEN t BETWEEN -62135596800 AND 253402300799 THEN t END;

-- median of a list of DECIMAL(21,9): exact, as an integer at scale 10 (10^-10
-- units): odd count, the middle value; even, the mean of the two middle ones, which
-- (a + b) / 2 at scale 9 is (a + b) * 5 at scale 10. DuckDB's own median() on
-- DECIMAL interpolates through DOUBLE and keeps the input scale: not exact.
CREATE OR REPLACE MACRO median10(l) AS CASE WHEN len(l) > 0 THEN
    (CAST(l[(len(l) + 1) // 2] * 1000000000 AS HUGEINT)
     + CAST(l[len(l) // 2 + 1] * 1000000000 AS HUGEINT)) * 5 END;

-- an exact scale-10 integer as tally writes a normalised decimal: 250, 1137.81, 0
CREATE OR REPLACE MACRO fmt10(u) AS CASE WHEN u IS NOT NULL THEN
    CAST(u // 10000000000 AS VARCHAR)
    || CASE WHEN u % 10000000000 = 0 THEN ''
            ELSE '.' || rtrim(lpad(CAST(u % 10000000000 AS VARCHAR), 10, '0'), '0') END END;
"""


def csv_header(path: Path) -> list[str]:
    """The header names of a CSV file (RFC 4180, optional BOM), in file order."""
    import csv
    with open(path, newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f))


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def source(con, epoch: Path, table: str) -> str:
    """A SELECT of the table's needed columns, each normalised to the type the
    aggregation uses (VARCHAR ids, BIGINT Unix seconds, DECIMAL(21,9)), where a bad
    value is NULL, keeping only rows whose identifiers and decimals are valid (bad
    timestamps are dropped where they are compared, bad device ids by the join)."""
    csv_p, pq_p = epoch / (table + ".csv"), epoch / (table + ".parquet")
    if csv_p.exists() and pq_p.exists():
        sys.exit(f"duckdb_v1: both {csv_p.name} and {pq_p.name}")
    want = TABLES[table]
    if csv_p.exists():
        names = csv_header(csv_p)
        missing = [c for c in want if c not in names]
        if missing or len(set(names)) != len(names):
            sys.exit(f"duckdb_v1: {csv_p}: header {names} lacks {missing} or repeats a name")
        cols = "{" + ", ".join(f"{sql_str(n)}: 'VARCHAR'" for n in names) + "}"
        reader = (f"read_csv({sql_str(str(csv_p))}, columns={cols}, header=true, auto_detect=false, "
                  "delim=',', quote='\"', escape='\"', strict_mode=true, ignore_errors=true)")
        types = {c: "VARCHAR" for c in want}
    elif pq_p.exists():
        reader = f"read_parquet({sql_str(str(pq_p))})"
        types = {r[0]: r[1] for r in con.sql(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
        missing = [c for c in want if c not in types]
        if missing:
            sys.exit(f"duckdb_v1: {pq_p}: no column {missing}")
    else:
        sys.exit(f"duckdb_v1: no {table}.csv or {table}.parquet in {epoch}")

    exprs, conds = [], []
    for c in want:
        t, q = types[c].upper(), ident(c)
        k = KIND[c]
        text = t == "VARCHAR"
        integer = bool(re.fullmatch(r"U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)", t))
        if k == "id":
            e = q if text else "CAST(NULL AS VARCHAR)"
            # device_id is checked by the join with the registry (whose ids are valid)
            if c != "device_id" and table != "devices":
                conds.append(f"is_ident({q})")
        elif k == "ts":
            if text:
                e = f"ts_text({q})"
            elif t.startswith("TIMESTAMP"):
                unit, div = ("epoch_ns", 1000000000) if t == "TIMESTAMP_NS" else ("epoch_us", 1000000)
                e = f"ts_range(fdiv({unit}({q}), {div}))"
            elif integer:
                e = f"CASE WHEN {q} BETWEEN 0 AND 99999999999 THEN CAST({q} AS BIGINT) END"
            else:
                e = "CAST(NULL AS BIGINT)"
            # no IS NOT NULL here: every use of a timestamp compares it, which drops
            # NULLs, and a separate test would make DuckDB parse the text once more
        else:  # decimal
            m = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t)
            if text:
                e = f"dec_text({q})"
            elif integer or (m and int(m.group(2)) <= 9):
                e = f"dec_native({q})"
            else:
                e = "CAST(NULL AS DECIMAL(21,9))"  # floats cannot be exact
            conds.append(f"{q} IS NOT NULL")
        exprs.append(f"{e} AS {q}")
    where = " AND ".join(conds) if conds else "true"
    return f"(SELECT * FROM (SELECT {', '.join(exprs)} FROM {reader}) WHERE {where})"


def query(con, epoch: Path, start: int, end: int, slot: int, rental_online: bool) -> str:
    S, E = start, end
    src = {t: source(con, epoch, t) for t in TABLES}
    ro = """
-- rental_online_seconds: non-self rental islands intersected with online-slot
-- islands (both sets of disjoint intervals, so pairwise overlaps add up)
ron AS (
    SELECT r.idx, sum(least(r.b, o.b) - greatest(r.a, o.a)) AS rental_online_seconds
    FROM rent_isl r JOIN online_isl o ON r.idx = o.idx AND r.a < o.b AND o.a < r.b
    WHERE NOT r.self
    GROUP BY r.idx
),""" if rental_online else """
ron AS (SELECT CAST(NULL AS INTEGER) AS idx, CAST(NULL AS BIGINT) AS rental_online_seconds WHERE false),"""
    return f"""
WITH
reg AS (
    SELECT row_number() OVER () AS idx, device_id, account_id, gpu_model, hardware_id,
           -- heartbeats count in [hb_from, hb_to]. As columns of the registry, the
           -- bounds keep the filter after the join: as constants, DuckDB would push a
           -- copy of it below the join and parse every timestamp twice
           greatest({S}, registered_at) AS hb_from, {E - 1} AS hb_to
    FROM {src['devices']}
),
-- heartbeats: in the epoch, from registered_at on; slot numbers from the epoch start
hb_slots AS (
    SELECT d.idx, (h.ts - {S}) // {slot} AS slot, count(*) AS n
    FROM {src['heartbeats']} h JOIN reg d ON h.device_id = d.device_id
    WHERE h.ts BETWEEN d.hb_from AND d.hb_to
    GROUP BY d.idx, slot
),
-- gaps and islands: consecutive slots share slot - row_number()
online_isl AS (
    SELECT idx, count(*) AS len, sum(n) AS n,
           {S} + min(slot) * {slot} AS a, {S} + (max(slot) + 1) * {slot} AS b
    FROM (SELECT idx, slot, n, slot - row_number() OVER (PARTITION BY idx ORDER BY slot) AS g
          FROM hb_slots)
    GROUP BY idx, g
),
hb AS (
    SELECT idx, sum(n) AS heartbeats, sum(len) AS online_slots, max(len) AS longest_streak_slots
    FROM online_isl GROUP BY idx
),
st AS (
    SELECT d.idx, count(*) AS speedtests,
           median10(list_sort(list(s.download_mbps))) AS dl,
           median10(list_sort(list(s.upload_mbps))) AS ul,
           median10(list_sort(list(s.latency_ms))) AS lat
    FROM {src['speedtests']} s JOIN reg d ON s.device_id = d.device_id
    WHERE s.ts BETWEEN {S} AND {E - 1}
    GROUP BY d.idx
),
bm AS (
    SELECT d.idx, count(*) AS benchmarks,
           median10(list_sort(list(b.tflops))) AS tf,
           count(*) FILTER (WHERE b.gpu_model <> d.gpu_model) AS benchmarks_other_model,
           array_to_string(list_sort(list_distinct(list(b.gpu_model) FILTER (WHERE b.gpu_model <> d.gpu_model))), ';') AS other_models,
           count(*) FILTER (WHERE b.hardware_id <> d.hardware_id) AS benchmarks_other_hardware,
           array_to_string(list_sort(list_distinct(list(b.hardware_id) FILTER (WHERE b.hardware_id <> d.hardware_id))), ';') AS other_hardware_ids
    FROM {src['benchmarks']} b JOIN reg d ON b.device_id = d.device_id
    WHERE b.ts BETWEEN {S} AND {E - 1}
    GROUP BY d.idx
),
-- rentals clipped to the epoch, split by whether the renter is the device's account
rent AS (
    SELECT d.idx, r.renter_account_id = d.account_id AS self,
           greatest(r.start, {S}) AS a, least(r."end", {E}) AS b
    FROM {src['rentals']} r JOIN reg d ON r.device_id = d.device_id
    WHERE r."end" > r.start AND r."end" > {S} AND r.start < {E}
),
-- union of intervals (gaps and islands): an interval starts a new island when no
-- interval that starts earlier reaches it. Windows by RANGE over the start, so that
-- intervals with equal starts (duplicates included) are always treated alike.
rent_isl AS (
    SELECT idx, self, min(a) AS a, max(b) AS b
    FROM (SELECT idx, self, a, b,
                 sum(CASE WHEN prev_b IS NULL OR a > prev_b THEN 1 ELSE 0 END)
                     OVER (PARTITION BY idx, self ORDER BY a
                           RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS g
          FROM (SELECT idx, self, a, b,
                       max(b) OVER (PARTITION BY idx, self ORDER BY a
                                    RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_b
                FROM rent))
    GROUP BY idx, self, g
),
rt AS (
    SELECT idx,
           coalesce(sum(b - a) FILTER (WHERE NOT self), 0) AS rental_seconds,
           coalesce(sum(b - a) FILTER (WHERE self), 0) AS self_rental_seconds
    FROM rent_isl GROUP BY idx
),{ro}
m AS (
    SELECT d.device_id,
           coalesce(hb.heartbeats, 0) AS heartbeats,
           coalesce(hb.online_slots, 0) AS online_slots,
           coalesce(hb.longest_streak_slots, 0) AS longest_streak_slots,
           coalesce(st.speedtests, 0) AS speedtests,
           fmt10(st.dl) AS median_download_mbps,
           fmt10(st.ul) AS median_upload_mbps,
           fmt10(st.lat) AS median_latency_ms,
           coalesce(bm.benchmarks, 0) AS benchmarks,
           fmt10(bm.tf) AS median_tflops,
           coalesce(bm.benchmarks_other_model, 0) AS benchmarks_other_model,
           bm.other_models,
           coalesce(bm.benchmarks_other_hardware, 0) AS benchmarks_other_hardware,
           bm.other_hardware_ids,
           coalesce(rt.rental_seconds, 0) AS rental_seconds,
           coalesce(rt.self_rental_seconds, 0) AS self_rental_seconds,
           {'coalesce(ron.rental_online_seconds, 0)' if rental_online else 'CAST(NULL AS VARCHAR)'} AS rental_online_seconds
    FROM reg d
    LEFT JOIN hb ON hb.idx = d.idx
    LEFT JOIN st ON st.idx = d.idx
    LEFT JOIN bm ON bm.idx = d.idx
    LEFT JOIN rt ON rt.idx = d.idx
    LEFT JOIN ron ON ron.idx = d.idx
)
SELECT * FROM m ORDER BY device_id
"""


def epoch_bounds(epoch: Path) -> tuple[int, int, str]:
    with open(epoch / "epoch.toml", "rb") as f:
        e = tomllib.load(f)
    con = duckdb.connect()
    con.execute(MACROS)
    s, t = con.execute("SELECT ts_text(?), ts_text(?)", [e["start"], e["end"]]).fetchone()
    if s is None or t is None or t <= s:
        sys.exit(f"duckdb_v1: {epoch}/epoch.toml: bad start/end")
    return s, t, e.get("rules", "v1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("epoch", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--memory-limit", help="DuckDB memory_limit (default: DuckDB's, 80%% of RAM)")
    p.add_argument("--temp-dir", type=Path, help="where DuckDB may spill (default: OUT_CSV.tmp/)")
    p.add_argument("--slot-seconds", type=int,
                   help="default: slot_seconds of rules/<rules>.toml beside this script's repo, else 300")
    p.add_argument("--no-rental-online", action="store_true",
                   help="leave rental_online_seconds empty (only rules v2 scores it; the file then "
                        "differs from tally's in that column)")
    a = p.parse_args()

    start, end, rules = epoch_bounds(a.epoch)
    slot = a.slot_seconds
    if slot is None:
        rf = Path(__file__).resolve().parents[2] / "rules" / f"{rules}.toml"
        slot = 300
        if rf.exists():
            with open(rf, "rb") as f:
                slot = int(tomllib.load(f).get("slot_seconds", 300))
    if (end - start) % slot:
        sys.exit("duckdb_v1: the epoch is not a whole number of slots")

    con = duckdb.connect()
    con.execute(f"SET threads = {int(a.threads)}")
    if a.memory_limit:
        con.execute(f"SET memory_limit = {sql_str(a.memory_limit)}")
    tmp = a.temp_dir or a.out.with_name(a.out.name + ".tmp")
    con.execute(f"SET temp_directory = {sql_str(str(tmp))}")
    con.execute("SET preserve_insertion_order = false")
    con.execute(MACROS)

    q = query(con, a.epoch, start, end, slot, not a.no_rental_online)
    t0 = time.perf_counter()
    con.execute(f"COPY ({q}) TO {sql_str(str(a.out))} (FORMAT csv, HEADER true)")
    dt = time.perf_counter() - t0
    print(f"duckdb_v1: query_seconds={dt:.3f} threads={a.threads}", file=sys.stderr)


if __name__ == "__main__":
    main()
