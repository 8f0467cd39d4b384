//! Property tests of the scoring core's invariants (SPEC 3.3, 4).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use rust_decimal::Decimal;
use tally_core::{settle, Device, Epoch, Measurement, Rules};

const V1: &str = include_str!("../../../rules/v1.toml");
const MODELS: [&str; 4] = ["H100-80GB", "RTX-4090", "T4", "RTX-9999"];

fn epoch(pool_units: u128) -> Epoch {
    Epoch {
        id: "p".into(),
        start: 0,
        end: 86_400,
        pool_units,
        decimals: 6,
        rules: "v1".into(),
    }
}

#[derive(Debug, Clone)]
struct Dev {
    account: u8,
    model: usize,
    gpus: u32,
    hw: u8,
    ip: u8,
    registered: i64,
    m: Measurement,
}

fn dec(n: u64, places: u32) -> Decimal {
    Decimal::new(n as i64, places)
}

fn device() -> impl Strategy<Value = Dev> {
    (
        (
            0u8..6,
            0usize..4,
            1u32..=8,
            0u8..40,
            0u8..4,
            prop_oneof![Just(-100i64), 0i64..90_000],
        ),
        (
            0u64..=288,
            0u64..5,
            0u64..2_000_000u64,
            0u64..3,
            500_000u64..1_300_000,
            0u64..86_400,
            0u64..7200,
        ),
    )
        .prop_map(
            |(
                (account, model, gpus, hw, ip, registered),
                (slots, tests, mbps, bms, ratio_e6, rent, own),
            )| {
                let tflops_ref = [dec(9894, 1), dec(1652, 1), dec(650, 1), dec(100, 0)][model];
                Dev {
                    account,
                    model,
                    gpus,
                    hw,
                    ip,
                    registered,
                    m: Measurement {
                        heartbeats: slots,
                        online_slots: slots,
                        longest_streak_slots: slots.min(1),
                        speedtests: tests,
                        median_download_mbps: (tests > 0).then(|| dec(mbps, 3)),
                        median_upload_mbps: (tests > 0).then(|| dec(mbps / 2, 3)),
                        median_latency_ms: (tests > 0).then(|| dec(20 + mbps % 100, 0)),
                        benchmarks: bms,
                        median_tflops: (bms > 0)
                            .then(|| (tflops_ref * dec(ratio_e6, 6)).normalize()),
                        rental_seconds: rent,
                        self_rental_seconds: own,
                        ..Measurement::default()
                    },
                }
            },
        )
}

fn tables(devs: &[Dev]) -> (BTreeMap<String, Device>, BTreeMap<String, Measurement>) {
    let mut reg = BTreeMap::new();
    let mut ms = BTreeMap::new();
    for (i, d) in devs.iter().enumerate() {
        let id = format!("dev{i:03}");
        reg.insert(
            id.clone(),
            Device {
                device_id: id.clone(),
                account_id: format!("acct{}", d.account),
                gpu_model: MODELS[d.model].into(),
                gpu_count: d.gpus,
                hardware_id: format!("hw{}", d.hw),
                ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, d.ip)),
                registered_at: d.registered,
            },
        );
        ms.insert(id, d.m.clone());
    }
    (reg, ms)
}

fn rules() -> Rules {
    // Two devices per IP, so that IP_CAP fires in small generated registries.
    Rules::parse(
        "v1.toml",
        &V1.replace("max_devices_per_ip = 8", "max_devices_per_ip = 2"),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The split adds up to the pool whenever any account has points.
    #[test]
    fn split_sums_to_pool(devs in prop::collection::vec(device(), 0..30), pool in 1u128..10u128.pow(24)) {
        let (reg, ms) = tables(&devs);
        let s = settle(&epoch(pool), &rules(), 288, &reg, &ms, &BTreeMap::new());
        let units: u128 = s.accounts.iter().map(|a| a.share.units()).sum();
        if s.total_weight > 0 { prop_assert_eq!(units, pool); } else { prop_assert_eq!(units, 0); }
        prop_assert_eq!(s.allocated_units + s.unallocated_units(), pool);
    }

    /// SPEC 3.3: v1 is linear, so moving a device that rents nothing to another
    /// account changes no device's points.
    #[test]
    fn moving_devices_between_accounts_changes_no_points(
        devs in prop::collection::vec(device(), 1..30),
        moves in prop::collection::vec((0usize..30, 0u8..6), 1..10),
    ) {
        let (reg, ms) = tables(&devs);
        let before = settle(&epoch(1_000_000), &rules(), 288, &reg, &ms, &BTreeMap::new());
        let mut moved = devs.clone();
        for (i, acct) in moves {
            let i = i % moved.len();
            if moved[i].m.rental_seconds == 0 && moved[i].m.self_rental_seconds == 0 {
                moved[i].account = acct;
            }
        }
        let (reg2, ms2) = tables(&moved);
        let after = settle(&epoch(1_000_000), &rules(), 288, &reg2, &ms2, &BTreeMap::new());
        for (a, b) in before.devices.iter().zip(&after.devices) {
            prop_assert_eq!(a.points, b.points, "{}", a.device.device_id);
            prop_assert_eq!(a.eligible, b.eligible);
        }
        prop_assert_eq!(before.total_points, after.total_points);
    }

    /// More uptime never earns a device fewer points.
    #[test]
    fn more_uptime_never_earns_less(devs in prop::collection::vec(device(), 1..20), which in 0usize..20, extra in 1u64..100) {
        let (reg, ms) = tables(&devs);
        let before = settle(&epoch(1_000_000), &rules(), 288, &reg, &ms, &BTreeMap::new());
        let mut more = devs.clone();
        let i = which % more.len();
        more[i].m.online_slots = (more[i].m.online_slots + extra).min(288);
        let (reg2, ms2) = tables(&more);
        let after = settle(&epoch(1_000_000), &rules(), 288, &reg2, &ms2, &BTreeMap::new());
        prop_assert!(after.devices[i].points >= before.devices[i].points);
    }

    /// Points keep exactly `points_decimals` places and an excluded device earns 0.
    #[test]
    fn excluded_devices_earn_nothing(devs in prop::collection::vec(device(), 1..30)) {
        let (reg, ms) = tables(&devs);
        let s = settle(&epoch(1_000_000), &rules(), 288, &reg, &ms, &BTreeMap::new());
        for d in &s.devices {
            prop_assert_eq!(d.points.scale(), 6);
            prop_assert_eq!(d.eligible, d.exclusions.is_empty());
            if !d.eligible { prop_assert!(d.points.is_zero()); }
            prop_assert_eq!(d.points, d.uptime_points + d.rental_points);
        }
    }
}
