//! Downloads from a mirror served on the loopback interface: verified files land in the cache, and a
//! corrupt or missing one leaves nothing behind.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use common::mnist::FILES;
use common::{Dataset, Mnist};
use datasets::download_files_from;

/// Serves `files` (name, bytes) over HTTP on 127.0.0.1 until `requests` requests were answered;
/// returns the base URL.
fn serve(files: Vec<(String, Vec<u8>)>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/mnist", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let body = files
                .iter()
                .find(|(name, _)| path.ends_with(name.as_str()))
                .map(|(_, b)| b.clone());
            let response = match &body {
                Some(b) => format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    b.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_string(),
            };
            let _ = stream.write_all(response.as_bytes());
            if let Some(b) = body {
                let _ = stream.write_all(&b);
            }
        }
    });
    base
}

fn mnist_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("MNIST_DIR").expect("this test needs MNIST_DIR"))
}

fn gz_files() -> Vec<(String, Vec<u8>)> {
    FILES
        .iter()
        .map(|f| {
            let name = format!("{}.gz", f.name);
            let bytes = std::fs::read(mnist_dir().join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

#[test]
fn downloads_and_verifies_every_file() {
    let base = serve(gz_files(), 4);
    let cache = tempfile::tempdir().unwrap();
    download_files_from(Dataset::Mnist, cache.path(), &[base]).unwrap();
    let data = Mnist::load_dir(Dataset::Mnist, cache.path()).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
}

#[test]
fn a_corrupt_or_missing_download_leaves_nothing() {
    let mut files = gz_files();
    // A valid gzip file with the wrong content.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&vec![0u8; 60_008]).unwrap();
    files[1].1 = e.finish().unwrap();
    // The first file downloads, the second fails its checksum; a second mirror does not exist.
    let base = serve(files, 2);
    let cache = tempfile::tempdir().unwrap();
    let dead = "http://127.0.0.1:9/mnist".to_string();
    let err = download_files_from(Dataset::Mnist, cache.path(), &[base, dead])
        .unwrap_err()
        .to_string();
    assert!(err.contains("train-labels-idx1-ubyte.gz"), "{err}");
    assert!(err.contains("checksum"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let left: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["train-images-idx3-ubyte.gz".to_string()],
        "only the verified file"
    );
}

#[test]
fn verifies_downloads_by_checksum() {
    let file = common::mnist::TEST_LABELS;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&vec![0u8; file.bytes as usize]).unwrap();
    let fake = e.finish().unwrap();
    let err = datasets::verify(&fake, &file).unwrap_err();
    assert!(err.contains("checksum"), "{err}");
    let err = datasets::verify(b"not gzip", &file).unwrap_err();
    assert!(err.contains("gzip"), "{err}");
}

/// A folder named by the user that is missing, or is a file, is said to be so.
#[test]
fn a_data_folder_that_is_not_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = datasets::load(Dataset::Mnist, Some(&dir.path().join("nowhere")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = datasets::load(Dataset::Mnist, Some(&file))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("the data folder given by --data-dir is a file, not a folder"),
        "{err}"
    );
}
