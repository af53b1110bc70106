//! The audit log's data: the calendar of its months, and the generator of its rows (users,
//! actions, timestamps) from a fixed seed.

use super::*;

/// (action, share of rows): logins dominate, as in most audit logs.
pub(crate) const ACTIONS: [(&str, f64); 8] = [
    ("login", 0.40),
    ("logout", 0.25),
    ("update_policy", 0.10),
    ("create_key", 0.07),
    ("rotate_key", 0.07),
    ("create_policy", 0.05),
    ("delete_policy", 0.03),
    ("delete_key", 0.03),
];

/// Microseconds since the epoch of the first instant of month `m` counted from January 2024.
pub(crate) fn month_start_us(m: i64) -> i64 {
    let (y, mo) = (2024 + m.div_euclid(12), m.rem_euclid(12) + 1);
    days_from_civil(y, mo, 1) * 86_400_000_000
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn partition_name(m: i64) -> String {
    format!("audit_logs_{}_{:02}", 2024 + m.div_euclid(12), m.rem_euclid(12) + 1)
}

pub(crate) fn literal_ts(us: i64) -> String {
    format!("'{}'", harness::kit::fixtures::ts(us))
}

pub(crate) fn system_time(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

pub(crate) fn user_id(i: u64) -> Uuid {
    Uuid::from_u64_pair(0x000a_0d17_u64 << 40 | SEED, i)
}

pub(crate) fn action(r: f64) -> &'static str {
    let mut acc = 0.0;
    for (a, share) in ACTIONS {
        acc += share;
        if r < acc {
            return a;
        }
    }
    ACTIONS[ACTIONS.len() - 1].0
}

/// Rows of `audit_logs` for `months` months, `per_month` each, in time order, as COPY text.
pub(crate) struct AuditGenerator {
    rng: SplitMix64,
    per_month: i64,
    month: i64,
    k: i64,
    id: i64,
}

impl AuditGenerator {
    pub(crate) fn new(seed: u64, per_month: i64) -> Self {
        Self { rng: SplitMix64::new(seed), per_month, month: 0, k: 0, id: 0 }
    }

    pub(crate) fn next_row(&mut self, out: &mut String) {
        let (start, end) = (month_start_us(self.month), month_start_us(self.month + 1));
        let step = (end - start) / self.per_month;
        let at = start + self.k * step + (self.rng.next_u64() % step.max(1) as u64) as i64;
        self.id += 1;
        self.k += 1;
        if self.k == self.per_month {
            self.k = 0;
            self.month += 1;
        }
        let user = user_id(self.rng.below(USERS as usize) as u64);
        let action = action(self.rng.next_f64());
        let object = self.rng.below(100_000);
        let ip = self.rng.next_u64();
        let ts = harness::kit::fixtures::ts(at);
        let _ = writeln!(
            out,
            "{}\t{user}\t{action}\t{}/{object}\t{{\"ip\":\"10.{}.{}.{}\",\"agent\":\"svc/1.4\"}}\t{}",
            self.id,
            if action.ends_with("key") { "key" } else { "policy" },
            ip & 0xff,
            (ip >> 8) & 0xff,
            (ip >> 16) & 0xff,
            ts
        );
    }
}
