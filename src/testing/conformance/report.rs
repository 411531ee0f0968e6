//! What a run of the suite found, check by check.

use std::fmt;

use super::Check;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every assertion held.
    Passed,
    /// Not run, and why (for example: it needs a [`Backdoor`](super::Backdoor)).
    Skipped(String),
    /// An assertion failed (or the store panicked): its message.
    Failed(String),
}

/// The result of [`run`](super::run): one [`Verdict`] per check, in order.
///
/// Its `Display` is one line per check and a summary line:
///
/// ```text
/// ok      cold_lookup_seeds_once
/// skipped evicted_version_never_resurrects_entries: needs a Backdoor ...
/// FAILED  put_ttl_expires: the entry outlived its 1 s TTL
/// conformance: 14 passed, 1 skipped, 1 failed
/// ```
#[derive(Debug, Clone, Default)]
pub struct Report {
    results: Vec<(Check, Verdict)>,
}

impl Report {
    pub(super) fn push(&mut self, check: Check, verdict: Verdict) {
        self.results.push((check, verdict));
    }

    /// Every check run, with its verdict, in the order they ran.
    pub fn results(&self) -> &[(Check, Verdict)] {
        &self.results
    }

    /// The verdict of one check, if it ran.
    pub fn verdict(&self, check: Check) -> Option<&Verdict> {
        self.results
            .iter()
            .find_map(|(c, v)| (*c == check).then_some(v))
    }

    /// How many checks passed.
    pub fn passed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Passed))
    }

    /// How many checks were skipped.
    pub fn skipped(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Skipped(_)))
    }

    /// How many checks failed.
    pub fn failed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Failed(_)))
    }

    /// `true` when no check failed (skipped ones do not count as failures).
    pub fn is_ok(&self) -> bool {
        self.failed() == 0
    }

    /// Panics when a check failed, naming every failed check with its
    /// message.
    ///
    /// # Panics
    ///
    /// When [`is_ok`](Self::is_ok) is `false`.
    #[track_caller]
    pub fn assert_ok(&self) {
        if self.is_ok() {
            return;
        }
        let failures: Vec<String> = self
            .results
            .iter()
            .filter_map(|(c, v)| match v {
                Verdict::Failed(msg) => Some(format!("{}: {msg}", c.name())),
                _ => None,
            })
            .collect();
        panic!(
            "{} store conformance check(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.results.iter().filter(|(_, v)| f(v)).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (check, verdict) in &self.results {
            match verdict {
                Verdict::Passed => writeln!(f, "ok      {}", check.name())?,
                Verdict::Skipped(why) => writeln!(f, "skipped {}: {why}", check.name())?,
                Verdict::Failed(msg) => {
                    // The first line of the message keeps the report one
                    // line per check; `assert_ok` gives it whole.
                    let first = msg.lines().next().unwrap_or_default();
                    writeln!(f, "FAILED  {}: {first}", check.name())?
                }
            }
        }
        write!(
            f,
            "conformance: {} passed, {} skipped, {} failed",
            self.passed(),
            self.skipped(),
            self.failed()
        )
    }
}
