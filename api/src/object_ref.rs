//! Typed names of the objects errors are about.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The kinds of object manifests hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// `sluice.dev` VpnGateway.
    VpnGateway,
    /// `sluice.dev` VpnUser.
    VpnUser,
    /// `sluice.dev` VpnClient.
    VpnClient,
    /// Core v1 Secret.
    Secret,
}

impl ObjectKind {
    /// The kind as manifests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::VpnGateway => "VpnGateway",
            ObjectKind::VpnUser => "VpnUser",
            ObjectKind::VpnClient => "VpnClient",
            ObjectKind::Secret => "Secret",
        }
    }
}

/// One object: kind, namespace (never empty: `default` when the manifest has none) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    /// The object of `kind` that `meta` describes.
    pub fn of(kind: ObjectKind, meta: &ObjectMeta) -> Self {
        Self {
            kind,
            namespace: namespace(meta).to_owned(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// A VpnUser's reference.
    pub fn of_user(user: &crate::VpnUser) -> Self {
        Self::of(ObjectKind::VpnUser, &user.metadata)
    }

    /// `namespace/name`: the key the operator's hub and `User.source` use.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for ObjectRef {
    /// `Kind/name`, or `Kind/namespace/name` outside `default`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace.as_str() {
            "" | "default" => write!(f, "{}/{}", self.kind.as_str(), self.name),
            ns => write!(f, "{}/{ns}/{}", self.kind.as_str(), self.name),
        }
    }
}

/// An object's namespace: `default` when it names none.
pub(crate) fn namespace(meta: &ObjectMeta) -> &str {
    match meta.namespace.as_deref() {
        None | Some("") => "default",
        Some(ns) => ns,
    }
}
