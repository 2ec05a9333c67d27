//! Connections per source address, so that one address cannot hold every connection slot
//! (slowloris, F2). Addresses count as the SSH listener counts them (IPv6 by /64,
//! [`rampart_ssh::admission::source_key`]); trusted proxies, which carry everyone's traffic, are
//! not capped.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The open connections of one listener, by source.
#[derive(Debug)]
pub(crate) struct PerSource {
    cap: usize,
    trusted: Vec<IpNet>,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its source's count; freed on drop.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    key: Option<IpAddr>,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerSource {
    pub(crate) fn new(cap: usize, trusted: Vec<IpNet>) -> Self {
        Self {
            cap,
            trusted,
            counts: Arc::default(),
        }
    }

    /// A place for a new connection from `ip`, or `None` when its source holds `cap` already.
    pub(crate) fn admit(&self, ip: IpAddr) -> Option<SourceSlot> {
        if self.trusted.iter().any(|net| net.contains(&ip)) {
            return Some(SourceSlot {
                key: None,
                counts: self.counts.clone(),
            });
        }
        let key = rampart_ssh::admission::source_key(ip);
        let mut counts = self.counts.lock().ok()?;
        let count = counts.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            key: Some(key),
            counts: self.counts.clone(),
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        if let Some(count) = counts.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_gets_its_cap_others_and_proxies_are_not_held_up() {
        let proxy: IpNet = "10.0.0.1/32".parse().unwrap();
        let per_source = PerSource::new(2, vec![proxy]);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let first = per_source.admit(one).unwrap();
        let _second = per_source.admit(one).unwrap();
        assert!(per_source.admit(one).is_none());
        assert!(per_source.admit("192.0.2.2".parse().unwrap()).is_some());
        let proxied: Vec<_> = (0..10)
            .map(|_| per_source.admit("10.0.0.1".parse().unwrap()))
            .collect();
        assert!(proxied.iter().all(Option::is_some));
        drop(first);
        assert!(per_source.admit(one).is_some());
    }
}
