//! Status conditions (`metav1.Condition`), keeping `lastTransitionTime` unless the status of
//! a condition actually changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Longest condition message stored (the apiserver allows 32768 bytes).
pub const MAX_MESSAGE: usize = 4096;

/// One desired condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// `Ready`, `Progressing`, ...
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
}

impl Desired {
    /// Builds a condition.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// `s` cut to at most `max` bytes (on a char boundary, with an ellipsis).
pub fn truncate_to(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The conditions to write: `desired`, in order, with `lastTransitionTime` carried over
/// from `existing` when the status is unchanged.
pub fn merge(
    existing: &[Condition],
    desired: Vec<Desired>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .into_iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" };
            let since = existing
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: d.type_.to_owned(),
                status: status.to_owned(),
                reason: d.reason.to_owned(),
                message: truncate_to(d.message, MAX_MESSAGE),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let first = merge(
            &[],
            vec![Desired::new("Ready", false, "Starting", "x")],
            Some(1),
            &t(10),
        );
        assert_eq!(first[0].last_transition_time, t(10));
        let same = merge(
            &first,
            vec![Desired::new("Ready", false, "Other", "y")],
            Some(2),
            &t(20),
        );
        assert_eq!(same[0].last_transition_time, t(10));
        assert_eq!(same[0].reason, "Other");
        let flipped = merge(
            &same,
            vec![Desired::new("Ready", true, "Ok", "")],
            Some(2),
            &t(30),
        );
        assert_eq!(flipped[0].last_transition_time, t(30));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let m = "é".repeat(MAX_MESSAGE);
        let c = merge(&[], vec![Desired::new("Ready", false, "R", m)], None, &t(0));
        assert!(c[0].message.len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}
