#!/usr/bin/env python3
"""The markdown table of one bench.sh run (called by bench.sh; standard library only).

Usage: report.py RESULTS_TSV HEADER DEVICES

RESULTS_TSV rows, tab-separated, as bench.sh appends them:
  workload format dir engine repeat wall user sys rss_kb query_s heartbeat_rows all_rows
  workload format dir engine repeat FAIL
  workload format match yes|NO
Each figure is the median over the repeats, taken figure by figure. "wall s", the
time compared, is tally's whole process (end to end) and DuckDB's statement alone
(reading the files, aggregating, writing the CSV: query_s, measured inside Python);
"process wall s", CPU s and peak RSS are /usr/bin/time's figures for each process.
"""
from __future__ import annotations

import statistics
import sys

TARGET_RATIO = 0.5          # (a) tally <= 1/2 of DuckDB's wall time and peak RSS
TARGET_HUGE_RSS_MB = 4096   # (b) tally peak RSS < 4 GiB on ~1B heartbeat rows
TARGET_SAMPLE_S = 1.0       # (c) the sample epoch under 1 s


def med(xs):
    return statistics.median(xs) if xs else None


def si(n):
    for unit, f in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= f:
            return f"{n / f:.2f}{unit}"
    return f"{n:.0f}"


def main() -> None:
    path, header, devices = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # a workload is (name, format)
    runs: dict[tuple[tuple[str, str], str], dict] = {}
    order: list[tuple[str, str]] = []
    match: dict[tuple[str, str], str] = {}
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) == 4 and f[2] == "match":
            match[(f[0], f[1])] = f[3]
            continue
        name, fmt, _dir, engine = f[:4]
        if (name, fmt) not in order:
            order.append((name, fmt))
        r = runs.setdefault(((name, fmt), engine), {"wall": [], "cpu": [], "rss": [], "q": [], "fail": 0,
                                              "hb": None, "all": None})
        if f[5] == "FAIL":
            r["fail"] += 1
            continue
        wall, user, sys_, rss = float(f[5]), float(f[6]), float(f[7]), int(f[8])
        r["wall"].append(wall)
        r["cpu"].append(user + sys_)
        r["rss"].append(rss / 1024)
        if f[9] != "-":
            r["q"].append(float(f[9]))
        if f[10] != "-":
            r["hb"], r["all"] = int(f[10]), int(f[11])

    out = [f"### {header}", "",
           "| workload | format | heartbeat rows | all rows | engine | wall s | process wall s | CPU s "
           "| peak RSS MB | rows/s | tally/DuckDB wall | tally/DuckDB RSS | same measurements |",
           "|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    ratios: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    tally_of: dict[tuple[str, str], dict] = {}
    for key in order:
        name, fmt = key
        t, d = runs.get((key, "tally")), runs.get((key, "duckdb"))
        hb = (t or {}).get("hb") or (d or {}).get("hb")
        rows = (t or {}).get("all") or (d or {}).get("all")
        wr = rr = None
        if t and d and t["wall"] and d["wall"]:
            wr = med(t["wall"]) / med(d["q"] or d["wall"])
            rr = med(t["rss"]) / med(d["rss"])
        ratios[key] = (wr, rr)
        tally_of[key] = t or {}
        first = True
        for engine, r in (("tally", t), ("duckdb", d)):
            if r is None:
                continue
            if first:
                lead = f"| {name} | {fmt} | {hb:,} | {rows:,} " if hb is not None else f"| {name} | {fmt} | - | - "
            else:
                lead = "| | | | "
            first = False
            label = "tally" if engine == "tally" else "DuckDB"
            if r["fail"]:
                label += f" ({r['fail']} of {r['fail'] + len(r['wall'])} runs failed)"
            if not r["wall"]:
                out.append(lead + f"| {label} | failed | | | | | | | |")
                continue
            pw, c, m = med(r["wall"]), med(r["cpu"]), med(r["rss"])
            # the time compared: tally end to end; DuckDB's statement (read, aggregate, write)
            w = med(r["q"]) if r["q"] else pw
            rate = si(rows / w) if rows and w > 0 else "-"
            if engine == "tally":
                rat = f"| {wr:.2f} | {rr:.2f} " if wr is not None else "| - | - "
                same = match.get(key, "not compared")
            else:
                rat, same = "| | ", ""
            out.append(lead + f"| {label} | {w:.2f} | {pw:.2f} | {c:.2f} | {m:.0f} | {rate} {rat}| {same} |")

    # the three targets of the benchmark issue
    out += ["", "Targets:"]
    big = [k for k in order if k[0] == f"{devices} devices x 1 day"]
    if devices != 100000:
        out.append(f"- (a) 100,000 devices x 1 day: not run ({devices:,} devices in this run)")
    for key in big if devices == 100000 else []:
        wr, rr = ratios[key]
        if wr is None:
            out.append(f"- (a) {key[0]}, {key[1]}: no ratio (a run failed)")
            continue
        same = match.get(key) == "yes"
        ok = wr <= TARGET_RATIO and rr <= TARGET_RATIO and same
        out.append(f"- (a) {key[0]}, {key[1]}: tally wall x{wr:.2f} and peak RSS x{rr:.2f} of DuckDB's, "
                   f"measurements {'equal' if same else 'DIFFER'} (target: <= {TARGET_RATIO} each, equal): "
                   f"{'met' if ok else 'NOT met'}")
    huge = [k for k in order if k not in big and k[0] != "sample"]
    for key in huge:
        t = tally_of[key]
        if t.get("rss"):
            m = med(t["rss"])
            out.append(f"- (b) {key[0]}, {key[1]} ({t.get('hb') or 0:,} heartbeat rows): tally peak RSS "
                       f"{m:.0f} MB (target: < {TARGET_HUGE_RSS_MB} MB): "
                       f"{'met' if m < TARGET_HUGE_RSS_MB else 'NOT met'}")
        else:
            out.append(f"- (b) {key[0]}, {key[1]}: tally failed")
    if not huge:
        out.append("- (b) ~1B heartbeat rows: not run (needs --huge)")
    t = tally_of.get(("sample", "csv"), {})
    if t.get("wall"):
        w = med(t["wall"])
        out.append(f"- (c) sample: tally {w:.2f} s (target: < {TARGET_SAMPLE_S:.0f} s): "
                   f"{'met' if w < TARGET_SAMPLE_S else 'NOT met'}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
