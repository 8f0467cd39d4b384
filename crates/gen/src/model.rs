//! The realism model: who owns which machines, how they come and go, what they
//! measure, and which of them misbehave.
//!
//! - **Accounts** have heavy-tailed sizes: a Pareto tail with exponent 1
//!   (`P(size >= s) = 1/s`, capped at 500), so half the accounts own one machine
//!   while a few datacenters own hundreds. The size decides the kind: home (1–4
//!   consumer GPUs on one residential IP), pro (5–49) and datacenter (50+, H100s and
//!   A100s, one IP per machine unless the operator hides a rack behind NAT).
//!   Every ~1,500 devices there is a **farm**: 24–64 "RTX-4090"s that are virtual
//!   slices of a few real cards, on two IPs, some sharing a hardware id.
//! - **Uptime** is a per-device online/offline Markov chain stepped every minute,
//!   whose transition probabilities depend on the profile (always-on, diurnal,
//!   flaky, mostly-offline) and, for diurnal machines, on the local hour of day:
//!   home GPUs go away during the owner's working day and come back in the evening.
//!   An online device sends a heartbeat every minute at a fixed second of its own
//!   plus 0–3 s of jitter.
//! - **Measurements**: 2–6 speedtests from the device's connection class (fiber,
//!   cable, DSL, poor) and 1–3 benchmarks near the model's reference tflops; rentals
//!   of 30 min to 36 h, more likely for datacenter cards, some overlapping, some
//!   crossing either edge of the epoch.
//! - **Anomalies** (SPEC 3.2) are independent per-device draws at rates of a few
//!   per thousand (see [`Flags`]), plus the structural ones above (farms, crowded
//!   IPs, mostly-offline machines).
//!
//! Every draw comes from ChaCha8 keyed by the seed, on a stream per (device or
//! account, purpose): a device's values depend only on the seed and its index, not
//! on the order in which anything is generated. Probabilities are integers (parts
//! per million, or per 65,536 for the per-minute chain): no float and no `ln` whose
//! last bit could differ between platforms.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// GPU models of `rules/v1.toml` with their reference tflops per GPU, in hundredths.
/// Kept in step with the rules file by a test; the generator never reads rules.
pub const MODELS: [(&str, u32); 8] = [
    ("H100-80GB", 98_940),
    ("A100-80GB", 31_200),
    ("L40S", 36_200),
    ("RTX-4090", 16_520),
    ("RTX-3080-TI", 13_600),
    ("RTX-4070", 5_830),
    ("T4", 6_500),
    ("M2-MAC-MINI", 360),
];
const H100: u8 = 0;
const A100: u8 = 1;
const L40S: u8 = 2;
const RTX4090: u8 = 3;
const RTX3080: u8 = 4;
const RTX4070: u8 = 5;
const T4: u8 = 6;
const MAC: u8 = 7;

/// Models a network sees before its rules list them (UNKNOWN_GPU_MODEL), with a
/// plausible benchmark in hundredths. Indexes 8.. in [`Device::model`].
const UNKNOWN_MODELS: [(&str, u32); 4] = [
    ("RTX-5090", 20_950),
    ("MI300X", 130_740),
    ("RTX-A6000", 15_480),
    ("RTX-3060", 5_100),
];

pub fn model_name(m: u8) -> &'static str {
    let m = usize::from(m);
    MODELS
        .get(m)
        .map_or_else(|| UNKNOWN_MODELS[m - MODELS.len()].0, |x| x.0)
}

fn model_tflops(m: u8) -> u32 {
    let m = usize::from(m);
    MODELS
        .get(m)
        .map_or_else(|| UNKNOWN_MODELS[m - MODELS.len()].1, |x| x.1)
}

/// Width of a device id: `d` and 7 digits, so byte order is numeric order and
/// every row of the biggest table costs 8 bytes of id.
pub const ID_LEN: usize = 8;

/// Anomalies of one device, drawn independently (several may apply, as in life).
/// Rates in parts per million, for devices outside farms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(pub u16);

impl Flags {
    /// Benchmarks at 12–45 % of the reference: a virtual slice (farm) or a throttled card.
    pub const VIRTUAL: u16 = 1;
    /// Benchmarks at 125–250 % of the reference: a forged result.
    pub const IMPOSSIBLE: u16 = 1 << 1;
    /// One benchmark reports another model.
    pub const MODEL_MISMATCH: u16 = 1 << 2;
    /// One benchmark reports another hardware id.
    pub const HARDWARE_MISMATCH: u16 = 1 << 3;
    /// No benchmark inside the epoch (some before it).
    pub const NO_BENCHMARK: u16 = 1 << 4;
    /// Zero or one speedtest inside the epoch.
    pub const FEW_SPEEDTESTS: u16 = 1 << 5;
    /// One rental by the device's own account.
    pub const SELF_RENTAL: u16 = 1 << 6;
    /// Registers the hardware id of another device (a re-registered machine).
    pub const DUPLICATE_HARDWARE: u16 = 1 << 7;
    /// Heartbeats start hours before `registered_at`.
    pub const EARLY_HEARTBEATS: u16 = 1 << 8;

    pub fn has(self, f: u16) -> bool {
        self.0 & f != 0
    }
}

/// Per-million rates of the independent anomalies, for devices outside farms.
const RATES: [(u16, u32); 8] = [
    (Flags::VIRTUAL, 3_000),
    (Flags::IMPOSSIBLE, 5_000),
    (Flags::MODEL_MISMATCH, 5_000),
    (Flags::HARDWARE_MISMATCH, 5_000),
    (Flags::NO_BENCHMARK, 8_000),
    (Flags::FEW_SPEEDTESTS, 15_000),
    (Flags::SELF_RENTAL, 5_000),
    (Flags::DUPLICATE_HARDWARE, 5_000),
];
/// Models the rules do not know yet.
const UNKNOWN_MODEL_PPM: u32 = 4_000;
/// Registered after the epoch ends.
const LATE_REGISTRATION_PPM: u32 = 4_000;
/// Registered during the epoch.
const NEW_REGISTRATION_PPM: u32 = 30_000;
/// Of the devices registered during or after the epoch, those that heartbeat first.
const EARLY_HEARTBEATS_PPM: u32 = 300_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Home,
    Pro,
    Datacenter,
    Farm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Datacenter machine: down for 20 minutes every few days.
    Always,
    /// Home machine: follows its owner's day.
    Diurnal,
    /// Bad power or network: sessions of minutes.
    Flaky,
    /// Switched on now and then: LOW_UPTIME.
    MostlyOff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Fiber,
    Cable,
    Dsl,
    /// Below bronze: LOW_BANDWIDTH.
    Poor,
}

pub struct Account {
    pub id: String,
    pub kind: Kind,
    pub first: u32,
    pub len: u32,
}

pub struct Device {
    pub account: u32,
    /// Index into [`MODELS`], then [`UNKNOWN_MODELS`].
    pub model: u8,
    pub gpu_count: u8,
    /// The device whose hardware id this one registers: itself, or another (duplicate).
    pub hardware_of: u32,
    pub ip: IpAddr,
    pub registered_at: i64,
    pub profile: Profile,
    pub net: Net,
    /// UTC offset of the owner, hours.
    pub tz: i8,
    /// Second of the minute at which it heartbeats, before jitter.
    pub second: u8,
    /// Online when its chain starts.
    pub online0: bool,
    /// First minute of the epoch at which its chain runs (it may heartbeat).
    pub first_minute: u32,
    pub flags: Flags,
    pub farm: bool,
}

/// Purposes of random streams: a stream is `(index << 8) | purpose`.
const S_LAYOUT: u64 = 1;
const S_ACCOUNT: u64 = 2;
const S_DEVICE: u64 = 3;
const S_HARDWARE: u64 = 4;
const S_UPTIME: u64 = 5;
const S_SPEED: u64 = 6;
const S_BENCH: u64 = 7;
const S_RENT: u64 = 8;
const S_RENTER: u64 = 9;
const S_ACCOUNT_ID: u64 = 10;

const DAY: i64 = 86_400;

/// The synthetic network of one epoch: registry, accounts, renters. Memory is
/// proportional to the number of devices; every event is derived on demand.
pub struct Network {
    key: [u8; 32],
    pub start: i64,
    pub end: i64,
    pub accounts: Vec<Account>,
    pub devices: Vec<Device>,
    /// Accounts that rent machines but own none.
    pub renters: Vec<String>,
    /// Device ids, [`ID_LEN`] bytes each.
    ids: String,
}

fn ppm(r: &mut impl Rng, p: u32) -> bool {
    r.random_range(0..1_000_000u32) < p
}

fn pick<T: Copy>(r: &mut impl Rng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|x| x.1).sum();
    let mut x = r.random_range(0..total);
    for &(v, w) in table {
        if x < w {
            return v;
        }
        x -= w;
    }
    unreachable!("x < total")
}

/// A Solana-style account key: 43 or 44 base58 characters.
fn account_key(r: &mut impl Rng) -> String {
    const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let len = if ppm(r, 100_000) { 43 } else { 44 };
    (0..len)
        .map(|_| char::from(B58[r.random_range(0..B58.len() as u32) as usize]))
        .collect()
}

/// An NVIDIA-style GPU UUID.
pub fn uuid(x: u128) -> String {
    format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        x >> 96,
        (x >> 80) & 0xffff,
        (x >> 64) & 0xffff,
        (x >> 48) & 0xffff,
        x & 0xffff_ffff_ffff
    )
}

fn random_u128(r: &mut impl RngCore) -> u128 {
    (u128::from(r.next_u64()) << 64) | u128::from(r.next_u64())
}

/// A public-looking IPv4 address (first octet 11..=223, skipping private and
/// loopback ranges), with the low `zero_bits` cleared to make room for a subnet.
fn ipv4(r: &mut impl Rng, zero_bits: u32) -> u32 {
    loop {
        let a: u32 = r.random();
        let first = a >> 24;
        if (11..=223).contains(&first) && ![100, 127, 169, 172, 192].contains(&first) {
            return a & !((1u32 << zero_bits) - 1);
        }
    }
}

fn ipv6(r: &mut impl RngCore) -> u128 {
    // 2a0X::/16 is RIPE space, where most residential IPv6 of Europe lives.
    (0x2a00u128 + u128::from(r.next_u32() % 16)) << 112
        | (u128::from(r.next_u64() & 0xffff_ffff_ffff) << 64)
}

/// UTC offsets of GPU owners: the Americas, Europe, Asia.
const TIMEZONES: [(i8, u32); 10] = [
    (-8, 10),
    (-5, 15),
    (-3, 5),
    (0, 10),
    (1, 15),
    (2, 5),
    (3, 5),
    (7, 5),
    (8, 20),
    (9, 10),
];

/// Transition probabilities per minute, in 1/65,536: (online → offline,
/// offline → online) for a profile at a local hour. `65536 / mean minutes`.
fn hazards(profile: Profile, local_hour: i64) -> (u32, u32) {
    let per = |mean_minutes: u32| 65_536 / mean_minutes;
    match profile {
        Profile::Always => (per(4_320), per(20)),
        Profile::Diurnal => match local_hour {
            9..=17 => (per(120), per(240)),
            18..=23 => (per(600), per(30)),
            _ => (per(900), per(60)),
        },
        Profile::Flaky => (per(25), per(15)),
        Profile::MostlyOff => (per(20), per(480)),
    }
}

/// The state of one device's uptime chain and its online minutes in the current hour.
/// 32 bytes, and all that the minute-by-minute scan reads, so a million of them
/// stay cache-friendly.
#[derive(Clone, Copy, Default)]
pub struct HourPlan {
    /// Bit m: online in minute m of the hour.
    pub mask: u64,
    /// Bits 2m..2m+2 (minutes 0..32, then 32..60): the heartbeat's jitter, 0–3 s.
    jitter: [u64; 2],
    /// The device's second of the minute, before jitter.
    second: u8,
    online: bool,
}

impl HourPlan {
    pub fn new(device: &Device) -> HourPlan {
        HourPlan {
            second: device.second,
            ..HourPlan::default()
        }
    }

    /// The second of minute `m` at which the device heartbeats: 0..=58.
    #[inline]
    pub fn second(&self, m: u32) -> u8 {
        let bits = self.jitter[(m / 32) as usize] >> (2 * (m % 32));
        self.second + (bits & 3) as u8
    }
}

pub struct Speedtest {
    pub ts: i64,
    /// Hundredths of Mbit/s.
    pub download: u64,
    pub upload: u64,
    /// Tenths of ms.
    pub latency: u64,
}

pub struct Benchmark {
    pub ts: i64,
    pub model: u8,
    pub hardware: String,
    /// Hundredths of tflops.
    pub tflops: u64,
}

pub struct Rental {
    pub id: String,
    pub renter: String,
    pub start: i64,
    pub end: i64,
}

impl Network {
    /// Builds the registry: account layout from one stream, then each account and
    /// each device from its own.
    pub fn new(seed: u64, devices: u32, start: i64, end: i64) -> Network {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(b"tallygen");
        let mut net = Network {
            key,
            start,
            end,
            accounts: Vec::new(),
            devices: Vec::with_capacity(devices as usize),
            renters: Vec::new(),
            ids: String::with_capacity(devices as usize * ID_LEN),
        };
        for i in 0..devices {
            net.ids.push_str(&device_id(i));
        }
        net.layout(devices);
        for a in 0..net.accounts.len() {
            let (first, len) = (net.accounts[a].first, net.accounts[a].len);
            net.account_devices(a as u32, first, len);
        }
        let renters = (devices / 25).max(5);
        net.renters = (0..renters)
            .map(|j| account_key(&mut net.rng(u64::from(j), S_RENTER)))
            .collect();
        net
    }

    fn rng(&self, index: u64, purpose: u64) -> ChaCha8Rng {
        let mut r = ChaCha8Rng::from_seed(self.key);
        r.set_stream((index << 8) | purpose);
        r
    }

    pub fn device_id(&self, i: u32) -> &str {
        let i = i as usize * ID_LEN;
        &self.ids[i..i + ID_LEN]
    }

    pub fn hardware_id(&self, i: u32) -> String {
        uuid(random_u128(&mut self.rng(u64::from(i), S_HARDWARE)))
    }

    /// Carves the devices into accounts of heavy-tailed sizes, with farms spread
    /// evenly among them.
    fn layout(&mut self, n: u32) {
        let mut r = self.rng(0, S_LAYOUT);
        let cap = (n / 8).clamp(1, 500);
        let farms = if n >= 500 { (n / 1_500).max(1) } else { 0 };
        let mut next_farm = 0;
        let mut placed = 0u32;
        while placed < n {
            let left = n - placed;
            let (kind, len) = if next_farm < farms && placed >= (next_farm + 1) * (n / (farms + 1))
            {
                next_farm += 1;
                (Kind::Farm, r.random_range(24..=64u32).min(left))
            } else {
                let u = r.random_range(1..=1u32 << 20);
                let len = ((1u32 << 20) / u).clamp(1, cap).min(left);
                let kind = match len {
                    1..=4 if ppm(&mut r, 850_000) => Kind::Home,
                    1..=49 => Kind::Pro,
                    _ => Kind::Datacenter,
                };
                (kind, len)
            };
            let a = self.accounts.len() as u64;
            self.accounts.push(Account {
                id: account_key(&mut self.rng(a, S_ACCOUNT_ID)),
                kind,
                first: placed,
                len,
            });
            placed += len;
        }
    }

    /// The devices of one account: the account decides the fleet (models, IPs,
    /// where its owner lives); each device then draws its own quirks.
    fn account_devices(&mut self, a: u32, first: u32, len: u32) {
        let kind = self.accounts[a as usize].kind;
        let mut ar = self.rng(u64::from(a), S_ACCOUNT);
        let models: &[(u8, u32)] = match kind {
            Kind::Home => &[
                (RTX4090, 30),
                (RTX3080, 25),
                (RTX4070, 25),
                (MAC, 12),
                (T4, 3),
                (L40S, 2),
                (A100, 2),
                (H100, 1),
            ],
            Kind::Pro => &[(H100, 10), (A100, 20), (L40S, 20), (RTX4090, 35), (T4, 15)],
            Kind::Datacenter => &[(H100, 40), (A100, 35), (L40S, 25)],
            Kind::Farm => &[(RTX4090, 1)],
        };
        let main_model = pick(&mut ar, models);
        let tz = pick(&mut ar, &TIMEZONES);
        let v6 = ppm(
            &mut ar,
            match kind {
                Kind::Home => 150_000,
                Kind::Pro => 100_000,
                Kind::Datacenter => 300_000,
                Kind::Farm => 0,
            },
        );
        // A /22 (or /118) for the account, its machines numbered from `host`.
        let (base4, base6) = (ipv4(&mut ar, 10), ipv6(&mut ar));
        let host = ar.random_range(1..200u32);
        // How many devices share one address: 0 = one address each.
        let crowd = match kind {
            Kind::Home => len,
            Kind::Pro if ppm(&mut ar, 150_000) => 10,
            Kind::Datacenter if ppm(&mut ar, 80_000) => 12,
            Kind::Farm => len / 2 + 1,
            _ => 0,
        };
        let farm_registered = self.start - ar.random_range(DAY..=30 * DAY);
        let minutes = ((self.end - self.start) / 60) as u32;

        for k in 0..len {
            let i = first + k;
            let mut r = self.rng(u64::from(i), S_DEVICE);
            let farm = kind == Kind::Farm;
            let mut model = match kind {
                Kind::Home if ppm(&mut r, 500_000) => main_model,
                Kind::Home => pick(&mut r, models),
                Kind::Pro | Kind::Datacenter if ppm(&mut r, 250_000) => pick(&mut r, models),
                _ => main_model,
            };
            if !farm && ppm(&mut r, UNKNOWN_MODEL_PPM) {
                model = MODELS.len() as u8 + r.random_range(0..UNKNOWN_MODELS.len() as u8);
            }
            let gpu_count = match (kind, model) {
                (_, MAC) | (Kind::Farm, _) => 1,
                (Kind::Home, _) => pick(&mut r, &[(1, 80), (2, 15), (4, 5)]),
                (Kind::Pro, _) => pick(&mut r, &[(1, 30), (2, 30), (4, 25), (8, 15)]),
                _ => pick(&mut r, &[(1, 10), (4, 30), (8, 60)]),
            };
            let slot = host + k.checked_div(crowd).unwrap_or(k); // crowd 0: one each
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::from(base6 | u128::from(slot)))
            } else {
                IpAddr::V4(Ipv4Addr::from(base4 + slot))
            };
            let profile = match kind {
                Kind::Home => pick(
                    &mut r,
                    &[
                        (Profile::Diurnal, 70),
                        (Profile::Flaky, 15),
                        (Profile::MostlyOff, 10),
                        (Profile::Always, 5),
                    ],
                ),
                Kind::Pro => pick(
                    &mut r,
                    &[
                        (Profile::Always, 75),
                        (Profile::Diurnal, 12),
                        (Profile::Flaky, 9),
                        (Profile::MostlyOff, 4),
                    ],
                ),
                Kind::Datacenter => pick(&mut r, &[(Profile::Always, 92), (Profile::Flaky, 8)]),
                Kind::Farm => Profile::Always,
            };
            let net = match kind {
                Kind::Home => pick(
                    &mut r,
                    &[
                        (Net::Cable, 50),
                        (Net::Fiber, 27),
                        (Net::Dsl, 15),
                        (Net::Poor, 8),
                    ],
                ),
                Kind::Pro => pick(
                    &mut r,
                    &[
                        (Net::Fiber, 60),
                        (Net::Cable, 33),
                        (Net::Dsl, 5),
                        (Net::Poor, 2),
                    ],
                ),
                _ => pick(&mut r, &[(Net::Fiber, 95), (Net::Cable, 5)]),
            };
            let mut flags = 0u16;
            for (f, rate) in RATES {
                if !farm && ppm(&mut r, rate) {
                    flags |= f;
                }
            }
            if farm {
                flags |= Flags::VIRTUAL;
                if ppm(&mut r, 300_000) {
                    flags |= Flags::DUPLICATE_HARDWARE;
                }
                if ppm(&mut r, 100_000) {
                    flags |= Flags::SELF_RENTAL;
                }
            }
            let registered_at = if farm {
                farm_registered + r.random_range(0..6 * 3_600)
            } else if ppm(&mut r, LATE_REGISTRATION_PPM) {
                self.end + r.random_range(0..3 * DAY)
            } else if ppm(&mut r, NEW_REGISTRATION_PPM) {
                self.start + r.random_range(0..self.end - self.start)
            } else {
                self.start - r.random_range(3_600..400 * DAY)
            };
            // The chain starts when the machine is set up: a few minutes after
            // registering, or hours before for some (heartbeats before registration).
            let mut first_minute = (registered_at - self.start).div_euclid(60);
            if first_minute > 0 {
                if ppm(&mut r, EARLY_HEARTBEATS_PPM) {
                    flags |= Flags::EARLY_HEARTBEATS;
                    first_minute -= r.random_range(10..=360);
                } else {
                    first_minute += r.random_range(0..=10);
                }
            }
            let first_minute = first_minute.clamp(0, i64::from(minutes)) as u32;
            let hardware_of = if (flags & Flags::DUPLICATE_HARDWARE) == 0 {
                i
            } else if farm {
                first + r.random_range(0..3u32.min(len))
            } else if k > 0 {
                i - 1
            } else if i > 0 {
                r.random_range(0..i)
            } else {
                flags &= !Flags::DUPLICATE_HARDWARE;
                i
            };
            let online0 = ppm(
                &mut r,
                match profile {
                    Profile::Always => 990_000,
                    Profile::Diurnal => 650_000,
                    Profile::Flaky => 600_000,
                    Profile::MostlyOff => 40_000,
                },
            );
            self.devices.push(Device {
                account: a,
                model,
                gpu_count,
                hardware_of,
                ip,
                registered_at,
                profile,
                net,
                tz,
                second: r.random_range(0..=55),
                online0,
                first_minute,
                flags: Flags(flags),
                farm,
            });
        }
    }

    /// Steps device `i`'s chain through hour `hour` of the epoch. One ChaCha block
    /// run per device and hour (a word per minute, at a fixed position of the
    /// device's stream), so the plan of an hour never depends on another device.
    pub fn plan_hour(&self, i: u32, hour: u32, plan: &mut HourPlan) {
        let d = &self.devices[i as usize];
        plan.mask = 0;
        plan.jitter = [0; 2];
        let first = hour * 60;
        if first + 60 <= d.first_minute {
            return;
        }
        let mut r = self.rng(u64::from(i), S_UPTIME);
        r.set_word_pos(u128::from(hour) * 64);
        let utc_hour = (self.start + i64::from(hour) * 3_600).rem_euclid(DAY) / 3_600;
        let (off, on) = hazards(d.profile, (utc_hour + i64::from(d.tz)).rem_euclid(24));
        for m in 0..60u32 {
            let w = r.next_u32();
            let minute = first + m;
            if minute < d.first_minute {
                continue;
            }
            if minute == d.first_minute {
                plan.online = d.online0;
            }
            if plan.online {
                plan.mask |= 1 << m;
                plan.jitter[(m / 32) as usize] |= u64::from((w >> 16) & 3) << (2 * (m % 32));
            }
            let u = w & 0xffff;
            plan.online = if plan.online { u >= off } else { u < on };
        }
    }

    /// A time in the epoch, uniformly, once the device is set up: after it
    /// registers, or from the start if it registers only after the epoch.
    fn in_epoch(&self, r: &mut impl Rng, d: &Device) -> i64 {
        let lo = if d.registered_at < self.end {
            d.registered_at.clamp(self.start, self.end - 60)
        } else {
            self.start
        };
        r.random_range(lo..self.end)
    }

    /// Device `i`'s speedtests, by time. Medians land in the tier of its connection;
    /// each test varies around the connection's level.
    pub fn speedtests(&self, i: u32, out: &mut Vec<Speedtest>) {
        out.clear();
        let d = &self.devices[i as usize];
        let mut r = self.rng(u64::from(i), S_SPEED);
        // Download Mbit/s, upload as a percentage of it (asymmetric except on
        // fiber) and latency ms: lowest and highest of each.
        let ((dl0, dl1), (up0, up1), (la0, la1)) = match d.net {
            Net::Fiber => ((600, 2_000), (40, 100), (3, 25)),
            Net::Cable => ((120, 480), (25, 60), (12, 55)),
            Net::Dsl => ((28, 95), (20, 50), (30, 110)),
            Net::Poor => ((4, 24), (20, 50), (60, 250)),
        };
        let dl: u64 = r.random_range(dl0 * 100..=dl1 * 100);
        let ul: u64 = dl * r.random_range(up0..=up1) / 100;
        let la: u64 = r.random_range(la0 * 10..=la1 * 10);
        let n = if d.flags.has(Flags::FEW_SPEEDTESTS) {
            r.random_range(0..=1)
        } else {
            r.random_range(2..=6)
        };
        // A few devices also have a test from the day before (ignored: outside).
        let before = ppm(&mut r, 50_000);
        for k in 0..n + u32::from(before) {
            let ts = if k == n {
                self.start - r.random_range(60..DAY)
            } else {
                self.in_epoch(&mut r, d)
            };
            out.push(Speedtest {
                ts,
                download: dl * r.random_range(80..=115) / 100,
                upload: ul * r.random_range(80..=115) / 100,
                latency: la * r.random_range(85..=140) / 100,
            });
        }
        out.sort_by_key(|s| s.ts);
    }

    /// Device `i`'s benchmarks, by time: near the reference, unless it is virtual,
    /// forged, or reports another model or card.
    pub fn benchmarks(&self, i: u32, out: &mut Vec<Benchmark>) {
        out.clear();
        let d = &self.devices[i as usize];
        let mut r = self.rng(u64::from(i), S_BENCH);
        let flags = d.flags;
        let (n, outside) = if flags.has(Flags::NO_BENCHMARK) {
            (0, r.random_range(0..=2))
        } else {
            (r.random_range(1..=3), 0)
        };
        let (lo, hi) = if flags.has(Flags::VIRTUAL) {
            (12, 45)
        } else if flags.has(Flags::IMPOSSIBLE) {
            (125, 250)
        } else {
            (86, 106)
        };
        let reference = u64::from(model_tflops(d.model));
        let hardware = self.hardware_id(d.hardware_of);
        for k in 0..n + outside {
            let ts = if k >= n {
                self.start - r.random_range(60..30 * DAY)
            } else {
                self.in_epoch(&mut r, d)
            };
            let mut b = Benchmark {
                ts,
                model: d.model,
                hardware: hardware.clone(),
                tflops: reference * r.random_range(lo..=hi) / 100,
            };
            if k == 0 && flags.has(Flags::MODEL_MISMATCH) {
                b.model = (d.model + r.random_range(1..MODELS.len() as u8)) % MODELS.len() as u8;
            }
            if k == 0 && flags.has(Flags::HARDWARE_MISMATCH) {
                b.hardware = uuid(random_u128(&mut r));
            }
            out.push(b);
        }
        out.sort_by_key(|b| b.ts);
    }

    /// Device `i`'s rentals: datacenter cards are rented more; some rentals overlap,
    /// some start before the epoch or end after it.
    pub fn rentals(&self, i: u32, out: &mut Vec<Rental>) {
        out.clear();
        let d = &self.devices[i as usize];
        let mut r = self.rng(u64::from(i), S_RENT);
        let per_mille = match d.model {
            _ if d.farm => 0,
            H100 => 500,
            A100 => 450,
            L40S => 350,
            RTX4090 => 150,
            T4 => 120,
            RTX3080 => 80,
            RTX4070 => 60,
            MAC => 20,
            _ => 50,
        };
        let mut n = 0;
        if r.random_range(0..1_000) < per_mille {
            n = 1 + u32::from(ppm(&mut r, 250_000)) + u32::from(ppm(&mut r, 80_000));
        }
        let span = self.end - self.start + DAY;
        let own = &self.accounts[d.account as usize].id;
        for k in 0..n {
            let start = self.start - DAY + r.random_range(0..span / 60) * 60;
            let end = start + r.random_range(30..=2_160) * 60;
            let renter = self.renter(&mut r, d.account);
            out.push(Rental {
                id: format!("rent-{}-{k}", &self.device_id(i)[1..]),
                renter: renter.clone(),
                start,
                end,
            });
            if ppm(&mut r, 150_000) {
                // The renter extends with a second, overlapping booking.
                let s = r.random_range(start..end);
                out.push(Rental {
                    id: format!("rent-{}-{k}b", &self.device_id(i)[1..]),
                    renter,
                    start: s,
                    end: s + r.random_range(30..=600) * 60,
                });
            }
        }
        if d.flags.has(Flags::SELF_RENTAL) {
            let start = r.random_range(self.start..self.end);
            out.push(Rental {
                id: format!("rent-{}-self", &self.device_id(i)[1..]),
                renter: own.clone(),
                start,
                end: start + r.random_range(60..=1_440) * 60,
            });
        }
        out.sort_by_key(|x| x.start);
    }

    /// Who rents: mostly accounts that own no device, sometimes another miner.
    fn renter(&self, r: &mut impl Rng, own: u32) -> String {
        if self.accounts.len() > 1 && ppm(r, 350_000) {
            let mut a = r.random_range(0..self.accounts.len() as u32);
            if a == own {
                a = (a + 1) % self.accounts.len() as u32;
            }
            self.accounts[a as usize].id.clone()
        } else {
            self.renters[r.random_range(0..self.renters.len() as u32) as usize].clone()
        }
    }
}

/// `d` and 7 digits.
pub fn device_id(i: u32) -> String {
    format!("d{i:07}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in model table is `rules/v1.toml`'s (names and reference tflops).
    #[test]
    fn models_match_rules_v1() {
        let rules = include_str!("../../../rules/v1.toml");
        for (name, hundredths) in MODELS {
            let line = rules
                .lines()
                .find(|l| l.contains(&format!("name = \"{name}\"")))
                .unwrap_or_else(|| panic!("{name} not in rules/v1.toml"));
            let value = line.split("tflops = \"").nth(1).unwrap();
            let value = &value[..value.find('"').unwrap()];
            let (int, frac) = value.split_once('.').unwrap_or((value, ""));
            let parsed: u32 = format!("{int}{frac:0<2}").parse().unwrap();
            assert_eq!(parsed, hundredths, "{line}");
        }
        for (name, _) in UNKNOWN_MODELS {
            assert!(!rules.contains(&format!("\"{name}\"")));
        }
    }

    #[test]
    fn account_sizes_are_heavy_tailed() {
        let net = Network::new(7, 20_000, 0, DAY);
        let sizes: Vec<u32> = net.accounts.iter().map(|a| a.len).collect();
        let singles = sizes.iter().filter(|&&s| s == 1).count();
        assert!(singles * 3 > sizes.len(), "{singles} of {}", sizes.len());
        assert!(sizes.iter().any(|&s| s >= 200), "{:?}", sizes.iter().max());
        assert_eq!(sizes.iter().sum::<u32>(), 20_000);
    }
}
