//! `weir apply`: creates what is new, updates what changed, leaves the rest alone. Every
//! document is checked before anything is written, so a bad file changes nothing.

use std::io::Write;

use anyhow::{Context as _, Result, bail};
use weir_store::{DEFAULT_NAMESPACE, DynamicObject, Store, StoreError};

use crate::{cli::ApplyArgs, manifests, printer::resource_name};

/// How often an update is retried when someone else wrote the object in between.
const CONFLICT_RETRIES: usize = 5;

/// Runs `weir apply`.
pub async fn run(store: &dyn Store, args: ApplyArgs, out: &mut impl Write) -> Result<()> {
    let read = manifests::read(&args.sources)?;
    let total = read.len();
    let mut resources = match manifests::check(read) {
        Ok(resources) => resources,
        Err(invalid) => {
            let mut stderr = std::io::stderr().lock();
            for problem in &invalid {
                writeln!(stderr, "error: {problem}")?;
            }
            bail!("{} of {total} documents are invalid; nothing was applied", invalid.len());
        }
    };
    // Flows first, so a node never names a flow that does not exist yet.
    resources.sort_by_key(|(_, resource)| resource.kind());
    for (manifest, resource) in resources {
        let mut object: DynamicObject = serde_json::from_value(manifest.value.clone())
            .with_context(|| format!("{manifest}: not a Kubernetes object"))?;
        let namespace = match (object.metadata.namespace.as_deref(), args.namespace.as_deref()) {
            (Some(own), Some(flag)) if own != flag => {
                bail!(
                    "{manifest}: the manifest's namespace {own:?} does not match --namespace {flag:?}"
                )
            }
            (Some(own), _) => own.to_owned(),
            (None, flag) => flag.unwrap_or(DEFAULT_NAMESPACE).to_owned(),
        };
        object.metadata.namespace = Some(namespace);
        let outcome = apply_one(store, object).await.with_context(|| manifest.to_string())?;
        let name =
            manifest.value.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default();
        writeln!(out, "{}/{name} {outcome}", resource_name(resource.kind()))?;
    }
    Ok(())
}

async fn apply_one(store: &dyn Store, desired: DynamicObject) -> Result<&'static str, StoreError> {
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
