#!/usr/bin/env python3
"""Convert a CSV epoch directory to Parquet with DuckDB (for the benchmark and its checks).

Usage:
    python3 tests/bench/to_parquet.py SRC_DIR DST_DIR [--text] [--threads N]

Copies epoch.toml and writes every table of SRC_DIR as DST_DIR/<stem>.parquet
(overrides.csv stays CSV). By default the columns take their natural Parquet
types (SPEC 2): identifiers and ip as strings, timestamps as TIMESTAMP (ms),
gpu_count as INT32, decimals as DECIMAL(21,9). A value that is not valid (SPEC 2.1)
becomes a null there, which tally rejects and the DuckDB query drops, as they both
do with the text it came from; a record with the wrong number of fields is left
out. With --text every column is a string holding the CSV text, nothing changed.

`tally gen --format parquet` writes the benchmark's own Parquet epochs; this script
is the fallback for epochs made by tests/tools/gen_epoch.py, and a check of the
Parquet paths of tests/bench/duckdb_v1.py.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import duckdb

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from duckdb_v1 import MACROS, csv_header, ident, sql_str  # noqa: E402

TS = {"registered_at", "ts", "start", "end"}
DEC = {"download_mbps", "upload_mbps", "latency_ms", "tflops"}
TABLES = ["devices", "heartbeats", "speedtests", "benchmarks", "rentals"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--text", action="store_true", help="every column a string")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    a.dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(a.src / "epoch.toml", a.dst / "epoch.toml")
    if (a.src / "overrides.csv").exists():
        shutil.copy(a.src / "overrides.csv", a.dst / "overrides.csv")
    con = duckdb.connect()
    con.execute(f"SET threads = {int(a.threads)}")
    con.execute("SET preserve_insertion_order = true")
    con.execute(MACROS)
    for t in TABLES:
        src = a.src / f"{t}.csv"
        names = csv_header(src)
        cols = "{" + ", ".join(f"{sql_str(n)}: 'VARCHAR'" for n in names) + "}"
        reader = (f"read_csv({sql_str(str(src))}, columns={cols}, header=true, auto_detect=false, "
                  "delim=',', quote='\"', escape='\"', strict_mode=true, ignore_errors=true)")
        exprs = []
        for n in names:
            q = ident(n)
            if a.text:
                e = q
            elif n in TS:
                e = f"CAST(make_timestamp(ts_text({q}) * 1000000) AS TIMESTAMP_MS)"
            elif n in DEC:
                e = f"dec_text({q})"
            elif n == "gpu_count":
                e = (f"CASE WHEN regexp_full_match({q}, '[0-9]+') AND TRY_CAST({q} AS INTEGER) BETWEEN 1 AND 64 "
                     f"THEN CAST({q} AS INTEGER) END")
            else:
                e = q
            exprs.append(f"{e} AS {q}")
        out = a.dst / f"{t}.parquet"
        con.execute(f"COPY (SELECT {', '.join(exprs)} FROM {reader}) TO {sql_str(str(out))} "
                    "(FORMAT parquet, COMPRESSION zstd)")
    print(f"to_parquet: wrote {a.dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
