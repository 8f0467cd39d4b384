//! A tiny epoch generator driven by the fuzzer's bytes: every choice (how many
//! devices, which timestamps, which value is malformed) reads the next byte, and an
//! exhausted input reads zeros, so every input is an epoch and short inputs are
//! small, mostly valid ones. Values are drawn from lists of valid forms (every
//! timestamp form of SPEC 2.1, IPs in several spellings) with, per table, a chance of
//! "dirty" values: text that must be rejected (quotes, commas, CR/LF, NUL, non-ASCII,
//! out-of-range numbers).

use std::fmt::Write as _;
use std::path::Path;

/// The epoch's start, `2024-03-01T00:00:00Z`.
const START: i64 = 1_709_251_200;

/// The bytes, read one choice at a time.
pub struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Choices { data, pos: 0 }
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A number below `n` (> 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// True with probability `1 / n`, about; false once the input is exhausted.
    pub fn one_in(&mut self, n: u8) -> bool {
        self.byte() % n == n - 1
    }
}

/// Text a valid row never holds.
const DIRTY: &[&str] = &[
    "",
    " d01",
    "d01 ",
    "\"",
    "a,b",
    "x\r\ny",
    "x\ny",
    "\r",
    "\0",
    "é",
    "\u{feff}d01",
    "２０２４",
    "2024-03-01T00:00:60Z",
    "2024-02-30T00:00:00Z",
    "2024-03-01T24:00:00Z",
    "2024-03-01T00:00:00+24:00",
    "2024-03-01 00:00:00Z",
    "0000-01-01T00:00:00Z",
    "99999999999",
    "999999999999",
    "-1",
    "1e3",
    "0x10",
    "NaN",
    "1.",
    ".5",
    "1234567890123.0",
    "1.0000000001",
    "+5",
    "65",
    "0",
    "10.0.0.1%eth0",
    "::ffff:10.0.0.256",
    "REINSTATE",
    "exclude ",
];

/// Models and their reference tflops (rules v1 and v2), and one no rules know.
const MODELS: &[(&str, &str)] = &[
    ("H100-80GB", "989.4"),
    ("A100-80GB", "312.0"),
    ("L40S", "362.0"),
    ("RTX-4090", "165.2"),
    ("T4", "65.0"),
    ("M2-MAC-MINI", "3.6"),
    ("UNKNOWN-GPU", "100"),
];
const IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "::ffff:10.0.0.1",
    "2001:db8::1",
    "2001:DB8:0::1",
    "0.0.0.0",
    "::",
];
const MBPS: &[&str] = &[
    "500",
    "250",
    "100.5",
    "25",
    "10",
    "0",
    "1000000",
    "30",
    "120",
    "0.000000001",
    "000012.500",
];

#[derive(Clone)]
struct Device {
    id: String,
    account: String,
    model: &'static str,
    tflops: &'static str,
    hardware: String,
}

/// One epoch being written.
struct Epoch {
    slots: i64,
    slot_seconds: i64,
    /// `device_id`, `account_id`, model and its reference tflops, `hardware_id`.
    devices: Vec<Device>,
}

/// A timestamp `offset` seconds after the epoch's start, in one of the forms SPEC 2.1
/// allows (or, rarely, one it does not).
fn timestamp(c: &mut Choices, secs: i64, dirty: bool) -> String {
    if dirty && c.one_in(4) {
        return c.pick(DIRTY).to_string();
    }
    let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
        return secs.to_string();
    };
    match c.below(6) {
        0 => secs.to_string(),
        1 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        2 => t.format("%Y-%m-%dt%H:%M:%S.%3fz").to_string(),
        3 => {
            let shifted = t + chrono::Duration::hours(5) + chrono::Duration::minutes(30);
            shifted.format("%Y-%m-%dT%H:%M:%S+05:30").to_string()
        }
        4 => {
            let shifted = t - chrono::Duration::hours(23) - chrono::Duration::minutes(59);
            shifted
                .format("%Y-%m-%dT%H:%M:%S.123456789-23:59")
                .to_string()
        }
        _ => t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
    }
}

/// An offset in seconds into (or a little around) the epoch.
fn offset(c: &mut Choices, e: &Epoch) -> i64 {
    let len = e.slots * e.slot_seconds;
    match c.below(8) {
        4 => -1 - i64::from(c.byte()) * 60,
        5 => len + i64::from(c.byte()) * 60,
        6 => len - 1,
        7 => 0,
        // Inside the epoch (the choice of an exhausted input: its start).
        _ => (i64::from(c.byte()) * 256 + i64::from(c.byte())) % len.max(1),
    }
}

/// A timestamp around the epoch.
fn ts_in(c: &mut Choices, e: &Epoch, dirty: bool) -> String {
    let secs = START + offset(c, e);
    timestamp(c, secs, dirty)
}

/// A value from `valid`, or (in a dirty table, rarely) a bad one.
fn value(c: &mut Choices, valid: &[&str], dirty: bool) -> String {
    if dirty && c.one_in(4) {
        c.pick(DIRTY).to_string()
    } else {
        c.pick(valid).to_string()
    }
}

/// A device of the registry, or (in a dirty table) an unknown one.
fn device(c: &mut Choices, e: &Epoch, dirty: bool) -> String {
    if dirty && c.one_in(4) {
        return c.pick(&["d99", "D00", "d0", ""]).to_string();
    }
    e.devices[c.below(e.devices.len())].id.clone()
}

/// One CSV table being written: header, rows, line ends, quoting, column order.
struct Csv {
    out: String,
    crlf: bool,
    /// Fields are written as they are, unquoted, which makes records malformed.
    raw: bool,
    /// Columns in reverse order (SPEC 2.2: order free).
    reverse: bool,
    /// An extra column at the end (ignored).
    extra: bool,
}

impl Csv {
    fn new(c: &mut Choices, header: &[&str]) -> Csv {
        let mut t = Csv {
            out: String::new(),
            crlf: c.one_in(4),
            raw: c.one_in(32),
            reverse: c.one_in(8),
            extra: c.one_in(16),
        };
        if c.one_in(16) {
            t.out.push('\u{feff}');
        }
        let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        t.fields(header, "extra");
        t
    }

    fn row(&mut self, fields: &[String]) {
        self.fields(fields.to_vec(), "x,\"y\"");
    }

    fn fields(&mut self, mut fields: Vec<String>, extra: &str) {
        if self.reverse {
            fields.reverse();
        }
        if self.extra {
            fields.push(extra.to_string());
        }
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            if !self.raw && f.contains([',', '"', '\r', '\n']) {
                let _ = write!(self.out, "\"{}\"", f.replace('"', "\"\""));
            } else {
                self.out.push_str(f);
            }
        }
        self.out.push_str(if self.crlf { "\r\n" } else { "\n" });
    }
}

/// Writes an epoch directory chosen by `data` into `dir`.
pub fn write_epoch(data: &[u8], dir: &Path) {
    let c = &mut Choices::new(data);
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).expect("cannot write the generated epoch");
    };

    // epoch.toml: 1 to 288 slots of 300 s (rarely a length that is not whole slots).
    let slots = c.pick(&[24i64, 1, 2, 12, 288, 7]);
    let len = slots * 300 + if c.one_in(32) { 7 } else { 0 };
    let (pool, min_decimals) = c.pick(&[
        ("1000", 0u32),
        ("0.01", 2),
        ("1", 0),
        ("32000000", 0),
        ("123456789.123456789", 9),
        ("99999999999999999999", 0),
    ]);
    let decimals = (min_decimals + c.pick(&[0u32, 0, 2, 9, 18])).min(18);
    let rules = if c.one_in(4) { "v2" } else { "v1" };
    let end = chrono::DateTime::from_timestamp(START + len, 0).expect("in range");
    write(
        "epoch.toml",
        &format!(
            "id = \"gen\"\nstart = \"2024-03-01T00:00:00Z\"\nend = \"{}\"\npool = \"{pool}\"\n\
             decimals = {decimals}\nrules = \"{rules}\"\n",
            end.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    );
    let mut e = Epoch {
        slots,
        slot_seconds: 300,
        devices: Vec::new(),
    };

    // devices: 1 to 6, ids unique but for a rare repeat (which fails the run).
    let n = 1 + c.below(6);
    let mut t = Csv::new(c, &tally_ingest::DEVICE_COLUMNS);
    let registry_dirty = c.one_in(64);
    for i in 0..n {
        let id = if c.one_in(64) && i > 0 {
            format!("d{:02}", i - 1)
        } else {
            format!("d{i:02}")
        };
        let account = format!("acct-{}", c.below(3));
        let registered = match c.below(4) {
            0 => -30 * 86_400,
            1 => 0,
            2 => offset(c, &e),
            _ => -1,
        };
        let (model, tflops) = c.pick(MODELS);
        // Hardware ids are distinct unless a choice repeats one.
        let hardware = format!("hw{}", if c.one_in(4) { c.below(n) } else { i });
        let row = vec![
            id.clone(),
            account.clone(),
            if registry_dirty {
                value(c, &[model], true)
            } else {
                model.to_string()
            },
            value(c, &["1", "2", "8", "64"], registry_dirty),
            hardware.clone(),
            value(c, IPS, registry_dirty),
            timestamp(c, START + registered, registry_dirty),
        ];
        t.row(&row);
        e.devices.push(Device {
            id,
            account,
            model,
            tflops,
            hardware,
        });
    }
    write("devices.csv", &t.out);

    // heartbeats: per device a pattern of slots.
    let dirty = c.one_in(16);
    let mut t = Csv::new(c, &["device_id", "ts"]);
    for k in 0..e.devices.len() {
        // The first choice (that of an exhausted input) is every slot.
        let pattern = c.below(5);
        for s in 0..e.slots {
            let on = match pattern {
                0 => true,
                1 => false,
                2 => s % 2 == 0,
                3 => s < e.slots / 4 + 1,
                _ => c.one_in(2),
            };
            if on {
                let within = i64::from(c.byte()) % e.slot_seconds;
                let id = if dirty {
                    device(c, &e, true)
                } else {
                    e.devices[k].id.clone()
                };
                let ts = timestamp(c, START + s * e.slot_seconds + within, dirty);
                t.row(&[id, ts]);
            }
        }
        for _ in 0..c.below(3) {
            let ts = ts_in(c, &e, dirty);
            t.row(&[device(c, &e, dirty), ts]);
        }
    }
    write("heartbeats.csv", &t.out);

    // speedtests: a few per device.
    let dirty = c.one_in(16);
    let mut t = Csv::new(
        c,
        &[
            "device_id",
            "ts",
            "download_mbps",
            "upload_mbps",
            "latency_ms",
        ],
    );
    for _ in 0..e.devices.len() {
        for _ in 0..c.pick(&[2, 3, 0, 1, 5]) {
            let row = vec![
                device(c, &e, dirty),
                ts_in(c, &e, dirty),
                value(c, MBPS, dirty),
                value(c, MBPS, dirty),
                value(c, MBPS, dirty),
            ];
            t.row(&row);
        }
    }
    write("speedtests.csv", &t.out);

    // benchmarks: the registry's model and hardware, or others.
    let dirty = c.one_in(16);
    let mut t = Csv::new(
        c,
        &["device_id", "ts", "gpu_model", "hardware_id", "tflops"],
    );
    for k in 0..e.devices.len() {
        for _ in 0..c.pick(&[1, 2, 0, 3]) {
            // The registry's model, hardware and reference tflops, or others.
            let d = e.devices[k].clone();
            let id = if c.one_in(4) {
                device(c, &e, dirty)
            } else {
                d.id
            };
            let model = if c.one_in(4) {
                c.pick(MODELS).0
            } else {
                d.model
            };
            let hardware = if c.one_in(4) {
                format!("hw{}", c.below(9))
            } else {
                d.hardware
            };
            let row = vec![
                id,
                ts_in(c, &e, dirty),
                value(c, &[model], dirty),
                hardware,
                value(
                    c,
                    &[
                        d.tflops,
                        d.tflops,
                        "0",
                        "30",
                        "1137.81",
                        "999999999999.999999999",
                    ],
                    dirty,
                ),
            ];
            t.row(&row);
        }
    }
    write("benchmarks.csv", &t.out);

    // rentals: by the owner or by others, overlapping, clipped by the epoch.
    let dirty = c.one_in(16);
    let mut t = Csv::new(
        c,
        &[
            "rental_id",
            "device_id",
            "renter_account_id",
            "start",
            "end",
        ],
    );
    for r in 0..e.devices.len() * c.pick(&[1, 0, 2]) {
        let start = offset(c, &e);
        let end = if dirty && c.one_in(4) {
            start
        } else {
            start + 1 + i64::from(c.byte()) * 120
        };
        let renter = if c.one_in(2) {
            e.devices[c.below(e.devices.len())].account.clone()
        } else {
            "renter-x".to_string()
        };
        let row = vec![
            format!("r{}", r % 3),
            device(c, &e, dirty),
            renter,
            timestamp(c, START + start, dirty),
            timestamp(c, START + end, dirty),
        ];
        t.row(&row);
    }
    write("rentals.csv", &t.out);

    // overrides: optional, at most one per device (rarely two).
    if c.one_in(2) {
        let dirty = c.one_in(16);
        let mut t = Csv::new(c, &["device_id", "action", "ticket", "note"]);
        for (k, Device { id, .. }) in e.devices.iter().enumerate() {
            if c.one_in(2) || (k > 0 && c.one_in(64)) {
                let row = vec![
                    if dirty {
                        device(c, &e, true)
                    } else {
                        id.clone()
                    },
                    value(c, &["reinstate", "exclude"], dirty),
                    format!("T-{k}"),
                    c.pick(&[
                        "",
                        "ok",
                        "a \"quoted\", note",
                        "line\nbreak",
                        "ünïcode",
                        "\0",
                    ])
                    .to_string(),
                ];
                t.row(&row);
            }
        }
        write("overrides.csv", &t.out);
    }
}
