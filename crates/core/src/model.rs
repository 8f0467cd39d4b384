//! The tables the scoring core reads: the registry, the per-device measurement table
//! (the contract between aggregation and scoring), and dispute decisions.

use std::net::IpAddr;

use rust_decimal::Decimal;

/// One row of `devices.csv` (SPEC 2.2), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub account_id: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    pub hardware_id: String,
    /// Canonical form: an IPv4-mapped IPv6 address is its IPv4 address.
    pub ip: IpAddr,
    /// Unix seconds.
    pub registered_at: i64,
}

/// The per-device measurement table: everything the scoring stage needs to know of a
/// device's event logs, exact. Aggregation produces one per registry device (the
/// default, all zero and empty, for a device with no events), in any engine; scoring
/// takes it as given. Column by column, with the SPEC step that defines it:
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measurement {
    /// Heartbeat rows with `start <= ts < end` and `ts >= registered_at`.
    pub heartbeats: u64,
    /// SPEC 3.2.1: distinct slots holding at least one of those heartbeats.
    pub online_slots: u64,
    /// Longest run of consecutive online slots.
    pub longest_streak_slots: u64,
    /// SPEC 3.2.2: in-epoch speedtest rows, and the median of each column.
    pub speedtests: u64,
    pub median_download_mbps: Option<Decimal>,
    pub median_upload_mbps: Option<Decimal>,
    pub median_latency_ms: Option<Decimal>,
    /// SPEC 3.2.3: in-epoch benchmark rows and their median tflops.
    pub benchmarks: u64,
    pub median_tflops: Option<Decimal>,
    /// In-epoch benchmarks reporting a `gpu_model` other than the registry's, and the
    /// distinct models they report, sorted.
    pub benchmarks_other_model: u64,
    pub other_models: Vec<String>,
    /// Likewise for `hardware_id`.
    pub benchmarks_other_hardware: u64,
    pub other_hardware_ids: Vec<String>,
    /// SPEC 3.2.4: seconds in the union of rentals by other accounts, clipped to the
    /// epoch; and in the union of rentals by the device's own account.
    pub rental_seconds: u64,
    pub self_rental_seconds: u64,
    /// Seconds of `rental_seconds` that fall inside the device's online slots (SPEC 8,
    /// used when the rules require rentals to be online).
    pub rental_online_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Reinstate,
    Exclude,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "reinstate" => Some(Action::Reinstate),
            "exclude" => Some(Action::Exclude),
            _ => None,
        }
    }
}

/// One row of `overrides.csv` (SPEC 7): a decision on a dispute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub device_id: String,
    pub action: Action,
    pub ticket: String,
    pub note: String,
}
