//! Applying manifests: creates what is new, updates what changed, leaves the rest alone. Every
//! document is checked before anything is written, so a bad file changes nothing. `weir apply`,
//! `weir solution install` and the editor's import and gallery apply through [`plan`] and
//! [`apply`].

use weir_model::{FieldError, Kind, Resource};
use weir_store::{DEFAULT_NAMESPACE, DynamicObject, Store, StoreError};

use super::error::OpError;
use crate::{
    catalogue::Catalogue,
    manifests::{self, Invalid, Manifest},
};

/// How often an update is retried when someone else wrote the object in between.
pub const CONFLICT_RETRIES: usize = 5;

/// A checked document, ready to be written.
#[derive(Debug)]
pub struct Planned {
    /// Where it came from, for messages.
    pub manifest: Manifest,
    /// The resource it describes.
    pub resource: Resource,
    /// The object to write, its namespace set and its kept secrets filled in.
    object: DynamicObject,
}

impl Planned {
    /// The object it writes, for a caller to change before it is written (secret settings
    /// moved into a Secret, in the editor's API).
    pub fn object_mut(&mut self) -> &mut DynamicObject {
        &mut self.object
    }
}

/// Checks every document (the offline rules, and that its namespace agrees with `namespace`,
/// which the caller was given as `option`) and fills in the secret settings an export
/// concealed from the nodes as stored. The outer error is a store that cannot be read; the
/// inner one lists every invalid document. Flows come first, so a node never names a flow that
/// does not exist yet.
pub async fn plan(
    store: &dyn Store,
    manifests: Vec<Manifest>,
    namespace: Option<&str>,
    option: &str,
) -> Result<Result<Vec<Planned>, Vec<Invalid>>, OpError> {
    let resources = match manifests::check(manifests) {
        Ok(resources) => resources,
        Err(invalid) => return Ok(Err(invalid)),
    };
    // Only placeholders need the catalogues, and reading them may need more permissions than
    // applying does.
    let catalogue = if resources.iter().any(|(m, _)| Catalogue::holds_placeholder(&m.value)) {
        Catalogue::read(store, namespace.unwrap_or(DEFAULT_NAMESPACE))
            .await
            .map_err(|err| OpError::store_while("cannot read the module catalogues", err))?
    } else {
        Catalogue::default()
    };
    let mut planned = Vec::new();
    let mut invalid = Vec::new();
    for (mut manifest, resource) in resources {
        let prepared =
            prepare(store, &catalogue, &mut manifest, resource.kind(), namespace, option).await?;
        match prepared {
            Ok(object) => planned.push(Planned { manifest, resource, object }),
            Err(error) => invalid.push(Invalid { manifest, error }),
        }
    }
    if !invalid.is_empty() {
        return Ok(Err(invalid));
    }
    planned.sort_by_key(|p| p.resource.kind());
    Ok(Ok(planned))
}

/// The object one checked document writes.
async fn prepare(
    store: &dyn Store,
    catalogue: &Catalogue,
    manifest: &mut Manifest,
    kind: Kind,
    namespace: Option<&str>,
    option: &str,
) -> Result<Result<DynamicObject, FieldError>, OpError> {
    let invalid =
        |path: &str, message: String| Ok(Err(FieldError { path: path.to_owned(), message }));
    let own = manifest.value.pointer("/metadata/namespace").and_then(|n| n.as_str());
    let namespace = match (own, namespace) {
        (Some(own), Some(asked)) if own != asked => {
            return invalid(
                "metadata.namespace",
                format!("the manifest's namespace {own:?} does not match {option} {asked:?}"),
            );
        }
        (Some(own), _) => own.to_owned(),
        (None, asked) => asked.unwrap_or(DEFAULT_NAMESPACE).to_owned(),
    };
    if kind == Kind::FlowNode && Catalogue::holds_placeholder(&manifest.value) {
        let name = manifest.value.pointer("/metadata/name").and_then(|n| n.as_str());
        let stored = match store.get(kind, &namespace, name.unwrap_or_default()).await {
            Ok(stored) => Some(serde_json::to_value(stored).map_err(|source| {
                OpError::Unreadable { what: format!("the stored twin of {manifest}"), source }
            })?),
            Err(StoreError::NotFound(_)) => None,
            Err(err) => return Err(OpError::store_while(manifest.to_string(), err)),
        };
        if let Err(error) = catalogue.restore(&mut manifest.value, stored.as_ref()) {
            return Ok(Err(error));
        }
    }
    let mut object: DynamicObject = match serde_json::from_value(manifest.value.clone()) {
        Ok(object) => object,
        Err(err) => return invalid("", format!("not a Kubernetes object: {err}")),
    };
    object.metadata.namespace = Some(namespace);
    Ok(Ok(object))
}

/// Writes planned documents in order, telling `report` each one's kind, name and outcome
/// (`created`, `configured` or `unchanged`).
pub async fn apply(
    store: &dyn Store,
    planned: Vec<Planned>,
    mut report: impl FnMut(Kind, &str, &'static str),
) -> Result<(), OpError> {
    for Planned { manifest, resource, object } in planned {
        let name = object.metadata.name.clone().unwrap_or_default();
        let outcome = apply_one(store, object)
            .await
            .map_err(|err| OpError::store_while(manifest.to_string(), err))?;
        report(resource.kind(), &name, outcome);
    }
    Ok(())
}

/// Creates `desired`, or updates it when what its author controls changed; says which.
pub async fn apply_one(
    store: &dyn Store,
    desired: DynamicObject,
) -> Result<&'static str, StoreError> {
    let key = weir_store::object_ref(&desired)?;
    for _ in 0..CONFLICT_RETRIES {
        let current = match store.get(key.kind, &key.namespace, &key.name).await {
            Ok(current) => current,
            Err(StoreError::NotFound(_)) => {
                match store.create(desired.clone()).await {
                    Ok(_) => return Ok("created"),
                    // Someone created it in between: update it on the next round.
                    Err(StoreError::AlreadyExists(_)) => continue,
                    Err(err) => return Err(err),
                }
            }
            Err(err) => return Err(err),
        };
        if same_content(&current, &desired) {
            return Ok("unchanged");
        }
        let mut update = desired.clone();
        update.metadata.resource_version.clone_from(&current.metadata.resource_version);
        update.metadata.uid.clone_from(&current.metadata.uid);
        match store.update(update).await {
            Ok(_) => return Ok("configured"),
            Err(StoreError::Conflict { .. }) => continue,
            Err(err) => return Err(err),
        }
    }
    Err(StoreError::Conflict { object: key, stale: "(changed on every retry)".to_owned() })
}

/// Whether applying `desired` would change nothing the author controls.
fn same_content(current: &DynamicObject, desired: &DynamicObject) -> bool {
    let authored = |object: &DynamicObject| {
        let mut data = object.data.clone();
        if let Some(fields) = data.as_object_mut() {
            fields.shift_remove("status");
        }
        let labels = object.metadata.labels.clone().unwrap_or_default();
        let annotations = object.metadata.annotations.clone().unwrap_or_default();
        (data, labels, annotations)
    };
    authored(current) == authored(desired)
}
