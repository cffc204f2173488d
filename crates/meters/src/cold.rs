//! Cold starts, timed from outside the process: a new process is started and timed until it
//! prints its first line (a serving process prints its first answer), the time the user of a
//! freshly started server waits. The process is then let finish, and must succeed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Why a cold start could not be timed.
#[derive(Debug, thiserror::Error)]
pub enum ColdStartError {
    #[error("cannot start {program}: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} printed nothing before it ended ({status}): {stderr}")]
    NoAnswer {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("{program} failed ({status}) after its first line: {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
}

/// The seconds from starting `command` until its first line on standard output, and that line.
/// Its standard error is kept for the error, should it fail.
pub fn time_to_first_line(command: &mut Command) -> Result<(f64, String), ColdStartError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ColdStartError::Start {
            program: program.clone(),
            source,
        })?;
    let mut line = String::new();
    let read = match child.stdout.take() {
        Some(out) => BufReader::new(out).read_line(&mut line).unwrap_or(0),
        None => 0,
    };
    let seconds = start.elapsed().as_secs_f64();
    let output = child.wait_with_output();
    let (status, stderr) = match output {
        Ok(o) => (
            o.status,
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        ),
        Err(source) => return Err(ColdStartError::Start { program, source }),
    };
    let last = stderr.lines().last().unwrap_or_default().to_string();
    if read == 0 {
        return Err(ColdStartError::NoAnswer {
            program,
            status: status.to_string(),
            stderr: last,
        });
    }
    if !status.success() {
        return Err(ColdStartError::Failed {
            program,
            status: status.to_string(),
            stderr: last,
        });
    }
    Ok((seconds, line.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The time runs to the first line, not to the end: a process that answers, then sleeps, is
    /// timed short of its sleep; one that answers nothing, or fails, is an error that says so.
    #[test]
    fn a_cold_start_ends_at_the_first_line() {
        let (seconds, line) =
            time_to_first_line(Command::new("sh").args(["-c", "echo 7; sleep 0.5"])).unwrap();
        assert_eq!(line, "7");
        assert!(seconds < 0.4, "{seconds}");
        let e = time_to_first_line(Command::new("sh").args(["-c", "echo nope >&2; exit 3"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("printed nothing") && e.contains("nope"), "{e}");
        let e = time_to_first_line(Command::new("sh").args(["-c", "echo 1; exit 2"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("failed"), "{e}");
        let e = time_to_first_line(&mut Command::new("/no/such/program")).unwrap_err();
        assert!(e.to_string().starts_with("cannot start"), "{e}");
    }
}
