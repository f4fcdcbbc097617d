//! A small multiply-rotate hasher for the event loop's maps (sessions by
//! discriminator, by addresses, deadlines). SipHash, std's default, resists
//! collision flooding, which these maps do not need: their keys are our own
//! random discriminators and the operator's addresses, and packets only
//! look keys up, never insert them. At 50,000 sessions the maps are hit a
//! few hundred thousand times a second, where SipHash shows in profiles.

use std::hash::{BuildHasherDefault, Hasher};

/// The hasher: each word is folded in with a rotate and an odd multiplier.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // hashbrown takes the top 7 bits as tag and the low bits as index:
        // fold the high half in so both see every input bit.
        self.0 ^ (self.0 >> 29)
    }
}

/// `BuildHasher` for std collections.
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;

/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_keys_spread_over_buckets_and_tags() {
        // Keys differing in few bits must spread over the low bits (bucket
        // index) as random ones would (about 906 of 1024 in 4096 buckets)
        // and over the top 7 bits (hashbrown's tag).
        let mut low = std::collections::HashSet::new();
        let mut tags = std::collections::HashSet::new();
        for k in 0u32..1024 {
            let mut h = FastHasher::default();
            h.write_u32(k);
            low.insert(h.finish() & 0xfff);
            tags.insert(h.finish() >> 57);
        }
        assert!(low.len() > 850, "{} distinct of 1024", low.len());
        assert!(tags.len() > 100, "{} tags of 128", tags.len());
    }
}
