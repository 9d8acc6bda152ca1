//! Errors of manifest loading and compilation.

use std::fmt;

pub use crate::object_ref::{ObjectKind, ObjectRef};

/// What an error is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// One object (displayed `Kind/name`, or `Kind/namespace/name` outside `default`).
    Object(ObjectRef),
    /// A place in the input that names no object: `input`, `document 2 (line 5)`.
    Place(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Object(r) => r.fmt(f),
            Subject::Place(p) => f.write_str(p),
        }
    }
}

impl From<ObjectRef> for Subject {
    fn from(r: ObjectRef) -> Self {
        Subject::Object(r)
    }
}

impl From<&str> for Subject {
    fn from(place: &str) -> Self {
        Subject::Place(place.to_owned())
    }
}

impl From<String> for Subject {
    fn from(place: String) -> Self {
        Subject::Place(place)
    }
}

/// One problem with one object (or with the input as a whole).
///
/// Never carries secret values: messages name fields and keys, not their contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The object, or the place in the input when no object can be named.
    pub object: Subject,
    /// Field path such as `spec.ppp.mtu`; empty when the error concerns the whole object.
    pub field: String,
    /// What is wrong, phrased to follow the field path.
    pub message: String,
}

impl FieldError {
    /// Builds an error.
    pub fn new(
        object: impl Into<Subject>,
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
