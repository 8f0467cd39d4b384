#!/usr/bin/env python3
"""Deterministic synthetic epoch generator for tally (SPEC section 2, rules v1).

Usage:
    python3 tests/tools/gen_epoch.py --out DIR --devices N --hours H --seed S
        [--start 2024-03-01T00:00:00Z] [--heartbeat-seconds 60] [--rejects R]
        [--pool 32000000] [--decimals 8] [--no-reject-cap] [--truth FILE]

Writes DIR/epoch.toml and DIR/{devices,heartbeats,speedtests,benchmarks,
rentals,overrides}.csv with exactly the SPEC 2.2 columns (LF line ends, header
row). Event rows are written in a seeded shuffled order.

Determinism: every random choice comes from one random.Random(seed), consumed
in a fixed program order. No global random, no clock, no hash() of strings,
no iteration over sets, no libm functions (log/exp/...) whose last bit may
differ between platforms, and no floating point in any written value (values
are integers in hundredths/tenths, or exact decimal.Decimal). The same
arguments give byte-identical files on any machine with Python 3.11.

Anomalies (see the --truth file for the device ids of every planted case)
are planted at a few percent each; with --devices >= 100 every kind is
present at least once. --rejects R adds about R malformed rows per event
table (not overrides.csv: two rows, any reject there fails the run), capped
so that rejected rows stay within the engine's 0.1% per-table limit unless
--no-reject-cap is given.

The v1 constants below are copied from rules/v1.toml (published, immutable).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import ipaddress
import json
import os
import random
import re
import sys
import time
from decimal import Decimal

# ---------------------------------------------------------------- rules v1
SLOT = 300
MAX_PER_IP = 8
# reference tflops per GPU, exact decimal strings (rules/v1.toml)
MODELS = {
    "H100-80GB": "989.4",
    "A100-80GB": "312.0",
    "L40S": "362.0",
    "RTX-4090": "165.2",
    "RTX-3080-TI": "136.0",
    "RTX-4070": "58.3",
    "T4": "65.0",
    "M2-MAC-MINI": "3.6",
}
REF_TENTHS = {m: int(Decimal(v) * 10) for m, v in MODELS.items()}
MODEL_NAMES = ["RTX-4090", "RTX-3080-TI", "T4", "RTX-4070", "A100-80GB", "L40S",
               "H100-80GB", "M2-MAC-MINI"]
MODEL_WEIGHTS = [26, 20, 17, 10, 7, 6, 4, 3]
GPU_COUNTS = {  # model -> (counts, weights)
    "H100-80GB": ([1, 2, 4, 8], [35, 15, 20, 30]),
    "A100-80GB": ([1, 2, 4, 8], [40, 15, 20, 25]),
    "L40S": ([1, 2, 4, 8], [60, 20, 15, 5]),
    "T4": ([1, 2, 4, 8], [72, 14, 10, 4]),
    "M2-MAC-MINI": ([1], [1]),
}
CONSUMER_COUNTS = ([1, 2, 4, 8], [86, 9, 4, 1])
UNKNOWN_MODELS = ["RTX-9999", "RTX-5090", "B200-192GB", "MI300X"]
# tier thresholds in hundredths: (download >=, upload >=, latency <=)
TIERS = [(50000, 25000, 3000), (10000, 5000, 6000), (2500, 1000, 12000)]

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
SERIAL = "0123456789ABCDEFGHJKLMNPQRSTVWXYZ"
IPV4_FIRST = [24, 31, 37, 45, 46, 62, 73, 77, 78, 79, 81, 82, 84, 86, 88, 91, 93,
              95, 98, 99, 104, 107, 109, 134, 141, 151, 176, 178, 185, 188, 193,
              195, 203, 212, 213, 217]
IPV6_PREFIX = [0x2a01, 0x2a02, 0x2600, 0x2605, 0x2400, 0x2c0f, 0x2a0e]
# legal offsets, minutes (RFC 3339 allows up to 23:59)
OFFSETS = [120, -300, 330, 540, 60, -420, 0, -210, 345, 840, -720, 1439, -1439, 600, 480]

HDR = {
    "devices": "device_id,account_id,gpu_model,gpu_count,hardware_id,ip,registered_at",
    "heartbeats": "device_id,ts",
    "speedtests": "device_id,ts,download_mbps,upload_mbps,latency_ms",
    "benchmarks": "device_id,ts,gpu_model,hardware_id,tflops",
    "rentals": "rental_id,device_id,renter_account_id,start,end",
    "overrides": "device_id,action,ticket,note",
}
EVENT_TABLES = ["heartbeats", "speedtests", "benchmarks", "rentals"]

HMS = ["%02d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) for s in range(86400)]
HMSZ = [x + "Z" for x in HMS]


def civil(z: int) -> tuple[int, int, int]:
    """Days since 1970-01-01 -> (y, m, d), proleptic Gregorian (Hinnant)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


_DAY_CACHE: dict[int, str] = {}


def day_str(dn: int) -> str:
    s = _DAY_CACHE.get(dn)
    if s is None:
        y, m, d = civil(dn)
        s = _DAY_CACHE[dn] = "%04d-%02d-%02d" % (y, m, d)
    return s


def canon(t: int) -> str:
    q, r = divmod(t, 86400)
    return day_str(q) + "T" + HMSZ[r]


def with_offset(t: int, off_min: int, frac: str = "", tee: str = "T") -> str:
    q, r = divmod(t + off_min * 60, 86400)
    sign = "+" if off_min >= 0 else "-"
    h, m = divmod(abs(off_min), 60)
    return "%s%s%s%s%s%02d:%02d" % (day_str(q), tee, HMS[r], frac, sign, h, m)


def dec(v: int, places: int = 2) -> str:
    """Integer v in 10^-places units -> plain decimal text."""
    q, r = divmod(v, 10 ** places)
    return "%d.%0*d" % (q, places, r)


def dstr(x: Decimal) -> str:
    return format(x, "f")


class Dev:
    def __init__(self, did, account, model, count, hw, ip, reg, group):
        self.id = did
        self.account = account
        self.model = model
        self.count = count
        self.hw = hw
        self.ip = ip            # text as written
        self.reg = reg          # int unix seconds (floor)
        self.reg_text = None
        self.group = group      # regular / farm / ipv6 / mapped / exact8 / ipcap
        self.pattern = "always"
        self.tz = 0
        self.on_hour = 8
        self.on_len = 10 * 3600
        self.conn = "silver"
        self.n_speed = 4
        self.n_bench = 2
        self.ratio = 950000     # ppm of reference
        self.margin = (0, 0)
        self.hb_before_reg = False
        self.hb_plan = None     # explicit heartbeat list [(t, text)] instead of a pattern
        self.speed_exact = None  # (targets) for exact-median devices
        self.bench_plan = None  # [(in_epoch, model, hw, tflops_text)]
        self.self_rent = False
        self.rent_plan = None   # extra planted rentals
        self.clean = False


class Gen:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.S = a.start_unix
        self.E = self.S + a.hours * 3600
        self.T = (self.E - self.S) // SLOT
        self.N = a.devices
        self.big = self.N >= 100
        self.used: set[str] = set()     # membership only, never iterated
        self.used_ip: set[str] = set()
        self.devices: list[Dev] = []
        self.accounts: list[str] = []
        self.renters: list[str] = []
        self.pool: list[Dev] = []
        self.planted: dict[str, list] = {}
        self.notes: dict[str, str] = {}
        self.overrides: list[tuple] = []
        self.rows: dict[str, list[str]] = {}
        self.reject_info: list[dict] = []
        self.rental_seq = 100000 + self.rng.randrange(800000)
        # rejects draw from their own stream (str seeds are hashed with SHA-512 by
        # random, not with hash()), so --rejects never changes the valid rows
        self.rrng = random.Random("tally-gen-rejects:%d" % a.seed)
        self.reject_seq = 9000000

    # ------------------------------------------------------------ helpers
    def rate(self, permille: int, minimum: int = 1) -> int:
        n = (permille * self.N + 500) // 1000
        return max(n, minimum if self.big else 0)

    def plant(self, name, item, note=None):
        self.planted.setdefault(name, []).append(item)
        if note and name not in self.notes:
            self.notes[name] = note

    def fresh(self, s):
        if s in self.used:
            return None
        self.used.add(s)
        return s

    def pubkey(self):
        rng = self.rng
        while True:
            s = self.fresh("".join(rng.choices(B58, k=44 if rng.random() < 0.8 else 43)))
            if s:
                return s

    def device_id(self):
        rng = self.rng
        while True:
            r = rng.random()
            if r < 0.7:
                s = "dev-%012x" % rng.getrandbits(48)
            elif r < 0.85:
                s = "node-" + "".join(rng.choices(B58, k=10))
            else:
                s = "".join(rng.choices(B58, k=44))
            s = self.fresh(s)
            if s:
                return s

    def hardware_id(self, model):
        rng = self.rng
        while True:
            if model == "M2-MAC-MINI":
                s = "C02" + "".join(rng.choices(SERIAL, k=9))
            else:
                s = "GPU-%08x-%04x-%04x-%04x-%012x" % (
                    rng.getrandbits(32), rng.getrandbits(16), 0x4000 | rng.getrandbits(12),
                    0x8000 | rng.getrandbits(14), rng.getrandbits(48))
            s = self.fresh(s)
            if s:
                return s

    def ipv4(self):
        rng = self.rng
        while True:
            s = "%d.%d.%d.%d" % (rng.choice(IPV4_FIRST), rng.randrange(256),
                                 rng.randrange(256), rng.randrange(1, 255))
            if s not in self.used_ip:
                self.used_ip.add(s)
                return s

    def ipv6(self):
        rng = self.rng
        while True:
            v = (rng.choice(IPV6_PREFIX) << 112) | (rng.getrandbits(48) << 64)
            v |= rng.getrandbits(64) if rng.random() < 0.5 else rng.randrange(1, 300)
            a = ipaddress.IPv6Address(v)
            key = str(a)
            if key in self.used_ip:
                continue
            self.used_ip.add(key)
            return a.exploded if rng.random() < 0.15 else key

    def ip(self):
        return self.ipv6() if self.rng.random() < 0.10 else self.ipv4()

    def gpu_count(self, model):
        counts, w = GPU_COUNTS.get(model, CONSUMER_COUNTS)
        return self.rng.choices(counts, w)[0]

    def model(self):
        return self.rng.choices(MODEL_NAMES, MODEL_WEIGHTS)[0]

    def ts_var(self, t: int) -> str:
        """A random legal non-canonical form of the instant t (floors to t)."""
        rnd = self.rng.random
        r = rnd()
        if r < 0.28:
            return str(t)
        if r < 0.46:
            q, s = divmod(t, 86400)
            tee, zed = self.rng.choice((("t", "Z"), ("T", "z"), ("t", "z")))
            return day_str(q) + tee + HMS[s] + zed
        if r < 0.72:
            return with_offset(t, self.rng.choice(OFFSETS))
        frac = "." + "%0*d" % ((n := 1 + self.rng.randrange(9)), self.rng.randrange(10 ** n))
        if r < 0.90:
            q, s = divmod(t, 86400)
            return day_str(q) + "T" + HMS[s] + frac + ("Z" if rnd() < 0.8 else "z")
        return with_offset(t, self.rng.choice(OFFSETS), frac, "T" if rnd() < 0.7 else "t")

    def ts(self, t: int, p_var: float) -> str:
        return self.ts_var(t) if self.rng.random() < p_var else canon(t)

    # ------------------------------------------------------------ registry
    def new_dev(self, account, group, model=None, ip=None, reg=None, count=None):
        m = model or self.model()
        d = Dev(self.device_id(), account, m, count or self.gpu_count(m),
                self.hardware_id(m), ip or self.ip(), 0, group)
        rng = self.rng
        rnd = rng.random
        if reg is None:
            if rnd() < 0.91:
                reg = self.S - 3600 - int(rnd() * rnd() * 200 * 86400)
            else:
                reg = self.S + rng.randrange(self.E - self.S)
        d.reg = reg
        r = rnd()
        d.pattern = "always" if r < 0.45 else "diurnal" if r < 0.70 else "bursty" if r < 0.92 else "rare"
        d.tz = rng.randrange(-8, 10) * 3600
        d.on_hour = 6 + rng.randrange(5)
        d.on_len = (7 + rng.randrange(9)) * 3600 + rng.randrange(3600)
        r = rnd()
        d.conn = ("gold" if r < 0.22 else "silver" if r < 0.62 else "bronze" if r < 0.80
                  else "poor" if r < 0.86 else "threshold")
        d.n_speed = rng.choices([0, 1, 2, 3, 4, 5, 6], [2, 4, 14, 24, 24, 17, 15])[0]
        if d.conn == "threshold" and d.n_speed < 2:
            d.n_speed = 2 + rng.randrange(5)
        d.n_bench = rng.choices([1, 2, 3, 4], [25, 30, 30, 15])[0]
        r = rnd()
        d.ratio = (rng.randrange(850000, 1050001) if r < 0.85 else
                   rng.randrange(700000, 850000) if r < 0.93 else rng.randrange(1050001, 1120001))
        if rnd() < 0.05:
            before = rng.randrange(600, 3 * 3600)
            d.margin = (before if reg <= self.S - before else 0, rng.randrange(600, 3 * 3600))
        if self.S <= reg < self.E and rnd() < 0.25:
            d.hb_before_reg = True
        self.devices.append(d)
        return d

    def new_account(self):
        a = self.pubkey()
        self.accounts.append(a)
        return a

    def build_registry(self):
        rng, S, E, N = self.rng, self.S, self.E, self.N
        n_left = N
        if self.big:
            # -- virtual-GPU farm: one account, many devices, one shared IP
            F = min(max(9, self.rate(30)), n_left)
            acc = self.new_account()
            ip_main, ip_side = self.ipv4(), self.ipv4()
            on_main = max(9, (F * 8 + 5) // 10)
            burst = S - rng.randrange(86400, 20 * 86400)
            farm_model = rng.choice(["RTX-4090", "A100-80GB"])
            for i in range(F):
                reg = burst + rng.randrange(36 * 3600) if rng.random() < 0.8 else \
                    S + rng.randrange((E - S) // 2)
                d = self.new_dev(acc, "farm", farm_model, ip_main if i < on_main else ip_side, reg, 1)
                d.pattern, d.conn, d.margin, d.hb_before_reg = "always", "gold", (0, 0), False
                d.n_speed = 3 + rng.randrange(3)
                d.n_bench = 1 + rng.randrange(4)
                d.ratio = rng.randrange(80000, 450000)
                self.plant("virtual_gpu_farm", d.id)
            farm = [d for d in self.devices if d.group == "farm"]
            farm[1].reg = farm[0].reg  # same registered_at: device_id order decides
            self.notes["virtual_gpu_farm"] = (
                "one account %s, tflops ratio 0.08-0.45 (SUSPECTED_VIRTUAL_GPU); %d devices on %s "
                "(IP_CAP beyond the first 8 by registered_at, device_id); two share registered_at"
                % (acc, on_main, ip_main))
            self.farm_devs = farm
            n_left -= F

            # -- IPv6 address written three ways, 10 devices, no single form > 8
            acc = self.new_account()
            forms = ["2001:db8::1"] * 4 + ["2001:DB8:0::1"] * 4 + \
                    ["2001:0db8:0000:0000:0000:0000:0000:0001"] * 2
            rng.shuffle(forms)
            for f in forms:
                reg = S - rng.randrange(3600, 60 * 86400) if rng.random() < 0.8 else \
                    S + rng.randrange(E - S)
                d = self.new_dev(acc, "ipv6", rng.choice(["L40S", "A100-80GB", "H100-80GB"]), f, reg)
                d.pattern, d.conn, d.margin = "always", "gold", (0, 0)
                self.plant("ip_cap_ipv6_two_forms", d.id)
            self.notes["ip_cap_ipv6_two_forms"] = (
                "10 devices of one account on 2001:db8::1 written as 2001:db8::1 / 2001:DB8:0::1 / "
                "fully expanded: IP_CAP for the last 2 by (registered_at, device_id)")
            n_left -= 10

            # -- IPv4-mapped IPv6 vs IPv4, 9 devices of 3 accounts (a shared NAT)
            forms = ["10.0.0.1"] * 5 + ["::ffff:10.0.0.1"] * 2 + ["::FFFF:10.0.0.1", "::ffff:a00:1"]
            rng.shuffle(forms)
            accs = [self.new_account() for _ in range(3)]
            for i, f in enumerate(forms):
                d = self.new_dev(accs[0 if i < 4 else 1 if i < 7 else 2], "mapped",
                                 rng.choice(["RTX-4090", "RTX-3080-TI"]), f,
                                 S - rng.randrange(3600, 90 * 86400))
                d.pattern, d.margin = "always", (0, 0)
                self.plant("ip_cap_ipv4_mapped", d.id)
            self.notes["ip_cap_ipv4_mapped"] = (
                "9 devices of 3 accounts on 10.0.0.1 written as 10.0.0.1 / ::ffff:10.0.0.1 / "
                "::FFFF:10.0.0.1 / ::ffff:a00:1: IP_CAP for the last one")
            self.used_ip.add("10.0.0.1")
            n_left -= 9

            # -- exactly 8 devices on one IP: at the cap, not over it
            acc = self.new_account()
            ip8 = self.ipv4()
            for _ in range(8):
                d = self.new_dev(acc, "exact8", None, ip8, S - rng.randrange(3600, 90 * 86400))
                d.margin = (0, 0)
                self.plant("ip_exactly_8", d.id)
            self.notes["ip_exactly_8"] = "8 devices on %s: at max_devices_per_ip, no IP_CAP" % ip8
            n_left -= 8

            # -- more plain >8 groups on larger runs
            for _ in range(N // 1000):
                acc = self.new_account()
                ipg = self.ipv4()
                for _ in range(9 + rng.randrange(6)):
                    d = self.new_dev(acc, "ipcap", None, ipg)
                    self.plant("ip_cap_plain", d.id)
                    n_left -= 1

        # -- ordinary accounts: most own 1-3 devices, a few own dozens
        sizes = []
        left = n_left
        if self.big and left > 0:
            sizes.append(min(left, rng.randrange(20, 41)))
            left -= sizes[-1]
        while left > 0:
            r = rng.random()
            s = (1 if r < 0.52 else 2 if r < 0.74 else 3 if r < 0.84 else rng.randrange(4, 8)
                 if r < 0.93 else rng.randrange(8, 16) if r < 0.98 else rng.randrange(16, 61))
            s = min(s, left)
            sizes.append(s)
            left -= s
        for s in sizes:
            acc = self.new_account()
            acc_model = self.model()
            if s <= 7 and rng.random() < 0.75:
                ips = [self.ip()]
            else:
                per = rng.randrange(3, 8)
                ips = [self.ip() for _ in range(-(-s // per))]
            for i in range(s):
                m = acc_model if rng.random() < 0.6 else None
                d = self.new_dev(acc, "regular", m, ips[i % len(ips)])
                if s >= 16:
                    d.pattern = "always" if rng.random() < 0.8 else d.pattern
                    d.conn = rng.choice(["gold", "gold", "silver"]) if d.conn != "threshold" else d.conn
        self.renters = self.accounts + [self.pubkey() for _ in range(max(3, N // 5))]
        self.pool = [d for d in self.devices if d.group == "regular" and d.reg < S]
        rng.shuffle(self.pool)

    # ------------------------------------------------------------ anomalies
    def take(self, clean=False, model=None):
        if not self.pool:
            return None
        d = self.pool.pop()
        if model and model != d.model:
            if (model == "M2-MAC-MINI") != (d.model == "M2-MAC-MINI"):
                d.hw = self.hardware_id(model)
            d.model = model
            d.count = self.gpu_count(model) if model in MODELS else d.count
        if clean:
            d.clean = True
            d.pattern, d.margin, d.hb_before_reg = "always", (0, 0), False
            d.conn = self.rng.choice(["gold", "silver"])
            d.n_speed = 3 + self.rng.randrange(4)
            d.ratio = self.rng.randrange(880000, 1030001)
        return d

    def bench_at(self, d, ratio: Decimal, n=1):
        return [(True, d.model, d.hw, dstr(Decimal(MODELS[d.model]) * ratio))] * n

    def plant_anomalies(self):
        rng, S, E, T = self.rng, self.S, self.E, self.T
        ref = lambda d: Decimal(MODELS[d.model])

        # overrides: reinstate an excluded (no benchmark) device
        for i in range(self.rate(15)):
            d = self.take(clean=(i == 0))
            if not d:
                break
            d.bench_plan = []
            self.plant("no_benchmark", d.id)
            if i == 0:
                self.overrides.append((d.id, "reinstate",
                                       "Benchmark upload lost by client 2.3.1, re-run on support call"))
        self.notes["no_benchmark"] = "no benchmark rows at all (NO_BENCHMARK); the first is clean and reinstated"
        if d := self.take():
            d.bench_plan = [(False, d.model, d.hw, dec(REF_TENTHS[d.model] * 10 * 96 // 100))]
            self.plant("benchmark_only_outside_epoch", d.id,
                       "its only benchmark is before start: NO_BENCHMARK")

        for i in range(self.rate(10)):
            m = UNKNOWN_MODELS[0] if i == 0 else rng.choice(UNKNOWN_MODELS)
            d = self.take(clean=(i == 0))
            if not d:
                break
            if d.model == "M2-MAC-MINI":
                d.hw = self.hardware_id(m)
            d.model = m
            d.bench_plan = [(True, m, d.hw, dec(rng.randrange(15000, 60000)))
                            for _ in range(1 + rng.randrange(3))]
            self.plant("unknown_gpu_model", d.id)
            if i == 0:
                self.overrides.append((d.id, "reinstate",
                                       "New card model, pending rules v2; reinstated at 0 base points"))
        self.notes["unknown_gpu_model"] = "gpu_model not in v1 (RTX-9999 first): UNKNOWN_GPU_MODEL; first reinstated"

        if d := self.take(clean=True):
            self.overrides.append((d.id, "exclude",
                                   'Owner reported the machine stolen; "rentals" were fraudulent, see thread'))
            self.plant("override_exclude_eligible", d.id, "clean eligible device excluded by override")

        for i in range(self.rate(5, 2)):
            d = self.take()
            if not d:
                break
            if i == 0:
                d.reg = E
                d.reg_text = with_offset(E, -300)  # lexically earlier than end, same instant
            else:
                d.reg = E + rng.randrange(3600, 10 * 86400)
            self.plant("registered_after_epoch", d.id)
        self.notes["registered_after_epoch"] = (
            "REGISTERED_AFTER_EPOCH; the first is registered exactly at end, written with -05:00 "
            "(its heartbeats are all before registered_at)")

        # benchmarks
        for _ in range(self.rate(15)):
            if d := self.take():
                d.bench_plan = [(True, d.model, d.hw, dec(REF_TENTHS[d.model] * rng.randrange(1200, 2600) // 100))
                                for _ in range(1 + rng.randrange(3))]
                self.plant("impossible_benchmark", d.id, "tflops ratio 1.2-2.6: IMPOSSIBLE_BENCHMARK")
        if d := self.take(clean=True):
            r = ref(d)
            d.bench_plan = [(True, d.model, d.hw, dstr(r * Decimal(x))) for x in ("1.10", "1.15", "1.19")]
            self.plant("perf_ratio_exactly_1.15", d.id,
                       "median tflops = 1.15 * ref exactly: perf_ratio 1.150000, NOT impossible")
        if d := self.take(clean=True):
            d.bench_plan = self.bench_at(d, Decimal("1.1500005"))
            self.plant("perf_ratio_tie_1.1500005", d.id,
                       "ratio exactly 1.1500005: q6 ties-to-even gives 1.150000, NOT impossible "
                       "(half-up rounding would wrongly give 1.150001)")
        if d := self.take(clean=True):
            d.bench_plan = self.bench_at(d, Decimal("1.1500006"))
            self.plant("perf_ratio_1.150001", d.id, "ratio 1.1500006 -> 1.150001: IMPOSSIBLE_BENCHMARK")
        if d := self.take(clean=True):
            d.bench_plan = self.bench_at(d, Decimal("0.5"), 2)
            self.plant("perf_ratio_exactly_0.5", d.id,
                       "ratio exactly 0.500000: NOT suspected virtual; perf_factor 0.5")
        if d := self.take(clean=True):
            d.bench_plan = self.bench_at(d, Decimal("0.9876545"))
            self.plant("perf_ratio_tie_0.9876545", d.id,
                       "ratio 0.9876545: q6 ties-to-even -> 0.987654 (perf_factor), half-up gives 0.987655")
        if d := self.take(clean=True):
            r = ref(d)
            d.bench_plan = [(True, d.model, d.hw, dstr(r * Decimal(x))) for x in ("0.93", "0.97")]
            self.plant("perf_ratio_even_median", d.id, "two benchmarks 0.93/0.97 of ref: median = mean = 0.95")

        others = lambda m: [x for x in MODEL_NAMES if x != m]
        for _ in range(self.rate(10)):
            if d := self.take():
                om = rng.choice(others(d.model))
                d.bench_plan = self.default_bench(d) + [
                    (True, om, d.hw, dec(REF_TENTHS[om] * 10 * rng.randrange(88, 101) // 100))]
                self.plant("model_mismatch", d.id, "one in-epoch benchmark reports another gpu_model: MODEL_MISMATCH")
        if d := self.take(clean=True):
            om = rng.choice(others(d.model))
            d.bench_plan = self.default_bench(d) + [
                (False, om, d.hw, dec(REF_TENTHS[om] * 10 * 95 // 100))]
            self.plant("model_mismatch_outside_epoch", d.id,
                       "mismatching benchmark is outside the epoch: NOT MODEL_MISMATCH")
        for _ in range(self.rate(10)):
            if d := self.take():
                d.bench_plan = self.default_bench(d) + [
                    (True, d.model, self.hardware_id(d.model), dec(REF_TENTHS[d.model] * 10 * rng.randrange(90, 101) // 100))]
                self.plant("hardware_mismatch", d.id, "one in-epoch benchmark reports another hardware_id: HARDWARE_MISMATCH")
        if d := self.take(model=rng.choice(["RTX-4090", "T4", "A100-80GB"])):
            while d.hw.upper() == d.hw:
                d.hw = self.hardware_id(d.model)
            self.used.add(d.hw.upper())
            d.bench_plan = self.default_bench(d) + [
                (True, d.model, d.hw.upper(), dec(REF_TENTHS[d.model] * 10 * 97 // 100))]
            self.plant("hardware_mismatch_case_only", d.id,
                       "benchmark hardware_id differs only in letter case: HARDWARE_MISMATCH (byte compare)")

        # duplicate hardware ids
        for i in range(self.rate(10, 3)):
            a, b = self.take(), self.take()
            if not (a and b):
                break
            b.hw, b.model, b.count = a.hw, a.model, a.count
            if i == 1:  # timezone trap: a is earlier but its text sorts later
                b.reg = a.reg + 1800
                a.reg_text = with_offset(a.reg, 540)
                b.reg_text = canon(b.reg)
                note = "a written +09:00 (sorts later as text) is 30 min earlier than b"
            elif i == 2:  # same instant, written two ways: device_id order decides
                b.reg = a.reg
                a.reg_text, b.reg_text = canon(a.reg), str(a.reg)
                if b.id < a.id:
                    a, b = b, a
                note = "same registered_at (one as Unix seconds): lower device_id first"
            else:
                b.reg = a.reg + rng.randrange(3600, 40 * 86400)
                if i == 0:
                    b.reg = S + rng.randrange(E - S)
                note = "b registered later" + (" (during the epoch)" if b.reg >= S else "")
            self.plant("duplicate_hardware", {"first": a.id, "duplicate": b.id,
                                              "hardware_id": a.hw, "case": note})
        self.notes["duplicate_hardware"] = "the later device of each pair gets DUPLICATE_HARDWARE"

        # ids differing only in case are different devices / cards
        if self.big:
            a, b = self.take(), self.take()
            if a and b:
                nid, nhw = a.id.swapcase(), a.hw.swapcase()
                if nid not in self.used and nhw not in self.used:
                    self.used.add(nid)
                    self.used.add(nhw)
                    b.id, b.hw, b.model, b.count = nid, nhw, a.model, a.count
                    self.plant("case_distinct_ids", [a.id, b.id],
                               "device_id and hardware_id differ only in case: two devices, NOT duplicates")

        # uptime boundaries
        k_ok = -(-T // 10)
        if T >= 12 and (d := self.take(clean=True)):
            slots = rng.sample(range(T), k_ok)
            d.hb_plan = self.slot_beats(slots)
            self.plant("uptime_exactly_min", d.id, "online in exactly ceil(0.1*T)=%d slots: NOT LOW_UPTIME" % k_ok)
        if T >= 21 and (d := self.take(clean=True)):
            inner = rng.sample(range(1, T - 1), k_ok - 3) if k_ok >= 3 else []
            plan = self.slot_beats(inner)
            plan += [(S, canon(S)), (E - 1, canon(E - 1)[:-1] + ".999999999Z"),
                     (S - 1, canon(S - 1)), (E, str(E)), (E, canon(E))]
            d.hb_plan = plan
            self.plant("uptime_one_below_min", d.id,
                       "online in exactly %d slots incl. ts=start and ts=end-1 (.999999999 floored); "
                       "also beats at start-1 and at end (outside): LOW_UPTIME" % (k_ok - 1))
        if T >= 12 and (d := self.take(clean=True)):
            k = T // 3
            R = S + k * SLOT + 137
            d.reg = R
            d.reg_text = canon(R)[:-1] + ".250Z"
            slots = rng.sample(range(k + 1, T), min(k_ok - 1, T - k - 1))
            d.hb_plan = self.slot_beats(slots) + [(R, canon(R)), (R - 1, canon(R - 1)),
                                                  (R - 1000, canon(R - 1000))]
            self.plant("heartbeat_at_registered_at", d.id,
                       "registered mid-slot (fraction .250 floored); a beat at exactly registered_at counts, "
                       "beats 1 s and 1000 s earlier do not; online_slots = %d" % (1 + len(slots)))

        # heartbeats before registered_at (devices registering during the epoch)
        early = [d for d in self.devices if d.hb_before_reg]
        if self.big and not early and (d := self.take()):
            d.reg = S + (E - S) // 2 + rng.randrange(max(1, min(3600, (E - S) // 4)))
            d.hb_before_reg = True
            early = [d]
        for d in early:
            self.plant("heartbeats_before_registered_at", d.id,
                       "device sends heartbeats for 1-6 h before registered_at (ignored, counted)")
        if self.big and not any(d.margin != (0, 0) for d in self.devices) and (d := self.take()):
            d.margin = (0, 1800)
        for d in self.devices:
            if d.margin != (0, 0):
                self.plant("heartbeats_outside_epoch", d.id,
                           "heartbeats up to 3 h before start and/or after end")

        # rentals
        for _ in range(self.rate(30)):
            if d := self.take():
                d.self_rent = True
        for d in self.farm_devs[:2] if self.big else []:
            d.self_rent = True
        for d in self.devices:
            if d.self_rent:
                self.plant("self_rental", d.id, "rental with renter_account_id == account_id: SELF_RENTAL")
        if self.big:
            spec = [
                ("rental_crosses_start", [(S - 5 * 3600, S + 2 * 3600)]),
                ("rental_crosses_end", [(E - 3 * 3600, E + 9 * 3600)]),
                ("rental_spans_epoch", [(S - 86400, E + 86400)]),
                ("rentals_overlap", [(S + 3600, S + 4 * 3600), (S + 3 * 3600, S + 6 * 3600),
                                     (S + 3600 + 1800, S + 2 * 3600)]),
                ("rental_outside_epoch", [(S - 3 * 86400, S - 2 * 86400), (E, E + 3600)]),
                ("rental_offset_text_reversed", [(S + 7200, S + 10800, "offset")]),
            ]
            notes = {
                "rental_crosses_start": "clipped to 2 h",
                "rental_crosses_end": "clipped to 3 h",
                "rental_spans_epoch": "clipped to the whole epoch",
                "rentals_overlap": "[+1h,+4h) [+3h,+6h) [+1.5h,+2h) after start, other renters: union 5 h "
                                   "(less if the epoch is shorter than 6 h)",
                "rental_outside_epoch": "entirely before start / starting at end: 0 s",
                "rental_offset_text_reversed": "start written +02:00 sorts after end written Z, "
                                               "but end is 1 h after start in UTC: valid, 1 h",
            }
            for name, ivs in spec:
                if d := self.take(clean=True):
                    d.rent_plan = ivs
                    self.plant(name, d.id, notes[name] + " (plus the device's own random rentals)")
                    d.no_random_rent = True

    def slot_beats(self, slots):
        out = []
        for s in slots:
            for _ in range(1 + self.rng.randrange(3)):
                t = self.S + s * SLOT + self.rng.randrange(SLOT)
                out.append((t, canon(t)))
        return out

    def default_bench(self, d):
        rng = self.rng
        out = []
        ref = REF_TENTHS.get(d.model)
        for _ in range(d.n_bench):
            r = d.ratio * rng.randrange(980, 1021) // 1000 if ref else 0
            out.append((True, d.model, d.hw, dec(ref * r // 100000) if ref else dec(rng.randrange(5000, 90000))))
        return out

    # ------------------------------------------------------------ events
    def hb_intervals(self, d, lo, hi):
        rng, S, E = self.rng, self.S, self.E
        rnd = rng.random
        out = []
        if d.pattern == "always":
            cuts = sorted((lo + int(rnd() * (hi - lo)), 300 + int(rnd() * rnd() * 5400))
                          for _ in range(int((hi - lo) / 86400 * 1.5 * rnd() + rnd())))
            cur = lo
            for a, ln in cuts:
                if a > cur:
                    out.append((cur, a))
                cur = max(cur, a + ln)
            if cur < hi:
                out.append((cur, hi))
        elif d.pattern == "diurnal":
            day = (lo + d.tz) // 86400 - 1
            while True:
                base = day * 86400 - d.tz
                if base >= hi:
                    break
                if rnd() < 0.9:
                    a = base + d.on_hour * 3600 + int((rnd() - 0.5) * 4800)
                    b = a + d.on_len + int((rnd() - 0.5) * 7200)
                    if rnd() < 0.05:
                        b += 8 * 3600
                    a, b = max(a, lo), min(b, hi)
                    if a < b:
                        out.append((a, b))
                day += 1
        elif d.pattern == "bursty":
            t = lo + (0 if rnd() < 0.5 else int(rnd() * 7200))
            while t < hi:
                on = 600 + int(rnd() * rnd() * 6 * 3600)
                out.append((t, min(t + on, hi)))
                t += on + 300 + int(rnd() * rnd() * 5 * 3600)
        else:  # rare: at most 7% of the epoch's slots
            budget = self.T * (10 + rng.randrange(61)) // 1000
            a0 = max(lo, S)
            while budget > 0:
                ln = min(budget, 1 + rng.randrange(6))
                s0 = rng.randrange(max(1, self.T - ln + 1))
                a, b = max(S + s0 * SLOT, a0), min(S + (s0 + ln) * SLOT, hi, E)
                if a < b:
                    out.append((a, b))
                budget -= ln
        return out

    def gen_heartbeats(self):
        rng, S, E = self.rng, self.S, self.E
        rnd = rng.random
        hb = self.a.heartbeat_seconds
        base, span = max(1, hb - hb // 4), max(1, hb // 2)
        d0 = (S - 3 * 86400) // 86400
        b0 = d0 * 86400
        days = [day_str(d0 + i) + "T" for i in range((E - b0) // 86400 + 4)]
        hmsz = HMSZ
        P_MISS, P_VAR, P_DUP = 0.01, 0.03, 0.997
        lines = []
        app = lines.append
        ts_var = self.ts_var
        for d in self.devices:
            if d.hb_plan is not None:
                for _, text in d.hb_plan:
                    app(d.id + "," + text)
                continue
            lo, hi = S, E
            if S < d.reg < E:
                lo = d.reg
            if d.hb_before_reg:
                lo = max(S - 6 * 3600, d.reg - rng.randrange(3600, 6 * 3600))
            lo, hi = max(lo - d.margin[0], S - 86400), min(hi + d.margin[1], E + 86400)
            pre = d.id + ","
            for a, b in self.hb_intervals(d, lo, hi):
                t = a + int(rnd() * hb)
                while t < b:
                    r = rnd()
                    if r >= P_MISS:
                        if r < P_VAR:
                            line = pre + ts_var(t)
                            if rnd() < 0.05:
                                line = '"' + d.id + '",' + line[len(pre):]
                        else:
                            q, s = divmod(t - b0, 86400)
                            line = pre + days[q] + hmsz[s]
                        app(line)
                        if r >= P_DUP:
                            app(line)
                    t += base + int(rnd() * span)
        return lines

    def speed_value_sets(self, d):
        """Lists (download, upload, latency) in hundredths, one entry per test."""
        rng = self.rng
        n = d.n_speed
        if d.conn == "threshold":
            tier = rng.randrange(3)
            td, tu, tl = TIERS[tier]
            kind = rng.choice(["all_exact", "one_exact", "one_exact", "just_below"])
            md, mu, ml = td, tu, tl
            if kind != "all_exact":
                md = td + rng.randrange(1, td // 2)
                mu = tu + rng.randrange(1, tu // 2)
                ml = tl - rng.randrange(1, tl // 3)
                which = rng.randrange(3)
                delta = 1 if kind == "just_below" else 0
                if which == 0:
                    md = td - delta
                elif which == 1:
                    mu = tu - delta
                else:
                    ml = tl + delta
            self.plant("speedtest_median_at_threshold",
                       {"device": d.id, "tier": ["gold", "silver", "bronze"][tier], "kind": kind,
                        "median": [dec(md), dec(mu), dec(ml)]})
            self.notes["speedtest_median_at_threshold"] = (
                "medians built exactly at (all_exact/one_exact) or 0.01 worse than (just_below) a tier "
                "threshold; thresholds are inclusive (>= / <=)")
            return self.around(md, n), self.around(mu, n), self.around(ml, n)
        c = d.conn
        if c == "gold":
            md, mu, ml = rng.randrange(55000, 300000), rng.randrange(28000, 100000), rng.randrange(300, 2600)
        elif c == "silver":
            md, mu, ml = rng.randrange(11500, 45000), rng.randrange(5800, 22000), rng.randrange(1200, 5200)
        elif c == "bronze":
            md, mu, ml = rng.randrange(2800, 9000), rng.randrange(1150, 4500), rng.randrange(2500, 11000)
        else:
            md, mu, ml = rng.randrange(2800, 9000), rng.randrange(1150, 4500), rng.randrange(2500, 11000)
            w = rng.randrange(3)
            if w == 0:
                md = rng.randrange(300, 2400)
            elif w == 1:
                mu = rng.randrange(100, 950)
            else:
                ml = rng.randrange(13000, 45000)
        nz = lambda v, lo, hi: max(1, v * rng.randrange(lo, hi) // 100)
        return ([nz(md, 85, 116) for _ in range(n)], [nz(mu, 85, 116) for _ in range(n)],
                [nz(ml, 80, 121) // 10 * 10 or 10 for _ in range(n)])

    def around(self, m, n):
        """n positive values (hundredths) whose median is exactly m."""
        rng = self.rng
        spread = max(2, m // 5)
        vals = []
        if n % 2:
            vals.append(m)
            k = (n - 1) // 2
        else:
            dlt = rng.randrange(1, max(2, spread // 4))
            dlt = min(dlt, m - 1)
            vals += [m - dlt, m + dlt]
            k = (n - 2) // 2
            m_lo, m_hi = m - dlt, m + dlt
        lo_ref = m if n % 2 else m_lo
        hi_ref = m if n % 2 else m_hi
        for _ in range(k):
            vals.append(max(1, lo_ref - rng.randrange(0, max(1, min(spread, lo_ref - 1)))))
            vals.append(hi_ref + rng.randrange(0, spread))
        rng.shuffle(vals)
        return vals

    def fmt_speed(self, v):
        r = self.rng.random()
        if v % 100 == 0:
            return str(v // 100) if r < 0.4 else dec(v // 10, 1) if r < 0.7 else dec(v) if r < 0.9 else dec(v * 10, 3)
        if v % 10 == 0 and r < 0.6:
            return dec(v // 10, 1)
        return dec(v)

    def event_ts(self, d, p_out, p_var):
        """(in_epoch, text) of an event time for d; out-of-epoch with probability p_out."""
        rng, S, E = self.rng, self.S, self.E
        if rng.random() < p_out:
            r = rng.random()
            t = E if r < 0.2 else S - 1 - rng.randrange(2 * 86400) if r < 0.6 else E + rng.randrange(2 * 86400)
            return False, self.ts(t, p_var)
        lo = d.reg if S < d.reg < E - 3600 else S
        return True, self.ts(lo + rng.randrange(E - lo), p_var)

    def gen_speedtests(self):
        rng = self.rng
        lines = []
        for d in self.devices:
            exact = d.conn == "threshold"
            dl, ul, ll = self.speed_value_sets(d)
            for i in range(d.n_speed):
                _, ts = self.event_ts(d, 0 if (exact or d.clean) else 0.03, 0.08)
                line = "%s,%s,%s,%s,%s" % (d.id, ts, self.fmt_speed(dl[i]), self.fmt_speed(ul[i]),
                                           self.fmt_speed(ll[i]))
                lines.append(line)
                if not exact and not d.clean and rng.random() < 0.02:
                    lines.append(line)
        if self.big and (d := next((x for x in self.devices if x.group == "regular" and not x.clean
                                    and x.conn != "threshold" and x.n_speed == 2), None)):
            # one in-epoch + the same device's second test outside: INSUFFICIENT_SPEEDTESTS
            lines = [l for l in lines if not l.startswith(d.id + ",")]
            for i, t in enumerate([self.S + rng.randrange(self.E - self.S), self.S - 600]):
                lines.append("%s,%s,%s,%s,%s" % (d.id, canon(t), "612.50", "300.25", "12.5"))
            self.plant("speedtest_outside_makes_insufficient", d.id,
                       "two gold speedtests, one before start: INSUFFICIENT_SPEEDTESTS")
        return lines

    def gen_benchmarks(self):
        rng, S = self.rng, self.S
        lines = []
        for d in self.devices:
            plan = d.bench_plan
            if plan is None:
                if d.group == "farm" or (d.group in ("regular", "exact8", "ipcap") and d.reg < S
                                         and not d.clean and rng.random() < 0.08):
                    # onboarding benchmark before the epoch (ignored)
                    plan = [(False, d.model, d.hw,
                             dec(REF_TENTHS[d.model] * d.ratio // 100000))] if d.model in MODELS else []
                else:
                    plan = []
                plan = plan + self.default_bench(d)
            for in_epoch, model, hw, tf in plan:
                if in_epoch:
                    ts = self.ts(S + rng.randrange(self.E - S), 0.08)
                else:
                    ts = self.ts(S - 1 - rng.randrange(3 * 86400), 0.08)
                line = "%s,%s,%s,%s,%s" % (d.id, ts, model, hw, tf)
                lines.append(line)
                if d.bench_plan is None and not d.clean and rng.random() < 0.02:
                    lines.append(line)
        return lines

    def rental_line(self, d, renter, a, b, form=None):
        self.rental_seq += 1 + self.rng.randrange(3)
        if form == "offset":
            st, en = with_offset(a, 120), canon(b)
        else:
            st, en = self.ts(a, 0.08), self.ts(b, 0.08)
        return "R-%d,%s,%s,%s,%s" % (self.rental_seq, d.id, renter, st, en)

    def gen_rentals(self):
        rng, S, E = self.rng, self.S, self.E
        rnd = rng.random
        lines = []
        days = (E - S) / 86400

        def other(acc):
            while True:
                r = rng.choice(self.renters)
                if r != acc:
                    return r

        for d in self.devices:
            if d.rent_plan:
                for iv in d.rent_plan:
                    lines.append(self.rental_line(d, other(d.account), iv[0], iv[1],
                                                  iv[2] if len(iv) > 2 else None))
            if not getattr(d, "no_random_rent", False) and not d.clean:
                rate = 0 if rnd() < 0.45 else 0.3 + rnd() * 1.2
                for _ in range(int(days * rate + rnd())):
                    a = S - 12 * 3600 + rng.randrange(E - S + 12 * 3600) // 60 * 60
                    b = a + 1800 + int(rnd() * rnd() * 36 * 3600) // 60 * 60
                    renter = other(d.account)
                    lines.append(self.rental_line(d, renter, a, b))
                    if rnd() < 0.02:
                        lines.append(lines[-1])
                    if rnd() < 0.15:  # overlapping rental by someone else
                        c = a + rng.randrange(b - a)
                        lines.append(self.rental_line(d, other(d.account), c, c + 1800 + rng.randrange(20) * 1800))
            if d.self_rent:
                a = S + rng.randrange(max(60, E - S - 3600)) // 60 * 60
                b = a + (1 + rng.randrange(12)) * 3600
                lines.append(self.rental_line(d, d.account, a, b))
                if rnd() < 0.5:
                    c = a + rng.randrange(b - a)
                    lines.append(self.rental_line(d, d.account, c, c + 7200))
                if rnd() < 0.5:
                    lines.append(self.rental_line(d, other(d.account), a + 600, b + 600))
        return lines

    # ------------------------------------------------------------ rejects
    def reject_line(self, table, kind):
        rng, S, E = self.rrng, self.S, self.E
        d = rng.choice(self.devices)
        t = S - 86400 + rng.randrange(E - S + 2 * 86400)
        ts = canon(t)
        if table == "heartbeats":
            f = [d.id, ts]
            ts_i, num_i, id_i = 1, None, 0
        elif table == "speedtests":
            f = [d.id, ts, dec(rng.randrange(1000, 90000)), dec(rng.randrange(500, 40000)), dec(rng.randrange(500, 9000), 1)]
            ts_i, num_i, id_i = 1, rng.randrange(2, 5), 0
        elif table == "benchmarks":
            ref = REF_TENTHS.get(d.model, 1000)
            f = [d.id, ts, d.model, d.hw, dec(ref * 95 // 10)]
            ts_i, num_i, id_i = 1, 4, rng.choice([0, 2, 3])
        else:
            self.reject_seq += 1
            f = ["R-%d" % self.reject_seq, d.id, rng.choice(self.renters), ts, canon(t + 3600)]
            ts_i, num_i, id_i = rng.choice([3, 4]), None, rng.choice([1, 2])
        if kind == "bad_timestamp":
            y, rest = ts[:4], ts[4:]
            f[ts_i] = rng.choice([
                ts.replace("T", " "), ts[:-1], ts[:-3] + "60Z", ts[:11] + "24" + ts[13:],
                ts[:-1] + "+24:00", ts[:16] + "Z", str(t * 1000), y + "-02-30T10:00:00Z",
                y + "-3-1T12:00:00Z", ts[:-1] + "[UTC]"])
        elif kind == "unknown_device":
            f[1 if table == "rentals" else 0] = self.fresh("ghost-%010x" % rng.getrandbits(40)) or "ghost-x"
        elif kind == "leading_space":
            i = rng.randrange(len(f))
            f[i] = " " + f[i]
        elif kind == "negative":
            if num_i is None:
                f[ts_i] = "-" + str(t)
            else:
                f[num_i] = "-" + f[num_i]
        elif kind == "exponent":
            if num_i is None:
                f[ts_i] = "1.7e9"
            else:
                f[num_i] = "1e3"
        elif kind == "too_many_decimals":
            f[num_i] = rng.choice(["12.1234567891", "1234567890123.5"])
        elif kind == "field_count":
            if rng.random() < 0.5:
                f.pop()
            else:
                f.append("extra")
        elif kind == "bad_identifier":
            f[id_i] = rng.choice(["-", "_", "#"]) + f[id_i][1:] if rng.random() < 0.5 else f[id_i][:3] + " " + f[id_i][3:]
        elif kind == "rental_end_not_after_start":
            if rng.random() < 0.5:
                f[4] = f[3]
            else:
                f[3], f[4] = f[4], f[3]
        return ",".join(f)

    def add_rejects(self, table, lines):
        R = self.a.rejects
        if R <= 0:
            return lines
        cap = len(lines) // 1000
        n = R if self.a.no_reject_cap else min(R, cap)
        if n < R:
            print("gen_epoch: %s: %d valid rows allow at most %d rejected rows (0.1%%); writing %d of %d"
                  % (table, len(lines), cap, n, R), file=sys.stderr)
        if n == 0:
            return lines
        kinds = ["bad_timestamp", "unknown_device", "leading_space", "field_count", "bad_identifier",
                 "negative", "exponent"]
        if table in ("speedtests", "benchmarks"):
            kinds.append("too_many_decimals")
        self.rrng.shuffle(kinds)
        if table == "rentals":
            kinds.insert(0, "rental_end_not_after_start")
        total = len(lines) + n
        # one reject per equal segment of the final file: spread through it
        pos = [i * total // n + self.rrng.randrange(max(1, total // n)) for i in range(n)]
        out, src = [], 0
        for j, p in enumerate(pos):
            take = p - len(out)
            out.extend(lines[src:src + take])
            src += take
            kind = kinds[j % len(kinds)]
            out.append(self.reject_line(table, kind))
            self.reject_info.append({"file": table + ".csv", "line": len(out) + 1, "kind": kind})
        out.extend(lines[src:])
        return out

    # ------------------------------------------------------------ output
    def build_events(self):
        rng = self.rng
        for d in self.devices:
            if d.reg_text is None:
                d.reg_text = self.ts(d.reg, 0.06)
        dev_lines = []
        for d in self.devices:
            line = "%s,%s,%s,%d,%s,%s,%s" % (d.id, d.account, d.model, d.count, d.hw, d.ip, d.reg_text)
            if rng.random() < 0.02 or (self.big and d is self.devices[-1]):
                line = '"%s",%s,%s,%d,%s,"%s",%s' % (d.id, d.account, d.model, d.count, d.hw, d.ip, d.reg_text)
            dev_lines.append(line)
        rng.shuffle(dev_lines)
        self.rows["devices"] = dev_lines
        for table, fn in (("heartbeats", self.gen_heartbeats), ("speedtests", self.gen_speedtests),
                          ("benchmarks", self.gen_benchmarks), ("rentals", self.gen_rentals)):
            lines = fn()
            if self.big and len(lines) > 1 and not self.has_duplicate(lines):
                lines.append(lines[rng.randrange(len(lines))])
            rng.shuffle(lines)
            self.rows[table] = self.add_rejects(table, lines)
        ov = []
        base = 1000 + rng.randrange(9000 - len(self.overrides))
        for i, (did, action, note) in enumerate(self.overrides):
            note = '"' + note.replace('"', '""') + '"' if ("," in note or '"' in note) else note
            ov.append("%s,%s,T-%d,%s" % (did, action, base + i, note))
        rng.shuffle(ov)
        self.rows["overrides"] = ov

    @staticmethod
    def has_duplicate(lines):
        seen = set()
        for l in lines:
            if l in seen:
                return True
            seen.add(l)
        return False

    def write(self, out):
        os.makedirs(out, exist_ok=True)
        a = self.a
        with open(os.path.join(out, "epoch.toml"), "w", encoding="utf-8", newline="\n") as f:
            f.write('id = "gen-%d"\nstart = "%s"\nend = "%s"\npool = "%s"\ndecimals = %d\nrules = "v1"\n'
                    % (a.seed, canon(self.S), canon(self.E), a.pool, a.decimals))
        for table in ["devices"] + EVENT_TABLES + ["overrides"]:
            lines = self.rows[table]
            with open(os.path.join(out, table + ".csv"), "w", encoding="utf-8", newline="\n",
                      buffering=1 << 20) as f:
                f.write(HDR[table] + "\n")
                if lines:
                    f.write("\n".join(lines))
                    f.write("\n")

    def truth(self):
        return {
            "generator": "tests/tools/gen_epoch.py",
            "args": {k: getattr(self.a, k) for k in ("devices", "hours", "seed", "start", "heartbeat_seconds",
                                                    "rejects", "pool", "decimals")},
            "total_slots": self.T,
            "rows": {t: len(self.rows[t]) for t in self.rows},
            "planted": self.planted,
            "notes": self.notes,
            "overrides": [{"device_id": d, "action": a} for d, a, _ in self.overrides],
            "rejected_rows": self.reject_info,
        }


def parse_args(argv):
    p = argparse.ArgumentParser(description="Deterministic synthetic tally epoch generator (rules v1).")
    p.add_argument("--out", required=True, help="output epoch directory (created)")
    p.add_argument("--devices", type=int, required=True, help="number of registry devices")
    p.add_argument("--hours", type=int, required=True, help="epoch length in hours")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--start", default="2024-03-01T00:00:00Z", help="epoch start, RFC 3339, whole seconds")
    p.add_argument("--heartbeat-seconds", type=int, default=60)
    p.add_argument("--rejects", type=int, default=0, help="about R malformed rows per event table")
    p.add_argument("--no-reject-cap", action="store_true",
                   help="write R rejects even above 0.1%% of a table (to make the engine fail)")
    p.add_argument("--pool", default="32000000")
    p.add_argument("--decimals", type=int, default=8)
    p.add_argument("--truth", help="also write a JSON list of the planted anomalies here (outside --out)")
    a = p.parse_args(argv)
    if a.devices < 1 or a.hours < 1 or a.heartbeat_seconds < 1 or a.rejects < 0:
        p.error("--devices, --hours, --heartbeat-seconds must be >= 1, --rejects >= 0")
    if not 0 <= a.decimals <= 18:
        p.error("--decimals must be 0..18")
    m = re.fullmatch(r"(\d{1,30})(?:\.(\d+))?", a.pool)
    if not m or (m.group(2) and len(m.group(2)) > a.decimals) or Decimal(a.pool) <= 0:
        p.error("--pool must be a decimal string > 0 with at most --decimals places")
    try:
        st = _dt.datetime.fromisoformat(a.start.replace("z", "Z").replace("t", "T"))
    except ValueError:
        p.error("--start must be RFC 3339")
    if st.tzinfo is None or st.microsecond:
        p.error("--start needs an offset or Z, and whole seconds")
    a.start_unix = (st - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)) // _dt.timedelta(seconds=1)
    if a.start_unix < 3 * 86400:
        p.error("--start too early")
    return a


def main(argv=None):
    a = parse_args(argv)
    t0 = time.perf_counter()
    g = Gen(a)
    g.build_registry()
    g.plant_anomalies()
    g.build_events()
    g.write(a.out)
    if a.truth:
        with open(a.truth, "w", encoding="utf-8", newline="\n") as f:
            json.dump(g.truth(), f, indent=1, sort_keys=True)
            f.write("\n")
    print("gen_epoch: wrote %s: %s in %.2fs" % (
        a.out, ", ".join("%s=%d" % (t, len(g.rows[t])) for t in g.rows), time.perf_counter() - t0),
        file=sys.stderr)


if __name__ == "__main__":
    main()
