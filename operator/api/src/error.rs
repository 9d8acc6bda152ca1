//! Errors of manifest loading and compilation.

use std::fmt;

/// One problem with one object (or with the input as a whole).
///
/// Never carries secret values: messages name fields and keys, not their contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `Kind/name`, `Kind/namespace/name` outside the `default` namespace,
    /// or `document N` / `input` when no object can be named.
    pub object: String,
    /// Field path such as `spec.ppp.mtu`; empty when the error concerns the whole object.
    pub field: String,
    /// What is wrong, phrased to follow the field path.
    pub message: String,
}

impl FieldError {
    /// Builds an error.
    pub fn new(
        object: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            object: object.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {} {}", self.object, self.field, self.message)
        }
    }
}

/// All problems found in a set of manifests; displays one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Every error found (never empty), in a stable order.
    pub errors: Vec<FieldError>,
}

impl ConfigError {
    /// An error with a single entry.
    pub fn single(error: FieldError) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

impl From<FieldError> for ConfigError {
    fn from(error: FieldError) -> Self {
        Self::single(error)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Names an object as errors do: `Kind/name`, or `Kind/namespace/name` outside `default`.
pub fn object_name(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        None | Some("") | Some("default") => format!("{kind}/{name}"),
        Some(ns) => format!("{kind}/{ns}/{name}"),
    }
}
