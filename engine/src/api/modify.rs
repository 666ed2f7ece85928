//! Changing part of a stored object: read it, change it, write it back, and start over when
//! someone wrote it in between, so changing one field never undoes another writer's change to
//! another (node status is written every second).

use serde_json::Value;
use weir_model::Kind;
use weir_store::{DynamicObject, ObjectRef, Store, StoreError};

use crate::ops::apply::CONFLICT_RETRIES;

/// Applies `change` to the object's fields (`spec`, `status`, …) and writes it, unless
/// `change` says it changed nothing; returns the object as stored.
pub async fn modify(
    store: &dyn Store,
    kind: Kind,
    namespace: &str,
    name: &str,
    change: impl Fn(&mut Value) -> bool,
) -> Result<DynamicObject, StoreError> {
    modify_object(store, kind, namespace, name, |object| change(&mut object.data)).await
}

/// [`modify`] for a change that reaches the object's metadata too.
pub async fn modify_object(
    store: &dyn Store,
    kind: Kind,
    namespace: &str,
    name: &str,
    change: impl Fn(&mut DynamicObject) -> bool,
) -> Result<DynamicObject, StoreError> {
    for _ in 0..CONFLICT_RETRIES {
        let mut object = store.get(kind, namespace, name).await?;
        if !change(&mut object) {
            return Ok(object);
        }
        match store.update(object).await {
            Err(StoreError::Conflict { .. }) => {}
            written => return written,
        }
    }
    Err(StoreError::Conflict {
        object: ObjectRef::new(kind, namespace, name),
        stale: "(changed on every retry)".to_owned(),
    })
}
