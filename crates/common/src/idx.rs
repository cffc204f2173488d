//! The IDX file format of MNIST: a 4-byte magic (two zero bytes, an element-type code, the number of
//! dimensions), one big-endian u32 per dimension, then the elements. Files may be gzip-compressed
//! (their name ends in `.gz`).
//!
//! The reader trusts nothing in the header: it computes the payload size with checked arithmetic,
//! never allocates from a size the header claims (the buffer grows only with bytes actually read), and
//! reports a truncated or over-long file by name.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::DataError;

/// The element type code of unsigned bytes, the only type MNIST uses.
pub const TYPE_U8: u8 = 0x08;

/// The most dimensions an IDX header may declare here (MNIST uses 1 and 3).
const MAX_DIMS: u8 = 8;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "unknown",
    }
}

/// Reads an IDX array of unsigned bytes from `path`, decompressing it when the name ends in `.gz`.
pub fn read_u8(path: &Path) -> Result<IdxArray, DataError> {
    let file = File::open(path).map_err(|e| DataError::new(path, format!("cannot open: {e}")))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    decode(BufReader::new(file), gz, path)
}

/// Parses an IDX array of unsigned bytes from `reader`, gzip-compressed when `gz` is set; `path`
/// only names the source in errors. This is what [`read_u8`] does after opening the file.
pub fn decode(mut reader: impl Read, gz: bool, path: &Path) -> Result<IdxArray, DataError> {
    if !gz {
        return parse(reader, path);
    }
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut reader, &mut magic).map_err(|e| DataError::new(path, e))?;
    if got < 2 || magic != [0x1f, 0x8b] {
        return Err(DataError::new(
            path,
            "not a gzip file, though its name ends in .gz",
        ));
    }
    let chained = std::io::Cursor::new(magic).chain(reader);
    parse(flate2::read::GzDecoder::new(chained), path)
}

/// Parses an IDX array of unsigned bytes from any reader; `path` only names the source in errors.
pub fn parse(mut reader: impl Read, path: &Path) -> Result<IdxArray, DataError> {
    let err = |problem: String| DataError::new(path, problem);
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic).map_err(err)?;
    if got == 0 {
        return Err(err("empty file".into()));
    }
    if got < 4 {
        return Err(err(format!(
            "truncated: {got} bytes, too short for an IDX header"
        )));
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(err(format!(
            "wrong magic number 0x{:08x}: not an IDX file",
            u32::from_be_bytes(magic)
        )));
    }
    if magic[2] != TYPE_U8 {
        return Err(err(format!(
            "element type 0x{:02x} ({}), expected 0x08 (unsigned byte)",
            magic[2],
            type_name(magic[2])
        )));
    }
    let ndims = magic[3];
    if ndims == 0 || ndims > MAX_DIMS {
        return Err(err(format!(
            "{ndims} dimensions in the header, expected 1 to {MAX_DIMS}"
        )));
    }
    let mut dims = Vec::with_capacity(ndims as usize);
    for i in 0..ndims {
        let mut b = [0u8; 4];
        let got = read_up_to(&mut reader, &mut b).map_err(err)?;
        if got < 4 {
            return Err(err(format!(
                "truncated: the header ends inside dimension {} of {ndims}",
                i + 1
            )));
        }
        dims.push(u32::from_be_bytes(b) as usize);
    }
    let len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize / 2)
        .ok_or_else(|| err(format!("dimensions {dims:?} are too large")))?;
    // `take` bounds what is read, and `read_to_end` grows the buffer only as bytes arrive, so a header
    // that claims terabytes costs nothing until the data is really there.
    let mut data = Vec::new();
    let limit = (len as u64).saturating_add(1);
    reader
        .by_ref()
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|e| err(read_problem(&e)))?;
    if data.len() < len {
        return Err(err(format!(
            "truncated: {} of the {len} data bytes that dimensions {dims:?} need",
            data.len()
        )));
    }
    if data.len() > len {
        return Err(err(format!(
            "more data than dimensions {dims:?} describe ({len} bytes)"
        )));
    }
    Ok(IdxArray { dims, data })
}

fn read_problem(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "truncated: the compressed stream ends early".into(),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            format!("corrupt compressed data: {e}")
        }
        _ => format!("read error: {e}"),
    }
}

/// Fills `buf` as far as the reader allows; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, String> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_problem(&e)),
        }
    }
    Ok(filled)
}

/// Encodes an IDX array of unsigned bytes (for tests and tools that write small data sets).
pub fn encode_u8(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, TYPE_U8, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
