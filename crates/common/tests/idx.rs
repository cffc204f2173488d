//! The IDX reader and the MNIST checks, on small files the tests write.

use std::io::Write;
use std::path::{Path, PathBuf};

use common::idx::{encode_u8, read_u8};
use common::mnist::{read_split, Mnist};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Reads `bytes` as a file named `name`; checks the outcome against `expected`: `Ok(dims)` or an
/// error message that contains the given text (and the file's name).
fn check(name: &str, bytes: &[u8], expected: Result<&[usize], &str>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, bytes);
    match (read_u8(&path), expected) {
        (Ok(a), Ok(dims)) => {
            assert_eq!(a.dims, dims);
            assert_eq!(a.data.len(), dims.iter().product::<usize>());
        }
        (Err(e), Err(text)) => {
            let msg = e.to_string();
            assert!(msg.contains(text), "{name}: {msg:?} should say {text:?}");
            assert!(msg.contains(name), "{msg:?} should name the file");
            assert!(!msg.contains('\n'), "{msg:?} should be one line");
        }
        (got, want) => panic!("{name}: got {got:?}, expected {want:?}"),
    }
}

fn images(n: usize) -> Vec<u8> {
    encode_u8(&[n, 28, 28], &vec![7u8; n * 784])
}

#[test]
fn reads_good_files_plain_and_gzip() {
    check("a-idx3-ubyte", &images(3), Ok(&[3, 28, 28]));
    check("a-idx3-ubyte.gz", &gz(&images(3)), Ok(&[3, 28, 28]));
    check("l-idx1-ubyte", &encode_u8(&[4], &[0, 1, 2, 9]), Ok(&[4]));
}

#[test]
fn rejects_bad_files() {
    let good = images(2);
    check("empty-idx3-ubyte", &[], Err("empty file"));
    check("short-idx3-ubyte", &good[..3], Err("truncated"));
    check("hdr-idx3-ubyte", &good[..10], Err("truncated: the header"));
    check("data-idx3-ubyte", &good[..good.len() - 1], Err("truncated"));
    check(
        "long-idx3-ubyte",
        &[good.as_slice(), &[0]].concat(),
        Err("more data"),
    );
    check(
        "magic-idx3-ubyte",
        &[&[1u8, 0][..], &good[2..]].concat(),
        Err("wrong magic"),
    );
    check(
        "type-idx3-ubyte",
        &[&[0u8, 0, 0x0D][..], &good[3..]].concat(),
        Err("element type 0x0d (32-bit float)"),
    );
    check("dims-idx3-ubyte", &[0, 0, 8, 0], Err("0 dimensions"));
    check("notgz-idx3-ubyte.gz", &good, Err("not a gzip file"));
    let zipped = gz(&good);
    check(
        "cut-idx3-ubyte.gz",
        &zipped[..zipped.len() / 2],
        Err("truncated"),
    );
}

#[test]
fn huge_claims_cost_nothing() {
    // The header claims 4 G × 4 G × 4 G bytes: an overflow, rejected without allocating.
    check(
        "huge-idx3-ubyte",
        &[
            0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        ],
        Err("too large"),
    );
    // A claim of about 16 GB with no data behind it is a truncated file, not an allocation.
    check(
        "big-idx3-ubyte",
        &[
            0, 0, 8, 3, 0, 0, 0x50, 0, 0, 0, 0x0e, 0, 0, 0, 0x1c, 0, 1, 2, 3,
        ],
        Err("truncated"),
    );
}

/// Writes an image file and a label file and reads them as a split.
fn check_split(images: &[u8], labels: &[u8], expected: Result<usize, &str>) {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "train-images-idx3-ubyte", images);
    let l = write(dir.path(), "train-labels-idx1-ubyte", labels);
    match (read_split(&i, &l), expected) {
        (Ok(s), Ok(n)) => assert_eq!(s.len(), n),
        (Err(e), Err(text)) => {
            let msg = e.to_string();
            assert!(msg.contains(text), "{msg:?} should say {text:?}");
        }
        (got, want) => panic!("got {got:?}, expected {want:?}"),
    }
}

#[test]
fn checks_splits() {
    check_split(&images(2), &encode_u8(&[2], &[3, 4]), Ok(2));
    check_split(
        &images(2),
        &encode_u8(&[3], &[3, 4, 5]),
        Err("3 labels but"),
    );
    check_split(
        &images(2),
        &encode_u8(&[2], &[3, 10]),
        Err("label 10 at index 1 is outside 0..9"),
    );
    check_split(
        &encode_u8(&[2, 27, 28], &vec![0; 2 * 27 * 28]),
        &encode_u8(&[2], &[3, 4]),
        Err("expected [count, 28, 28]"),
    );
    check_split(
        &images(2),
        &encode_u8(&[1, 2], &[3, 4]),
        Err("expected [count]"),
    );
    check_split(&images(0), &encode_u8(&[0], &[]), Err("holds no images"));
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = Mnist::load_dir(common::Dataset::Mnist, dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("train-images-idx3-ubyte"), "{err}");
    assert!(err.contains("missing"), "{err}");
}
