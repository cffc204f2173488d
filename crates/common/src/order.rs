//! Seeded randomness shared by every framework: one ChaCha8 stream per purpose, so that the initial
//! weights and each epoch's batch order depend on the seed alone, never on a framework's RNG.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Stream numbers: 0 for the initial weights, `1 + epoch` for epoch `epoch`'s order.
const WEIGHTS_STREAM: u64 = 0;

pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

pub(crate) fn weights_rng(seed: u64) -> ChaCha8Rng {
    rng(seed, WEIGHTS_STREAM)
}

/// A uniform index in `0..bound` without modulo bias (Lemire's method).
fn below(rng: &mut ChaCha8Rng, bound: u32) -> u32 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let m = rng.next_u32() as u64 * bound as u64;
        if (m as u32) >= threshold {
            return (m >> 32) as u32;
        }
    }
}

/// A uniform f32 in `[0, 1)` from the top 24 bits of one draw.
pub(crate) fn unit_f32(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// The order in which epoch `epoch` (counted from 1) visits `n` training examples: a Fisher–Yates
/// shuffle drawn from the seed. Every framework trains on `order.chunks(batch_size)`.
pub fn epoch_order(seed: u64, epoch: u32, n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = rng(seed, 1 + epoch as u64);
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u32 + 1) as usize;
        order.swap(i, j);
    }
    order
}
