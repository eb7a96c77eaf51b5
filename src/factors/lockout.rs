//! The lockout rule shared by every second factor: failed TOTP, recovery and e-mail
//! codes count together per account (and per client address). Pure arithmetic over
//! a record the store keeps, so a restart or a new cookie changes nothing.

use std::time::{Duration, SystemTime};

/// The hard ceiling DESIGN.md sets: never more than 100 failures in a row.
pub const MAX_FAILURES_CEILING: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed before attempts are refused (1 to 100).
    pub max_failures: u32,
    /// Failures older than this no longer count.
    pub window: Duration,
    /// The first refusal lasts this long; each failure past the limit doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 10,
            window: Duration::from_secs(15 * 60),
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60 * 60),
        }
    }
}

/// One attempt counted before its check: the record before and after, so that a
/// success can take exactly this charge back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub before: FailureRecord,
    pub after: FailureRecord,
}

/// What the store keeps for one account or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureRecord {
    /// Failures in a row within the window.
    pub count: u32,
    pub last_failure: Option<SystemTime>,
    /// No attempt is even checked before this.
    pub locked_until: Option<SystemTime>,
}

impl FailureRecord {
    /// The record as a store of whole seconds keeps it.
    fn to_seconds(self) -> (u32, Option<u64>, Option<u64>) {
        let seconds = |t: Option<SystemTime>| {
            t.map(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            })
        };
        (self.count, seconds(self.last_failure), seconds(self.locked_until))
    }
}

impl LockoutPolicy {
    /// How long attempts are still refused, if they are.
    pub fn locked_for(&self, record: &FailureRecord, now: SystemTime) -> Option<Duration> {
        record
            .locked_until
            .and_then(|until| until.duration_since(now).ok())
            .filter(|d| !d.is_zero())
    }

    /// Counts an attempt as a failure before it is checked: the record after it, or
    /// how long attempts are still refused (then nothing is counted). Checking and
    /// counting in one step is what keeps parallel attempts within `max_failures`.
    pub fn charge(&self, record: &FailureRecord, now: SystemTime) -> Result<FailureRecord, Duration> {
        match self.locked_for(record, now) {
            Some(wait) => Err(wait),
            None => Ok(self.after_failure(record, now)),
        }
    }

    /// Takes back one charged attempt that turned out not to be a failure. Where
    /// nothing was counted since, the record is as before the charge (its window
    /// and lock too); otherwise one failure less, and a lock only while the rest
    /// still reach the limit.
    pub fn refund(&self, record: &FailureRecord, charge: &Charge) -> FailureRecord {
        // The store keeps whole seconds: compare at that precision.
        if record.to_seconds() == charge.after.to_seconds() {
            return charge.before;
        }
        let count = record.count.saturating_sub(1);
        let limit = self.max_failures.clamp(1, MAX_FAILURES_CEILING);
        FailureRecord {
            count,
            last_failure: record.last_failure,
            locked_until: if count < limit { None } else { record.locked_until },
        }
    }

    /// The record after one more failure at `now`.
    pub fn after_failure(&self, record: &FailureRecord, now: SystemTime) -> FailureRecord {
        let expired = record
            .last_failure
            .is_some_and(|last| now.duration_since(last).unwrap_or(Duration::ZERO) > self.window);
        let count = if expired {
            1
        } else {
            record.count.saturating_add(1)
        };
        let limit = self.max_failures.clamp(1, MAX_FAILURES_CEILING);
        let locked_until = if count >= limit {
            let doublings = (count - limit).min(30);
            let delay = self
                .base_delay
                .checked_mul(1u32 << doublings)
                .unwrap_or(self.max_delay)
                .min(self.max_delay);
            Some(now + delay)
        } else {
            None
        };
        FailureRecord {
            count,
            last_failure: Some(now),
            locked_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn the_limit_locks_and_each_further_failure_doubles_the_delay() {
        let policy = LockoutPolicy::default();
        let mut record = FailureRecord::default();
        for i in 0..9 {
            record = policy.after_failure(&record, at(i));
            assert_eq!(policy.locked_for(&record, at(i)), None, "failure {}", i + 1);
        }
        record = policy.after_failure(&record, at(9));
        assert_eq!(record.count, 10);
        assert_eq!(policy.locked_for(&record, at(9)), Some(Duration::from_secs(60)));
        assert_eq!(policy.locked_for(&record, at(9 + 60)), None);
        record = policy.after_failure(&record, at(70));
        assert_eq!(policy.locked_for(&record, at(70)), Some(Duration::from_secs(120)));
        for i in 0..20 {
            record = policy.after_failure(&record, at(71 + i));
        }
        assert_eq!(
            policy.locked_for(&record, at(90)),
            Some(Duration::from_secs(3600)),
            "capped"
        );
    }

    #[test]
    fn a_charge_is_refused_while_locked_and_a_refund_undoes_only_itself() {
        let policy = LockoutPolicy::default();
        let mut record = FailureRecord::default();
        for i in 0..9 {
            record = policy.charge(&record, at(i)).unwrap();
        }
        // The tenth charge locks; taken back alone, the record is as before it.
        let tenth = Charge {
            before: record,
            after: policy.charge(&record, at(9)).unwrap(),
        };
        assert_eq!(policy.charge(&tenth.after, at(10)), Err(Duration::from_secs(59)));
        assert_eq!(policy.refund(&tenth.after, &tenth), record);
        // Another failure counted in between stays counted, and so does its lock.
        let eleventh = policy.after_failure(&tenth.after, at(9));
        let refunded = policy.refund(&eleventh, &tenth);
        assert_eq!(
            (refunded.count, refunded.locked_until),
            (10, eleventh.locked_until)
        );
        // The store keeps whole seconds; the refund still recognises its own charge.
        let stored = FailureRecord {
            last_failure: Some(at(9)),
            locked_until: tenth.after.locked_until,
            ..tenth.after
        };
        let sub_second = Charge {
            after: FailureRecord {
                last_failure: Some(at(9) + Duration::from_millis(400)),
                ..tenth.after
            },
            ..tenth
        };
        assert_eq!(policy.refund(&stored, &sub_second), record);
        // A success after the window: the window is not moved by it.
        let old = FailureRecord {
            count: 3,
            last_failure: Some(at(0)),
            locked_until: None,
        };
        let late = Charge {
            before: old,
            after: policy.charge(&old, at(5000)).unwrap(),
        };
        assert_eq!(policy.refund(&late.after, &late), old);
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let policy = LockoutPolicy::default();
        let mut record = FailureRecord::default();
        for i in 0..5 {
            record = policy.after_failure(&record, at(i));
        }
        record = policy.after_failure(&record, at(4 + 15 * 60 + 1));
        assert_eq!(record.count, 1);
    }

    #[test]
    fn the_ceiling_holds_whatever_is_configured() {
        let policy = LockoutPolicy {
            max_failures: 1000,
            ..LockoutPolicy::default()
        };
        let mut record = FailureRecord::default();
        for i in 0..100 {
            record = policy.after_failure(&record, at(i));
        }
        assert!(
            policy.locked_for(&record, at(100)).is_some(),
            "locked by the 100th failure in a row"
        );
    }
}
