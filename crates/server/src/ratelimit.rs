//! Per-machine token bucket for the login API: a compromised machine cannot hammer the
//! server with guesses for many users.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate: u32, burst: u32) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `per_minute` tokens a minute, up to `burst` saved.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            rate: f64::from(per_minute) / 60.0,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false when the bucket is empty.
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let Ok(mut map) = self.buckets.lock() else {
            return false;
        };
        if map.len() > 100_000 {
            // Bound memory: drop full buckets (idle machines).
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let entry = map.entry(key.to_string()).or_insert((self.burst, now));
        let elapsed = now.duration_since(entry.1).as_secs_f64();
        entry.0 = (entry.0 + elapsed * self.rate).min(self.burst);
        entry.1 = now;
        if entry.0 >= 1.0 {
            entry.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_then_refills() {
        let rl = RateLimiter::new(1000, 3);
        assert!(rl.allow("m"));
        assert!(rl.allow("m"));
        assert!(rl.allow("m"));
        assert!(!rl.allow("m"));
        assert!(rl.allow("other"));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(rl.allow("m"));
    }
}
