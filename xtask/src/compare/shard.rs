//! One slice of a comparison, for a scheduler that starts N jobs of the same command (a Slurm job
//! array, a Kubernetes Indexed Job): `--shard I/N` runs the runs whose position in the comparison's
//! fixed order is I-1 modulo N, so that the N slices together run every run exactly once, and the
//! long and the short runs spread over the slices. `--shard N` takes I from the scheduler's
//! environment.

use anyhow::{bail, Result};

/// Slurm's array index, and the array's first index (arrays need not start at 0 or 1).
pub const SLURM_INDEX: &str = "SLURM_ARRAY_TASK_ID";
pub const SLURM_MIN: &str = "SLURM_ARRAY_TASK_MIN";
/// A Kubernetes Indexed Job's index, from 0.
pub const KUBERNETES_INDEX: &str = "JOB_COMPLETION_INDEX";

/// Slice `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// `I/N` (I from 1), or `N` with the index from `env` (Slurm's, else Kubernetes').
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let number = |what: &str, s: &str| -> Result<usize> {
            s.trim()
                .parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--shard {text}: {what} '{s}' is not a whole number"))
        };
        let (index, count) = match text.split_once('/') {
            Some((i, n)) => {
                let (i, n) = (number("the slice", i)?, number("the count", n)?);
                if i == 0 {
                    bail!("--shard {text}: slices are numbered from 1");
                }
                (i - 1, n)
            }
            None => {
                let n = number("the count", text)?;
                let index = match (env(SLURM_INDEX), env(KUBERNETES_INDEX)) {
                    (Some(id), _) => {
                        let id = number(SLURM_INDEX, &id)?;
                        let min = env(SLURM_MIN)
                            .map(|m| number(SLURM_MIN, &m))
                            .transpose()?
                            .unwrap_or(0);
                        id.checked_sub(min).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--shard {text}: {SLURM_INDEX} {id} is below {SLURM_MIN} {min}"
                            )
                        })?
                    }
                    (None, Some(i)) => number(KUBERNETES_INDEX, &i)?,
                    (None, None) => bail!(
                        "--shard {text}: give the slice as I/{text}, or run under a scheduler that \
                         sets {SLURM_INDEX} (Slurm job arrays) or {KUBERNETES_INDEX} (Kubernetes \
                         Indexed Jobs)"
                    ),
                };
                (index, n)
            }
        };
        if count == 0 {
            bail!("--shard {text}: the count must be at least 1");
        }
        if index >= count {
            bail!(
                "--shard {text}: slice {} of {count} does not exist (the index from the scheduler \
                 counts from its first)",
                index + 1
            );
        }
        Ok(Self { index, count })
    }

    /// Whether the run at `position` of the comparison's order is this slice's.
    pub fn takes(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_slice_is_given_or_comes_from_the_scheduler() {
        let none = env(&[]);
        assert_eq!(
            Shard::parse("2/3", &none).unwrap(),
            Shard { index: 1, count: 3 }
        );
        // A Slurm array 5-8 of 4 jobs: task 7 is the third slice.
        let slurm = env(&[(SLURM_INDEX, "7"), (SLURM_MIN, "5")]);
        assert_eq!(
            Shard::parse("4", &slurm).unwrap(),
            Shard { index: 2, count: 4 }
        );
        let k8s = env(&[(KUBERNETES_INDEX, "0")]);
        assert_eq!(
            Shard::parse("2", &k8s).unwrap(),
            Shard { index: 0, count: 2 }
        );
        for (bad, why) in [
            ("0/3", "numbered from 1"),
            ("4/3", "does not exist"),
            ("1/0", "at least 1"),
            ("a/3", "not a whole number"),
            ("3", "run under a scheduler"),
        ] {
            let e = Shard::parse(bad, &none).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = Shard::parse("4", env(&[(KUBERNETES_INDEX, "4")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("slice 5 of 4 does not exist"), "{e}");
    }

    #[test]
    fn the_slices_take_every_position_once() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        for position in 0..20 {
            assert_eq!(shards.iter().filter(|s| s.takes(position)).count(), 1);
        }
    }
}
