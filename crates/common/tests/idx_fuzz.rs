//! The IDX reader against hostile input: random bytes, headers that claim huge dimensions, and valid
//! files (plain and gzip) with bytes changed, cut off or appended. Nothing may panic or abort, no
//! single allocation may grow past a bound that no honest input of these sizes needs, and every
//! accepted array must hold exactly the elements its dimensions describe.
//!
//! Each property runs `IDX_FUZZ_CASES` cases (default 25,000, so 100,000 inputs in all).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::idx::{decode, encode_u8, IdxArray};
use proptest::prelude::*;

/// The system allocator, recording the largest single request.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// Inputs stay under 64 KiB (and decompress to little more), so 16 MiB in one allocation could
/// only come from trusting a header.
const ALLOCATION_BOUND: usize = 16 << 20;

fn cases() -> u32 {
    std::env::var("IDX_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(25_000)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Decodes `bytes` and checks what every outcome must satisfy.
fn check(bytes: &[u8], gz: bool) -> Result<IdxArray, String> {
    let result = decode(bytes, gz, Path::new("fuzz-idx-ubyte"));
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= ALLOCATION_BOUND,
        "an allocation of {largest} bytes"
    );
    match result {
        Ok(a) => {
            let n: usize = a.dims.iter().product();
            assert_eq!(a.data.len(), n, "dims {:?}", a.dims);
            assert!(!a.dims.is_empty());
            Ok(a)
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz-idx-ubyte: "), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            Err(msg)
        }
    }
}

/// A small valid IDX file: 1 to 3 dimensions of 0 to 12 elements each.
fn valid_file() -> impl Strategy<Value = (Vec<usize>, Vec<u8>)> {
    prop::collection::vec(0usize..12, 1..=3).prop_flat_map(|dims| {
        let n = dims.iter().product::<usize>();
        (Just(dims), prop::collection::vec(any::<u8>(), n))
    })
}

/// Changes to a file: bytes overwritten, then cut to a length, then bytes appended.
#[derive(Debug, Clone)]
struct Mutation {
    writes: Vec<(usize, u8)>,
    cut: Option<usize>,
    append: Vec<u8>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        prop::option::of(any::<usize>()),
        prop::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(|(writes, cut, append)| Mutation {
            writes,
            cut,
            append,
        })
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if !bytes.is_empty() {
        let len = bytes.len();
        for &(at, b) in &m.writes {
            bytes[at % len] = b;
        }
    }
    if let Some(cut) = m.cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes.extend_from_slice(&m.append);
    bytes
}

/// A dimension as a hostile header might claim it.
fn claimed_dim() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..16, any::<u32>(), Just(u32::MAX), Just(1 << 31)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096), zipped in any::<bool>()) {
        let _ = check(&bytes, zipped);
    }

    #[test]
    fn hostile_headers(
        type_code in prop_oneof![Just(0x08u8), any::<u8>()],
        dims in prop::collection::vec(claimed_dim(), 0..10),
        payload in prop::collection::vec(any::<u8>(), 0..2048),
        zipped in any::<bool>(),
    ) {
        let mut bytes = vec![0, 0, type_code, dims.len() as u8];
        for d in &dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&payload);
        let bytes = if zipped { gz(&bytes) } else { bytes };
        let claimed = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(u64::from(d)));
        if let Ok(a) = check(&bytes, zipped) {
            // Accepted only when the header is honest about the payload.
            prop_assert_eq!(type_code, 0x08);
            prop_assert_eq!(claimed, Some(payload.len() as u64));
            prop_assert_eq!(a.data, payload);
        }
    }

    #[test]
    fn valid_files_read_back((dims, data) in valid_file(), zipped in any::<bool>()) {
        let plain = encode_u8(&dims, &data);
        let bytes = if zipped { gz(&plain) } else { plain };
        let a = check(&bytes, zipped);
        prop_assert_eq!(a, Ok(IdxArray { dims, data }));
    }

    #[test]
    fn mutated_files((dims, data) in valid_file(), m in mutation(), zipped in any::<bool>()) {
        let plain = encode_u8(&dims, &data);
        let bytes = if zipped { apply(gz(&plain), &m) } else { apply(plain, &m) };
        let _ = check(&bytes, zipped);
    }
}
