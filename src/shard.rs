//! Shards: which parts of a run this process does. The sorted listing is cut into parts of
//! `part_size` images; shard `i` of `n` does the parts `p` with `p % n == i`, so part numbers do
//! not depend on how many tasks run, and a run can be finished by an array of another size.

use std::fmt;

use crate::error::PlanError;

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// How many shards share the run.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Parses `I/N`, e.g. `3/8`.
    pub fn parse(text: &str) -> Result<Shard, PlanError> {
        let bad = || {
            PlanError::invalid(
                "--shard",
                format!("`{text}` is not I/N with 0 <= I < N, e.g. 0/4"),
            )
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        Shard::new(index, count).ok_or_else(bad)
    }

    /// Shard `index` of `count`, if `index < count`.
    pub fn new(index: usize, count: usize) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// The shard a scheduler gave this task: Slurm job arrays (`SLURM_ARRAY_TASK_ID` minus
    /// `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`), Kubernetes Indexed Jobs
    /// (`JOB_COMPLETION_INDEX`, of `shards` or `LAYERWISE_SHARDS`), else the whole run.
    /// `var` reads the environment (a parameter so tests can give their own).
    pub fn from_env(
        shards: Option<usize>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(Shard, &'static str), PlanError> {
        let number = |name: &str| -> Result<Option<usize>, PlanError> {
            var(name)
                .map(|v| {
                    v.trim().parse().map_err(|_| {
                        PlanError::invalid(name, format!("is `{v}`, not a whole number"))
                    })
                })
                .transpose()
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                PlanError::invalid(
                    "SLURM_ARRAY_TASK_COUNT",
                    "is not set, but SLURM_ARRAY_TASK_ID is; run as an array job (sbatch --array)",
                )
            })?;
            let shard = id.checked_sub(min).and_then(|i| Shard::new(i, count)).ok_or_else(|| {
                PlanError::invalid("SLURM_ARRAY_TASK_ID", format!("{id} (minimum {min}) does not fit an array of {count}; use a contiguous --array such as 0-{}", count.saturating_sub(1)))
            })?;
            return Ok((shard, "Slurm job array"));
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = match shards {
                Some(n) => Some(n),
                None => number("LAYERWISE_SHARDS")?,
            }
            .ok_or_else(|| {
                PlanError::invalid("--shards", "is needed with JOB_COMPLETION_INDEX: pass --shards N (the Job's completions) or set LAYERWISE_SHARDS")
            })?;
            let shard = Shard::new(index, count).ok_or_else(|| {
                PlanError::invalid(
                    "JOB_COMPLETION_INDEX",
                    format!("{index} is not below the {count} shards"),
                )
            })?;
            return Ok((shard, "Kubernetes Indexed Job"));
        }
        Ok((Shard::default(), "the whole run"))
    }

    /// Whether this shard does part `part`.
    pub fn owns(&self, part: usize) -> bool {
        part % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn parses_i_of_n() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        for bad in ["4/4", "1", "a/2", "0/0"] {
            let err = Shard::parse(bad).unwrap_err().to_string();
            assert!(err.contains("is not I/N with 0 <= I < N"), "{bad}: {err}");
        }
    }

    #[test]
    fn parts_are_dealt_round_robin() {
        let s = Shard { index: 1, count: 3 };
        let owned: Vec<usize> = (0..10).filter(|p| s.owns(*p)).collect();
        assert_eq!(owned, [1, 4, 7]);
    }

    #[test]
    fn slurm_and_kubernetes_environments() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(
            Shard::from_env(None, slurm).unwrap(),
            (Shard { index: 2, count: 3 }, "Slurm job array")
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1"), ("LAYERWISE_SHARDS", "4")]);
        assert_eq!(
            Shard::from_env(None, &k8s).unwrap().0,
            Shard { index: 1, count: 4 }
        );
        assert_eq!(
            Shard::from_env(Some(2), &k8s).unwrap().0,
            Shard { index: 1, count: 2 }
        );
        let err = Shard::from_env(None, env(&[("JOB_COMPLETION_INDEX", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pass --shards N"), "{err}");
        let err = Shard::from_env(
            None,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "9"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not fit an array of 3"), "{err}");
        assert_eq!(
            Shard::from_env(None, env(&[])).unwrap(),
            (Shard::default(), "the whole run")
        );
    }
}
