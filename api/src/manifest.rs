//! Loading `VpnGateway`, `VpnUser`, `VpnClient` and `Secret` objects from multi-document YAML,
//! with kubectl-style strict validation (unknown fields are errors).

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_saphyr::{Budget, Options, Spanned};

use crate::client::VpnClient;
use crate::error::{ConfigError, FieldError, ObjectKind, ObjectRef};
use crate::gateway::VpnGateway;
use crate::user::VpnUser;

/// Largest accepted input (4 MiB).
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;
/// Most YAML documents (and, separately, most objects including `List` items) accepted.
pub const MAX_DOCUMENTS: usize = 10_000;

const SLUICE_API_VERSION: &str = "sluice.dev/v1alpha1";
const DEFAULT_NAMESPACE: &str = "default";

/// The objects found in a manifest file, in input order, namespaces filled in.
///
/// Secrets are normalised like the apiserver does: `stringData` is merged over `data`
/// and then removed. `Debug` shows object names only, never secret values.
#[derive(Clone, Default, PartialEq)]
pub struct Manifests {
    /// `VpnGateway` objects.
    pub gateways: Vec<VpnGateway>,
    /// `VpnUser` objects.
    pub users: Vec<VpnUser>,
    /// `VpnClient` objects.
    pub clients: Vec<VpnClient>,
    /// `Secret` objects (`data` holds the decoded bytes).
    pub secrets: Vec<Secret>,
}

impl fmt::Debug for Manifests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |m: &ObjectMeta| {
            format!(
                "{}/{}",
                m.namespace.as_deref().unwrap_or(""),
                m.name.as_deref().unwrap_or("")
            )
        };
        f.debug_struct("Manifests")
            .field("gateways", &self.gateways)
            .field("users", &self.users)
            .field("clients", &self.clients)
            .field(
                "secrets",
                &self
                    .secrets
                    .iter()
                    .map(|s| names(&s.metadata))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Parses multi-document YAML (`---`-separated; empty documents skipped; `kind: List`
/// expanded) into typed objects.
///
/// Every problem is reported (not only the first): unsupported kinds, unknown fields
/// (by full path), type errors, missing names, duplicate objects. YAML syntax errors
/// carry line and column. Input over [`MAX_INPUT_BYTES`] or with more than
/// [`MAX_DOCUMENTS`] documents/objects is refused.
pub fn parse_manifests(yaml: &str) -> Result<Manifests, ConfigError> {
    if yaml.len() > MAX_INPUT_BYTES {
        return Err(FieldError::new(
            "input",
            "",
            format!(
                "is {} bytes, more than the limit of {MAX_INPUT_BYTES} bytes",
                yaml.len()
            ),
        )
        .into());
    }
    let mut budget = Budget::default();
    budget.max_documents = MAX_DOCUMENTS;
    let mut options = Options::default();
    options.budget = Some(budget);
    // Snippets would quote input lines, which may hold secrets.
    options.with_snippet = false;
    let docs: Vec<Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(yaml, options).map_err(yaml_error)?;

    let mut loader = Loader::default();
    for (i, doc) in docs.into_iter().enumerate() {
        let label = format!(
            "document {} (line {})",
            i.saturating_add(1),
            doc.referenced.line()
        );
        loader.document(&label, doc.value, true);
    }
    if loader.errors.is_empty() {
        Ok(loader.out)
    } else {
        Err(ConfigError {
            errors: loader.errors,
        })
    }
}

fn yaml_error(e: serde_saphyr::Error) -> ConfigError {
    let plain = e.without_snippet().to_string();
    let message = match e.location() {
        Some(loc) if !plain.contains("line") => format!(
            "YAML error at line {} column {}: {plain}",
            loc.line(),
            loc.column()
        ),
        _ => format!("YAML error: {plain}"),
    };
    FieldError::new("input", "", message).into()
}

#[derive(Default)]
struct Loader {
    out: Manifests,
    errors: Vec<FieldError>,
    objects: usize,
    seen: BTreeSet<ObjectRef>,
}

impl Loader {
    fn document(&mut self, label: &str, value: Value, top_level: bool) {
        let Value::Object(mut map) = value else {
            self.errors.push(FieldError::new(
                label,
                "",
                "is not a mapping (a Kubernetes object)",
            ));
            return;
        };
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        match (api_version, kind) {
            ("v1", "List") if top_level => {
                let items = match map.remove("items") {
                    Some(Value::Array(items)) => items,
                    None | Some(Value::Null) => Vec::new(),
                    Some(_) => {
                        self.errors.push(FieldError::new(
                            label,
                            "items",
                            "must be a list of objects",
                        ));
                        return;
                    }
                };
                for (j, item) in items.into_iter().enumerate() {
                    self.document(&format!("{label} item {j}"), item, false);
                }
            }
            (SLUICE_API_VERSION, "VpnGateway") => {
                if let Some(mut gw) =
                    self.object::<VpnGateway>(label, ObjectKind::VpnGateway, map, true)
                {
                    fill_namespace(&mut gw.metadata);
                    self.out.gateways.push(gw);
                }
            }
            (SLUICE_API_VERSION, "VpnUser") => {
                if let Some(mut user) =
                    self.object::<VpnUser>(label, ObjectKind::VpnUser, map, true)
                {
                    fill_namespace(&mut user.metadata);
                    self.out.users.push(user);
                }
            }
            (SLUICE_API_VERSION, "VpnClient") => {
                if let Some(mut client) =
                    self.object::<VpnClient>(label, ObjectKind::VpnClient, map, true)
                {
                    fill_namespace(&mut client.metadata);
                    self.out.clients.push(client);
                }
            }
            ("v1", "Secret") => {
                if let Some(mut secret) =
                    self.object::<Secret>(label, ObjectKind::Secret, map, false)
                {
                    fill_namespace(&mut secret.metadata);
                    merge_string_data(&mut secret);
                    self.out.secrets.push(secret);
                }
            }
            ("", "") => self
                .errors
                .push(FieldError::new(label, "", "has no apiVersion and kind")),
            _ => self.errors.push(FieldError::new(
                label,
                "",
                format!(
                    "has unsupported kind {kind:?} (apiVersion {api_version:?}); expected \
                     VpnGateway, VpnUser or VpnClient ({SLUICE_API_VERSION}), Secret or List (v1)"
                ),
            )),
        }
    }

    /// Deserialises one object strictly; records errors and returns `None` on failure.
    fn object<T: DeserializeOwned>(
        &mut self,
        label: &str,
        kind: ObjectKind,
        mut map: serde_json::Map<String, Value>,
        strip_type_meta: bool,
    ) -> Option<T> {
        self.objects = self.objects.saturating_add(1);
        if self.objects == MAX_DOCUMENTS.saturating_add(1) {
            self.errors.push(FieldError::new(
                "input",
                "",
                format!("has more than {MAX_DOCUMENTS} objects"),
            ));
        }
        if self.objects > MAX_DOCUMENTS {
            return None;
        }
        let metadata = map.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let namespace = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_owned();
        if name.is_empty() {
            self.errors.push(FieldError::new(
                format!("{label}: {}", kind.as_str()),
                "metadata.name",
                "is required",
            ));
            return None;
        }
        let obj = ObjectRef {
            kind,
            namespace,
            name,
        };
        if !self.seen.insert(obj.clone()) {
            self.errors.push(FieldError::new(
                obj,
                "",
                format!("is defined more than once ({label})"),
            ));
            return None;
        }
        if strip_type_meta {
            // Checked above; the derived CRD structs do not read them.
            map.remove("apiVersion");
            map.remove("kind");
        }
        let mut unknown = Vec::new();
        let mut track = serde_path_to_error::Track::new();
        let result = {
            let de = serde_path_to_error::Deserializer::new(Value::Object(map), &mut track);
            let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
            let de = serde_ignored::Deserializer::new(de, &mut on_unknown);
            T::deserialize(de)
        };
        let mut ok = true;
        for field in unknown {
            ok = false;
            self.errors
                .push(FieldError::new(obj.clone(), field, "is not a known field"));
        }
        match result {
            Ok(v) if ok => Some(v),
            Ok(_) => None,
            Err(e) => {
                let field = tracked_path(&track.path());
                let secret_value = kind == ObjectKind::Secret
                    && (field.starts_with("data") || field.starts_with("stringData"));
                let message = if secret_value {
                    "is invalid (value not shown)".to_owned()
                } else {
                    format!("is invalid: {e}")
                };
                self.errors.push(FieldError::new(obj, field, message));
                None
            }
        }
    }
}

fn fill_namespace(meta: &mut ObjectMeta) {
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
}

/// `stringData` is merged over `data`, as the apiserver does on write.
fn merge_string_data(secret: &mut Secret) {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

/// Formats a `serde_ignored` path as `spec.routes[0].foo`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut String) {
        use serde_ignored::Path;
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => {
                walk(parent, out);
            }
        }
    }
    let mut out = String::new();
    walk(path, &mut out);
    out
}

/// Formats a `serde_path_to_error` path the same way.
fn tracked_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}
