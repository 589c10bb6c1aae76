//! The writer's in-memory filter of idempotency keys (issue 9, item 2): a Bloom filter over
//! every recorded request key (enterprise code, `RequesterSerialNo`) and order key
//! (enterprise code, `OrderNo`) of the tenants the writer serves.
//!
//! It answers "certainly never recorded" or "maybe recorded". Only the first answer is used,
//! to skip a store lookup for a new request, which is nearly every request; "maybe" still
//! asks the store, which decides. It is therefore sound for any content: a key can only be
//! missing from the filter if it was never inserted, and the writer inserts every key it
//! records (before the store write, so a rolled-back write leaves a harmless false "maybe")
//! and every key already in the store when it starts serving a tenant
//! ([`crate::store::Store::idempotency_keys`]).
//!
//! The writer keeps one for a store that prefetches a batch's keys over the network
//! (PostgreSQL), where each ruled-out key saves server work and, when a whole batch is new,
//! a round trip. On the embedded store it saved nothing measurable and is not used. With
//! several instances sharing a store a tenant's keys are recorded by whichever instance held
//! it before: an instance's filter starts empty and takes a tenant's keys when the instance
//! takes the tenant over, once its lease is held (from then on only this instance can
//! record keys for it; docs/protocol.md §5).
//!
//! Memory is fixed: [`KeyFilter::BITS`] bits (16 MiB) whatever the number of keys. Up to
//! about 14 million keys, fewer than 1 in 100 new keys get a "maybe" (and the store lookup
//! they would have had anyway); beyond, the share of lookups grows, the answers stay right.

use std::hash::{BuildHasher, Hasher};

/// Which key space a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A recorded request: (enterprise code, requester serial), docs/protocol.md §1.2.
    Request,
    /// A used order number: (enterprise code, `OrderNo`).
    Order,
}

/// A fixed-size Bloom filter of idempotency keys. See the module documentation.
pub struct KeyFilter {
    bits: Vec<u64>,
    hasher: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
    inserted: u64,
}

impl std::fmt::Debug for KeyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFilter")
            .field("inserted", &self.inserted)
            .finish()
    }
}

impl Default for KeyFilter {
    fn default() -> Self {
        Self::with_bits(Self::BITS)
    }
}

impl KeyFilter {
    /// Size of the writer's filter, bits (2^27: 16 MiB).
    pub const BITS: u64 = 1 << 27;
    /// Bits set per key (for about 14 million keys in [`Self::BITS`] at about 1% false
    /// "maybe").
    pub const PROBES: u64 = 7;

    /// An empty filter of `bits` bits, rounded up to a power of two of at least 512.
    pub fn with_bits(bits: u64) -> KeyFilter {
        let bits = bits.max(512).next_power_of_two();
        KeyFilter {
            bits: vec![0; (bits / 64) as usize],
            hasher: Default::default(),
            inserted: 0,
        }
    }

    /// Two 64-bit hashes of the key.
    fn hashes(&self, kind: KeyKind, enterprise: &str, key: &str) -> (u64, u64) {
        let mut h = self.hasher.build_hasher();
        h.write_u8(kind as u8);
        h.write(enterprise.as_bytes());
        h.write_u8(0xff);
        h.write(key.as_bytes());
        let h1 = h.finish();
        h.write_u8(0x5a);
        (h1, h.finish())
    }

    /// The bit positions of a key: all in one 512-bit block (one cache line), chosen by
    /// the first hash; the second hash gives the [`Self::PROBES`] positions inside it, 9 bits
    /// each. One memory access per lookup instead of one per probe.
    fn probes(&self, kind: KeyKind, enterprise: &str, key: &str) -> [u64; Self::PROBES as usize] {
        let (h1, h2) = self.hashes(kind, enterprise, key);
        let blocks = self.bits.len() as u64 / 8;
        let base = (h1 & (blocks - 1)) * 512;
        std::array::from_fn(|i| base + ((h2 >> (9 * i)) & 511))
    }

    /// Records a key.
    pub fn insert(&mut self, kind: KeyKind, enterprise: &str, key: &str) {
        for bit in self.probes(kind, enterprise, key) {
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.inserted = self.inserted.saturating_add(1);
    }

    /// `false` when the key was certainly never inserted; `true` when it may have been.
    pub fn may_contain(&self, kind: KeyKind, enterprise: &str, key: &str) -> bool {
        self.probes(kind, enterprise, key)
            .into_iter()
            .all(|bit| self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// Keys inserted so far (repeats counted).
    pub fn inserted(&self) -> u64 {
        self.inserted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_keys_are_always_maybe_and_kinds_are_apart() {
        let mut f = KeyFilter::with_bits(1 << 16);
        for i in 0..2_000 {
            f.insert(KeyKind::Request, "ENT1", &format!("S{i}"));
        }
        for i in 0..2_000 {
            assert!(f.may_contain(KeyKind::Request, "ENT1", &format!("S{i}")));
        }
        // Other enterprise, other kind, other serials: mostly "certainly not".
        let maybe = (0..2_000)
            .filter(|i| f.may_contain(KeyKind::Order, "ENT1", &format!("S{i}")))
            .count()
            + (0..2_000)
                .filter(|i| f.may_contain(KeyKind::Request, "ENT2", &format!("S{i}")))
                .count()
            + (2_000..4_000)
                .filter(|i| f.may_contain(KeyKind::Request, "ENT1", &format!("S{i}")))
                .count();
        // 2,000 keys in 65,536 bits with 7 probes: about 0.1% false "maybe".
        assert!(maybe < 60, "{maybe} false maybes of 6,000");
        assert_eq!(f.inserted(), 2_000);
    }

    #[test]
    fn enterprise_and_key_boundary_is_part_of_the_key() {
        let mut f = KeyFilter::with_bits(1 << 20);
        f.insert(KeyKind::Request, "AB", "C");
        assert!(f.may_contain(KeyKind::Request, "AB", "C"));
        assert!(!f.may_contain(KeyKind::Request, "A", "BC"));
    }
}
