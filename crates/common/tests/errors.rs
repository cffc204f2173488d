//! Error text is said once, and is true.

use std::error::Error as _;

/// An I/O error's cause is in its message and not again as a source, so that a chain printer
/// (anyhow's `{:#}`) does not repeat it.
#[test]
fn an_io_error_says_its_cause_once() {
    let e = common::Error::io("cannot write r.json", std::io::Error::from_raw_os_error(28));
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
    assert!(text.starts_with("cannot write r.json: "), "{text}");
}
