//! Slowing down password guessing without locking anyone out (NIST SP 800-63B §5.2.2).
//!
//! Each key (an account, or a source address) may fail a few times freely; after that every
//! further failure makes the next attempt wait, 1 s, 2 s, 4 s … up to a cap. A hard lock-out
//! would let anyone who knows a colleague's user ID keep them out for a shift; a delay capped
//! at half a minute costs a guesser thousands of times more than it costs the colleague, and a
//! supervisor can clear it at once. An attempt made while a key must wait is refused without
//! the password being looked at, so a right password then reveals nothing.
//!
//! Pure: every method takes "now"; the caller keeps the state (in memory: a restart forgets
//! the delays, which only ever shortens a wait).

use std::collections::BTreeMap;

/// Microseconds since the Unix epoch, UTC (the store's time type).
pub type Micros = i64;

/// How a kind of key is slowed down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Consecutive failures allowed before any delay.
    pub free_failures: u32,
    /// The first delay, doubled at each further failure.
    pub delay_first_us: Micros,
    /// The longest delay.
    pub delay_max_us: Micros,
    /// Failures are forgotten this long after the last one.
    pub forget_after_us: Micros,
    /// Keys remembered at most (a guesser inventing user IDs cannot grow memory without end);
    /// when full, the key whose last failure is oldest is forgotten first.
    pub keys_max: usize,
}

/// The state of one key that has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Consecutive failures.
    pub failures: u32,
    /// The last failure.
    pub last_failure_at: Micros,
    /// The next attempt is looked at from this time on (equal to the last failure when there
    /// is no delay).
    pub allowed_from: Micros,
    /// Attempts refused while waiting.
    pub refused: u32,
}

impl Standing {
    /// Whether this key must wait at `now`.
    pub fn waiting(&self, now: Micros) -> bool {
        self.allowed_from > now
    }
}

/// What an attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Look at the password.
    Check,
    /// Refuse without looking, until this time.
    Wait {
        /// When the next attempt is looked at.
        until: Micros,
    },
}

/// The failures of keys of one kind.
#[derive(Debug, Clone)]
pub struct Throttle<K: Ord + Clone> {
    policy: ThrottlePolicy,
    keys: BTreeMap<K, Standing>,
}

impl<K: Ord + Clone> Throttle<K> {
    /// No failures yet.
    pub fn new(policy: ThrottlePolicy) -> Throttle<K> {
        Throttle { policy, keys: BTreeMap::new() }
    }

    /// The policy.
    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    /// Whether an attempt for `key` is looked at now; a refused one is counted.
    pub fn admit(&mut self, key: &K, now: Micros) -> Admission {
        match self.keys.get_mut(key) {
            Some(s) if s.waiting(now) => {
                s.refused = s.refused.saturating_add(1);
                Admission::Wait { until: s.allowed_from }
            }
            _ => Admission::Check,
        }
    }

    /// Records a wrong password for `key`: its standing afterwards (with the delay before the
    /// next attempt, if it now has one).
    pub fn fail(&mut self, key: &K, now: Micros) -> Standing {
        let forget_after = self.policy.forget_after_us;
        let previous = self
            .keys
            .get(key)
            .filter(|s| now - s.last_failure_at < forget_after)
            .map_or(0, |s| s.failures);
        if !self.keys.contains_key(key) && self.keys.len() >= self.policy.keys_max {
            self.make_room(now);
        }
        let failures = previous.saturating_add(1);
        let standing = Standing {
            failures,
            last_failure_at: now,
            allowed_from: now + self.delay_us(failures),
            refused: 0,
        };
        self.keys.insert(key.clone(), standing);
        standing
    }

    /// A right password for `key`: its failures are forgotten.
    pub fn succeed(&mut self, key: &K) {
        self.keys.remove(key);
    }

    /// Forgets `key`'s failures (a supervisor's decision); its standing before, if it had one.
    pub fn clear(&mut self, key: &K) -> Option<Standing> {
        self.keys.remove(key)
    }

    /// The standing of `key`, if it has failures not yet forgotten at `now`.
    pub fn standing(&self, key: &K, now: Micros) -> Option<Standing> {
        self.keys
            .get(key)
            .filter(|s| now - s.last_failure_at < self.policy.forget_after_us)
            .copied()
    }

    /// Keys slowed down at `now`: those past their free failures and not yet forgotten, in
    /// key order.
    pub fn slowed(&self, now: Micros) -> Vec<(K, Standing)> {
        self.keys
            .iter()
            .filter(|(_, s)| {
                s.failures >= self.policy.free_failures
                    && now - s.last_failure_at < self.policy.forget_after_us
            })
            .map(|(k, s)| (k.clone(), *s))
            .collect()
    }

    /// The delay after the `failures`-th consecutive failure.
    pub fn delay_us(&self, failures: u32) -> Micros {
        let p = &self.policy;
        if failures < p.free_failures {
            return 0;
        }
        let doublings = (failures - p.free_failures).min(40);
        p.delay_first_us.saturating_mul(1i64 << doublings).min(p.delay_max_us)
    }

    fn make_room(&mut self, now: Micros) {
        let forget_after = self.policy.forget_after_us;
        self.keys.retain(|_, s| now - s.last_failure_at < forget_after);
        if self.keys.len() >= self.policy.keys_max
            && let Some(oldest) =
                self.keys.iter().min_by_key(|(_, s)| s.last_failure_at).map(|(k, _)| k.clone())
        {
            self.keys.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            free_failures: 5,
            delay_first_us: S,
            delay_max_us: 30 * S,
            forget_after_us: 3_600 * S,
            keys_max: 3,
        }
    }

    #[test]
    fn the_delay_doubles_from_the_fifth_failure_up_to_its_cap() {
        let t: Throttle<&str> = Throttle::new(policy());
        let delays: Vec<Micros> = (1..=12).map(|n| t.delay_us(n) / S).collect();
        assert_eq!(delays, [0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(t.delay_us(u32::MAX), 30 * S);
    }

    #[test]
    fn an_attempt_within_the_delay_is_refused_without_being_looked_at() {
        let mut t = Throttle::new(policy());
        for i in 0..5 {
            assert_eq!(t.admit(&"tech", i * S), Admission::Check);
            t.fail(&"tech", i * S);
        }
        assert_eq!(t.admit(&"tech", 4 * S + S / 2), Admission::Wait { until: 5 * S });
        assert_eq!(t.standing(&"tech", 5 * S).unwrap().refused, 1);
        assert_eq!(t.admit(&"tech", 5 * S), Admission::Check);
        assert_eq!(t.admit(&"mls", 4 * S), Admission::Check, "other keys are not slowed");
        t.succeed(&"tech");
        assert_eq!(t.standing(&"tech", 5 * S), None);
    }

    #[test]
    fn failures_are_forgotten_an_hour_after_the_last() {
        let mut t = Throttle::new(policy());
        for _ in 0..6 {
            t.fail(&"tech", 0);
        }
        assert_eq!(t.slowed(3_599 * S).len(), 1);
        assert!(t.slowed(3_600 * S).is_empty());
        assert_eq!(t.fail(&"tech", 3_600 * S).failures, 1, "counting starts again");
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_oldest_key() {
        let mut t = Throttle::new(policy());
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            t.fail(k, i as Micros * S);
        }
        assert_eq!(t.standing(&"a", 4 * S), None);
        assert!(t.standing(&"d", 4 * S).is_some());
    }

    #[test]
    fn a_cleared_key_starts_afresh() {
        let mut t = Throttle::new(policy());
        for _ in 0..9 {
            t.fail(&"tech", 0);
        }
        let before = t.clear(&"tech").unwrap();
        assert_eq!(before.failures, 9);
        assert_eq!(t.admit(&"tech", 0), Admission::Check);
        assert!(t.slowed(0).is_empty());
    }
}
