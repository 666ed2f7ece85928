//! Numbers a node reports about what it looks after (images mirrored, workloads covered): the
//! runtime serves them on `/metrics` beside its own, each series labelled with the node's
//! namespace, flow and name, so a dashboard or an alert can follow what a flow achieves, not
//! only that it ran.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

use crate::NodeError;

/// A gauge family a component reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge {
    /// The metric name: `weir_` and lowercase snake_case, such as `weir_mirror_images`.
    pub name: &'static str,
    /// What it counts, for the `# HELP` line.
    pub help: &'static str,
}

/// One series: its labels (besides the node's) and its value.
pub type Series = (Vec<(&'static str, String)>, f64);

/// A family and its series.
pub type Family = (Gauge, Vec<Series>);

/// The most series one node may report in one family: a bound on what a component's labels
/// can make the endpoint serve.
pub const MAX_SERIES: usize = 256;

/// The gauges a node reported, by family; kept by the runtime with the node's state.
#[derive(Debug, Default)]
pub struct Gauges {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl Gauges {
    /// Replaces every series of `gauge` with `series`.
    ///
    /// # Errors
    /// An internal error when the name or a label name is not lowercase snake_case (the name
    /// starting `weir_`), or when there are more than [`MAX_SERIES`] series.
    pub fn replace(&self, gauge: Gauge, series: Vec<Series>) -> Result<(), NodeError> {
        let snake = |text: &str| {
            !text.is_empty()
                && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !gauge.name.starts_with("weir_") || !snake(gauge.name) {
            return Err(NodeError::internal(format!(
                "gauge {:?}: a name is weir_ and lowercase snake_case",
                gauge.name
            )));
        }
        if let Some((label, _)) = series
            .iter()
            .flat_map(|(labels, _)| labels)
            .find(|(l, _)| !snake(l) || ["namespace", "flow", "node"].contains(l))
        {
            return Err(NodeError::internal(format!(
                "gauge {}: label {label:?} is not lowercase snake_case or is one the runtime sets",
                gauge.name
            )));
        }
        if series.len() > MAX_SERIES {
            return Err(NodeError::internal(format!(
                "gauge {}: {} series, more than {MAX_SERIES}",
                gauge.name,
                series.len()
            )));
        }
        self.families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(gauge.name, (gauge, series));
        Ok(())
    }

    /// Every family with its series, by name.
    pub fn snapshot(&self) -> Vec<Family> {
        self.families.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGES: Gauge = Gauge { name: "weir_mirror_images", help: "Images by state." };

    #[test]
    fn a_family_is_replaced_whole_and_bad_names_are_refused() {
        let gauges = Gauges::default();
        gauges.replace(IMAGES, vec![(vec![("state", "failed".to_owned())], 2.0)]).unwrap();
        gauges.replace(IMAGES, vec![(vec![("state", "mirrored".to_owned())], 5.0)]).unwrap();
        let snapshot = gauges.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot[0].1, vec![(vec![("state", "mirrored".to_owned())], 5.0)]);

        let bad = Gauge { name: "mirror_images", help: "" };
        assert!(gauges.replace(bad, Vec::new()).unwrap_err().message().contains("weir_"));
        let relabel = vec![(vec![("node", "x".to_owned())], 1.0)];
        assert!(gauges.replace(IMAGES, relabel).is_err());
        let many = (0..=MAX_SERIES).map(|i| (vec![("i", i.to_string())], 1.0)).collect();
        assert!(gauges.replace(IMAGES, many).is_err());
    }
}
