#!/usr/bin/env python3
"""Independent reference implementation ("oracle") of the tally SPEC,
rules v1 and v2.

Written from /work/shared/SPEC.md (sections 1-4, 7 and 8) only, to cross-check
the engine.  Standard library only; every number that reaches points or
tokens is an int or a fractions.Fraction, never a float.

Usage:  python3 tests/oracle/oracle.py EPOCH_DIR OUT_DIR [--rules-version v1|v2]

The rules version is epoch.toml's `rules` field ("v1" or "v2"), unless
--rules-version is given, which takes precedence.

Writes OUT_DIR/oracle_devices.csv and OUT_DIR/oracle_accounts.csv.
Errors that make the whole run impossible (bad registry, bad epoch.toml,
two overrides for one device, ...) exit with status 2 and write nothing.
Rejected rows of event tables are simply left out (max_rejected_ratio is
deliberately not enforced).
"""

import argparse
import csv
import datetime
import ipaddress
import os
import re
import sys
import tomllib
from fractions import Fraction

# ---------------------------------------------------------------------------
# Rules v1 (SPEC 3.1) and v2 (SPEC 8), hard-coded.
# ---------------------------------------------------------------------------

F = Fraction

SLOT_SECONDS = 300  # the same in v1 and v2
MIN_UPTIME = F("0.10")  # the same in v1 and v2
MAX_PERF_RATIO = F("1.15")  # the same in v1 and v2
MIN_PERF_RATIO = F("0.50")  # the same in v1 and v2

# The parameters that differ between versions.  min_streak_slots = 0 and
# rentals_require_online = False switch those v2 features off (v1).
RULES = {
    "v1": {
        "min_speedtests": 2,
        "max_devices_per_ip": 8,
        "min_streak_slots": 0,
        "rentals_require_online": False,
    },
    "v2": {
        "min_speedtests": 3,
        "max_devices_per_ip": 4,
        "min_streak_slots": 60,
        "rentals_require_online": True,
    },
}

# name: (base, tflops, rental)
MODELS = {
    "H100-80GB": (F("1.00"), F("989.4"), F("24")),
    "A100-80GB": (F("0.40"), F("312.0"), F("10")),
    "L40S": (F("0.35"), F("362.0"), F("8")),
    "RTX-4090": (F("0.20"), F("165.2"), F("5")),
    "RTX-3080-TI": (F("0.10"), F("136.0"), F("2.5")),
    "RTX-4070": (F("0.08"), F("58.3"), F("2")),
    "T4": (F("0.05"), F("65.0"), F("1.5")),
    "M2-MAC-MINI": (F("0.01"), F("3.6"), F("0.25")),
}

# (name, min_download, min_upload, max_latency, multiplier), best first.
TIERS = [
    ("gold", F("500"), F("250"), F("30"), F("1.10")),
    ("silver", F("100"), F("50"), F("60"), F("1.00")),
    ("bronze", F("25"), F("10"), F("120"), F("0.60")),
]


class Fatal(Exception):
    """The run cannot produce a result (the engine would fail)."""


class Bad(Exception):
    """A value is malformed (rejected row, or fatal in the registry)."""


# ---------------------------------------------------------------------------
# Exact rounding
# ---------------------------------------------------------------------------

MICRO = 10**6


def q6_units(x):
    """x (Fraction, >= 0 or not) rounded to 6 places, ties to even,
    returned as an integer number of millionths."""
    x = F(x) * MICRO
    n, d = x.numerator, x.denominator
    fl = n // d                      # floor
    rem = n - fl * d                 # 0 <= rem < d
    if rem * 2 > d or (rem * 2 == d and fl % 2 == 1):
        fl += 1
    return fl


def q6(x):
    return F(q6_units(x), MICRO)


def fmt6(units):
    """integer millionths (>= 0) -> 'I.FFFFFF'"""
    assert units >= 0
    return "%d.%06d" % (units // MICRO, units % MICRO)


# ---------------------------------------------------------------------------
# Value formats (SPEC 2.1)
# ---------------------------------------------------------------------------

# NB: [0-9] and [A-Za-z] explicitly: \d and \w would accept non-ASCII.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
DEC_RE = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,9}))?")
UNIX_RE = re.compile(r"[0-9]{1,11}")
RFC_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]"
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
EPOCH_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
UNIX_DAY0 = datetime.date(1970, 1, 1).toordinal()


def p_id(s):
    if ID_RE.fullmatch(s) is None:
        raise Bad("bad identifier %r" % s)
    return s


def p_dec(s):
    if DEC_RE.fullmatch(s) is None:
        raise Bad("bad decimal %r" % s)
    return F(s)  # exact; the regex guarantees plain notation


def p_ts(s):
    """-> integer Unix seconds (UTC), fraction floored."""
    if UNIX_RE.fullmatch(s):
        return int(s)
    m = RFC_RE.fullmatch(s)
    if m is None:
        raise Bad("bad timestamp %r" % s)
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= y <= 9999 and 0 <= h <= 23 and 0 <= mi <= 59 and 0 <= sec <= 59):
        raise Bad("bad timestamp %r" % s)
    try:
        days = datetime.date(y, mo, d).toordinal() - UNIX_DAY0  # checks month/day
    except ValueError:
        raise Bad("bad timestamp %r" % s)
    off = m.group(8)
    offset = 0
    if off not in ("Z", "z"):
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise Bad("bad timestamp %r" % s)
        offset = (oh * 3600 + om * 60) * (1 if off[0] == "+" else -1)
    # The fraction (group 7) is dropped: flooring to the whole second.
    # (Local time minus a positive offset; flooring before or after the
    # offset is the same since offsets are whole minutes.)
    return days * 86400 + h * 3600 + mi * 60 + sec - offset


def p_gpu_count(s):
    if re.fullmatch(r"[0-9]+", s) is None:
        raise Bad("bad gpu_count %r" % s)
    n = int(s)
    if not 1 <= n <= 64:
        raise Bad("gpu_count out of range %r" % s)
    return n


def p_ip(s):
    if "%" in s:
        raise Bad("zone id in ip %r" % s)
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        raise Bad("bad ip %r" % s)
    if a.version == 6 and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return str(a)  # canonical text


# ---------------------------------------------------------------------------
# CSV reading (SPEC 2.2)
# ---------------------------------------------------------------------------


def read_table(path, required):
    """Yield for each non-blank data record either a dict {name: text} of
    the required columns, or None when its field count differs from the
    header (malformed)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = None
        idx = None
        for rec in reader:
            if not rec:  # completely blank line
                continue
            if header is None:
                header = rec
                for name in required:
                    c = header.count(name)
                    if c == 0:
                        raise Fatal("%s: missing column %r" % (path, name))
                    if c > 1:
                        raise Fatal("%s: repeated column %r" % (path, name))
                idx = {name: header.index(name) for name in required}
                continue
            if len(rec) != len(header):
                yield None
                continue
            yield {name: rec[i] for name, i in idx.items()}
        if header is None:
            raise Fatal("%s: no header row" % path)


def table_path(epoch_dir, stem, required=True):
    csv_p = os.path.join(epoch_dir, stem + ".csv")
    pq_p = os.path.join(epoch_dir, stem + ".parquet")
    if os.path.exists(pq_p):
        raise Fatal("%s: Parquet is not supported by the oracle" % pq_p)
    if not os.path.exists(csv_p):
        if required:
            raise Fatal("missing table %s" % csv_p)
        return None
    return csv_p


def read_events(path, required, parse):
    """Valid parsed rows of an event table; rejected rows are dropped."""
    out = []
    rejected = 0
    for row in read_table(path, required):
        if row is None:
            rejected += 1
            continue
        try:
            out.append(parse(row))
        except Bad:
            rejected += 1
    return out, rejected


# ---------------------------------------------------------------------------
# Epoch
# ---------------------------------------------------------------------------


def read_epoch(epoch_dir):
    with open(os.path.join(epoch_dir, "epoch.toml"), "rb") as f:
        t = tomllib.load(f)
    for k in ("id", "start", "end", "pool", "decimals", "rules"):
        if k not in t:
            raise Fatal("epoch.toml: missing %s" % k)
    if not isinstance(t["id"], str) or EPOCH_ID_RE.fullmatch(t["id"]) is None:
        raise Fatal("epoch.toml: bad id")
    if not isinstance(t["rules"], str):
        raise Fatal("epoch.toml: rules must be a string")
    dec = t["decimals"]
    if type(dec) is not int or not 0 <= dec <= 18:
        raise Fatal("epoch.toml: bad decimals")
    if not isinstance(t["start"], str) or not isinstance(t["end"], str):
        raise Fatal("epoch.toml: start/end must be RFC 3339 strings")
    try:
        start, end = p_ts(t["start"]), p_ts(t["end"])
    except Bad as e:
        raise Fatal("epoch.toml: %s" % e)
    if end <= start or (end - start) % SLOT_SECONDS != 0:
        raise Fatal("epoch.toml: epoch is not a positive whole number of slots")
    pool = t["pool"]
    m = re.fullmatch(r"([0-9]+)(?:\.([0-9]+))?", pool) if isinstance(pool, str) else None
    if m is None or len(m.group(2) or "") > dec:
        raise Fatal("epoch.toml: bad pool %r" % (pool,))
    pool_units = F(pool) * 10**dec
    assert pool_units.denominator == 1
    pool_units = int(pool_units)
    if pool_units <= 0:
        raise Fatal("epoch.toml: pool must be > 0")
    return start, end, pool_units, t["rules"]


# ---------------------------------------------------------------------------
# Helpers for the model
# ---------------------------------------------------------------------------


def median(values):
    """Exact median of a non-empty list of Fractions."""
    v = sorted(values)
    n = len(v)
    if n % 2 == 1:
        return v[n // 2]
    return (v[n // 2 - 1] + v[n // 2]) / 2


def union_seconds(intervals):
    """Total length of the union of half-open integer intervals [a, b)."""
    total = 0
    cur_a = cur_b = None
    for a, b in sorted(intervals):
        if a >= b:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return total


def merge(intervals):
    """The union of half-open integer intervals [a, b) as a sorted list of
    disjoint, non-adjacent intervals."""
    out = []
    for a, b in sorted(intervals):
        if a >= b:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1][1] = b
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def intersection_seconds(xs, ys):
    """|union(xs) ∩ union(ys)| for half-open integer intervals."""
    xs, ys = merge(xs), merge(ys)
    total = 0
    i = j = 0
    while i < len(xs) and j < len(ys):
        a = max(xs[i][0], ys[j][0])
        b = min(xs[i][1], ys[j][1])
        if a < b:
            total += b - a
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return total


def slot_runs(slot_set):
    """Maximal runs of consecutive slot numbers, as (first, last) pairs."""
    runs = []
    for k in sorted(slot_set):
        if runs and k == runs[-1][1] + 1:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    return [(a, b) for a, b in runs]


# ---------------------------------------------------------------------------
# Main computation
# ---------------------------------------------------------------------------


def run(epoch_dir, rules_version=None):
    start, end, pool_units, epoch_rules = read_epoch(epoch_dir)
    if rules_version is None:
        rules_version = epoch_rules
    if rules_version not in RULES:
        raise Fatal("unknown rules version %r (the oracle knows %s)"
                    % (rules_version, ", ".join(sorted(RULES))))
    rules = RULES[rules_version]
    MIN_SPEEDTESTS = rules["min_speedtests"]
    MAX_DEVICES_PER_IP = rules["max_devices_per_ip"]
    MIN_STREAK_SLOTS = rules["min_streak_slots"]
    RENTALS_REQUIRE_ONLINE = rules["rentals_require_online"]
    total_slots = (end - start) // SLOT_SECONDS

    # --- registry: any problem is fatal
    devices = {}
    dev_cols = ["device_id", "account_id", "gpu_model", "gpu_count",
                "hardware_id", "ip", "registered_at"]
    for row in read_table(table_path(epoch_dir, "devices"), dev_cols):
        if row is None:
            raise Fatal("devices.csv: wrong field count")
        try:
            d = {
                "device_id": p_id(row["device_id"]),
                "account_id": p_id(row["account_id"]),
                "gpu_model": p_id(row["gpu_model"]),
                "gpu_count": p_gpu_count(row["gpu_count"]),
                "hardware_id": p_id(row["hardware_id"]),
                "ip": p_ip(row["ip"]),
                "registered_at": p_ts(row["registered_at"]),
            }
        except Bad as e:
            raise Fatal("devices.csv: %s" % e)
        if d["device_id"] in devices:
            raise Fatal("devices.csv: repeated device_id %r" % d["device_id"])
        devices[d["device_id"]] = d

    def known(s):
        p_id(s)
        if s not in devices:
            raise Bad("unknown device %r" % s)
        return s

    # --- event tables: bad rows are rejected (dropped)
    def parse_hb(r):
        return known(r["device_id"]), p_ts(r["ts"])

    def parse_st(r):
        return (known(r["device_id"]), p_ts(r["ts"]), p_dec(r["download_mbps"]),
                p_dec(r["upload_mbps"]), p_dec(r["latency_ms"]))

    def parse_bm(r):
        return (known(r["device_id"]), p_ts(r["ts"]), p_id(r["gpu_model"]),
                p_id(r["hardware_id"]), p_dec(r["tflops"]))

    def parse_rt(r):
        p_id(r["rental_id"])
        dev = known(r["device_id"])
        renter = p_id(r["renter_account_id"])
        a, b = p_ts(r["start"]), p_ts(r["end"])
        if b <= a:
            raise Bad("rental end <= start")
        return dev, renter, a, b

    def parse_ov(r):
        dev = known(r["device_id"])
        if r["action"] not in ("reinstate", "exclude"):
            raise Bad("bad action %r" % r["action"])
        return dev, r["action"], p_id(r["ticket"])  # note: free text

    hbs, _ = read_events(table_path(epoch_dir, "heartbeats"), ["device_id", "ts"], parse_hb)
    sts, _ = read_events(table_path(epoch_dir, "speedtests"),
                         ["device_id", "ts", "download_mbps", "upload_mbps", "latency_ms"],
                         parse_st)
    bms, _ = read_events(table_path(epoch_dir, "benchmarks"),
                         ["device_id", "ts", "gpu_model", "hardware_id", "tflops"], parse_bm)
    rts, _ = read_events(table_path(epoch_dir, "rentals"),
                         ["rental_id", "device_id", "renter_account_id", "start", "end"],
                         parse_rt)
    ov_path = table_path(epoch_dir, "overrides", required=False)
    ovs = []
    if ov_path is not None:
        ovs, _ = read_events(ov_path, ["device_id", "action", "ticket", "note"], parse_ov)
    overrides = {}
    for dev, action, ticket in ovs:
        if dev in overrides:
            raise Fatal("overrides.csv: two overrides for device %r" % dev)
        overrides[dev] = (action, ticket)

    def in_epoch(ts):
        return start <= ts < end

    # --- group events per device
    slots = {k: set() for k in devices}
    for dev, ts in hbs:
        if in_epoch(ts) and ts >= devices[dev]["registered_at"]:
            slots[dev].add((ts - start) // SLOT_SECONDS)
    st_by = {k: [] for k in devices}
    for dev, ts, dl, ul, lat in sts:
        if in_epoch(ts):
            st_by[dev].append((dl, ul, lat))
    bm_by = {k: [] for k in devices}
    for dev, ts, model, hw, tf in bms:
        if in_epoch(ts):
            bm_by[dev].append((model, hw, tf))
    rent_by = {k: [] for k in devices}
    self_by = {k: [] for k in devices}
    for dev, renter, a, b in rts:
        a, b = max(a, start), min(b, end)  # clip to the epoch
        if a >= b:
            continue
        if renter == devices[dev]["account_id"]:
            self_by[dev].append((a, b))
        else:
            rent_by[dev].append((a, b))

    # --- registry-only rules: DUPLICATE_HARDWARE and IP_CAP
    def order_key(d):
        return (d["registered_at"], d["device_id"])

    before_end = sorted((d for d in devices.values() if d["registered_at"] < end),
                        key=order_key)

    def duplicate_hardware(d):
        return any(o["hardware_id"] == d["hardware_id"] and o["device_id"] != d["device_id"]
                   and order_key(o) < order_key(d) for o in before_end)

    def ip_cap(d):
        sharing = [o for o in before_end if o["ip"] == d["ip"]]  # includes d if before end
        if len(sharing) <= MAX_DEVICES_PER_IP:
            return False
        first = {o["device_id"] for o in sharing[:MAX_DEVICES_PER_IP]}
        return d["device_id"] not in first

    # --- per device
    results = {}
    for dev_id in sorted(devices):
        d = devices[dev_id]
        reasons = set()  # exclusion reasons
        notes = set()
        model = MODELS.get(d["gpu_model"])
        base, ref_tflops, rental_rate = model if model else (F(0), F(0), F(0))

        online = len(slots[dev_id])
        runs = slot_runs(slots[dev_id])
        longest_streak = max((b - a + 1 for a, b in runs), default=0)

        tests = st_by[dev_id]
        multiplier = F(0)
        if len(tests) < MIN_SPEEDTESTS:
            notes.add("INSUFFICIENT_SPEEDTESTS")
        else:
            md = median([t[0] for t in tests])
            mu = median([t[1] for t in tests])
            ml = median([t[2] for t in tests])
            for _name, min_dl, min_ul, max_lat, mult in sorted(TIERS, key=lambda t: -t[4]):
                if md >= min_dl and mu >= min_ul and ml <= max_lat:
                    multiplier = mult
                    break
            else:
                notes.add("LOW_BANDWIDTH")

        bench = bm_by[dev_id]
        perf_ratio = None
        if bench and model is not None:
            perf_ratio = q6(median([b[2] for b in bench]) / ref_tflops)
        perf_factor = min(perf_ratio, F(1)) if perf_ratio is not None else F(1)

        if RENTALS_REQUIRE_ONLINE:
            # SPEC 8: a rented second counts only inside an online slot k,
            # which covers [start + k*300, start + (k+1)*300).
            online_iv = [(start + a * SLOT_SECONDS, start + (b + 1) * SLOT_SECONDS)
                         for a, b in runs]
            rental_seconds = intersection_seconds(rent_by[dev_id], online_iv)
        else:
            rental_seconds = union_seconds(rent_by[dev_id])
        if union_seconds(self_by[dev_id]) > 0:
            notes.add("SELF_RENTAL")

        if d["registered_at"] >= end:
            reasons.add("REGISTERED_AFTER_EPOCH")
        if model is None:
            reasons.add("UNKNOWN_GPU_MODEL")
        if duplicate_hardware(d):
            reasons.add("DUPLICATE_HARDWARE")
        if ip_cap(d):
            reasons.add("IP_CAP")
        if not bench:
            reasons.add("NO_BENCHMARK")
        if any(b[0] != d["gpu_model"] for b in bench):
            reasons.add("MODEL_MISMATCH")
        if any(b[1] != d["hardware_id"] for b in bench):
            reasons.add("HARDWARE_MISMATCH")
        if perf_ratio is not None and perf_ratio > MAX_PERF_RATIO:
            reasons.add("IMPOSSIBLE_BENCHMARK")
        if perf_ratio is not None and perf_ratio < MIN_PERF_RATIO:
            reasons.add("SUSPECTED_VIRTUAL_GPU")
        if online < MIN_UPTIME * total_slots:
            reasons.add("LOW_UPTIME")
        if MIN_STREAK_SLOTS > 0 and longest_streak < MIN_STREAK_SLOTS:
            reasons.add("SHORT_STREAK")

        eligible = not reasons
        codes = reasons | notes
        if dev_id in overrides:
            action, ticket = overrides[dev_id]
            if action == "reinstate":
                eligible = True
                codes.add("REINSTATED:" + ticket)
            else:
                eligible = False
                codes.add("MANUAL_EXCLUSION:" + ticket)

        points = 0  # millionths
        if eligible:
            gc = d["gpu_count"]
            uptime_pts = q6_units(base * gc * online * multiplier * perf_factor)
            rental_pts = q6_units(F(rental_seconds) * rental_rate * gc / 3600)
            points = uptime_pts + rental_pts

        results[dev_id] = {
            "online_slots": online,
            "points": points,
            "eligible": eligible,
            "reasons": ";".join(sorted(codes)),
            "account_id": d["account_id"],
        }

    # --- accounts and the split (SPEC 3.3, 4)
    acct_points = {}
    for r in results.values():
        acct_points[r["account_id"]] = acct_points.get(r["account_id"], 0) + r["points"]
    T = sum(acct_points.values())
    units = {a: 0 for a in acct_points}
    if T > 0:
        rems = {}
        for a, P in acct_points.items():
            units[a], rems[a] = divmod(pool_units * P, T)
        leftover = pool_units - sum(units.values())
        order = sorted(acct_points, key=lambda a: (-rems[a], a))
        for a in order[:leftover]:
            units[a] += 1
        assert sum(units.values()) == pool_units
    return results, acct_points, units


def main(argv):
    ap = argparse.ArgumentParser(
        prog="oracle.py",
        description="Independent reference implementation of the tally SPEC.")
    ap.add_argument("epoch_dir", metavar="EPOCH_DIR")
    ap.add_argument("out_dir", metavar="OUT_DIR")
    ap.add_argument("--rules-version", choices=sorted(RULES), default=None,
                    help="rules version to apply (default: epoch.toml's `rules`)")
    args = ap.parse_args(argv[1:])  # bad usage: exit status 2
    epoch_dir, out_dir = args.epoch_dir, args.out_dir
    try:
        results, acct_points, units = run(epoch_dir, args.rules_version)
    except (Fatal, OSError, UnicodeDecodeError, csv.Error, tomllib.TOMLDecodeError) as e:
        print("oracle: error: %s" % e, file=sys.stderr)
        return 2
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "oracle_devices.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["device_id", "online_slots", "points", "eligible", "reasons"])
        for dev_id in sorted(results):
            r = results[dev_id]
            w.writerow([dev_id, r["online_slots"], fmt6(r["points"]),
                        "true" if r["eligible"] else "false", r["reasons"]])
    with open(os.path.join(out_dir, "oracle_accounts.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["account_id", "points", "token_units"])
        for a in sorted(acct_points):
            w.writerow([a, fmt6(acct_points[a]), units[a]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
