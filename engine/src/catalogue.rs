//! What the installed modules offer, as their `Module` resources publish it, and what their
//! settings schemas say about a node's settings: which fields are secret. Secret settings are
//! concealed from the editor and from exports, and the placeholder they are concealed with
//! keeps the stored value when it comes back (see `weir_model::redact`).

use serde_json::Value;
use weir_model::{
    FieldError, Kind, Module,
    module::ComponentDescriptor,
    redact,
    secret_ref::{self, field_path},
};
use weir_store::{Selector, Store, StoreError};

/// The catalogues of the installed modules, one per module name.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    modules: Vec<Module>,
}

impl Catalogue {
    /// Reads the `Module` resources of every namespace (modules usually run in a namespace of
    /// their own); where two namespaces publish the same module, the one in `namespace` wins.
    /// A reader who may list them only in `namespace` (a namespace-scoped install's users)
    /// reads those.
    pub async fn read(store: &dyn Store, namespace: &str) -> Result<Self, StoreError> {
        let mut modules: Vec<Module> = Vec::new();
        for module in Self::visible(store, namespace).await? {
            let home = module.metadata.namespace.as_deref() == Some(namespace);
            match modules.iter_mut().find(|m| m.metadata.name == module.metadata.name) {
                Some(known) if home => *known = module,
                Some(_) => {}
                None => modules.push(module),
            }
        }
        modules.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(Self { modules })
    }

    /// Every `Module` resource a reader in `namespace` sees: those of every namespace, or of
    /// `namespace` alone for a reader who may list them only there. Several namespaces may
    /// publish one module.
    pub async fn visible(store: &dyn Store, namespace: &str) -> Result<Vec<Module>, StoreError> {
        let everything = Selector::everything();
        let objects = match store.list(Kind::Module, None, &everything).await {
            Err(StoreError::Forbidden { .. }) => {
                store.list(Kind::Module, Some(namespace), &everything).await?
            }
            listed => listed?,
        };
        let mut modules = Vec::new();
        for object in objects {
            let described = weir_store::describe(&object);
            match serde_json::to_value(object).and_then(serde_json::from_value) {
                Ok(module) => modules.push(module),
                // The store validated it, so this only happens across versions.
                Err(err) => tracing::warn!(error = %err, "skipping {described}"),
            }
        }
        Ok(modules)
    }

    /// The modules, sorted by name.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// Whether no module publishes a catalogue, so nothing can be checked against one.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// A module's catalogue.
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.metadata.name.as_deref() == Some(name))
    }

    /// A component's catalogue entry.
    pub fn component(&self, module: &str, component: &str) -> Option<&ComponentDescriptor> {
        self.module(module)?.spec.components.iter().find(|c| c.name.as_str() == component)
    }

    /// The settings schema of the component a FlowNode document (its JSON, or a
    /// `DynamicObject`'s data) names.
    fn settings_schema(&self, node: &Value) -> Option<&Value> {
        let name = |field: &str| node.pointer(&format!("/spec/{field}")).and_then(Value::as_str);
        self.component(name("module")?, name("component")?)?.settings_schema.as_ref()
    }

    /// Replaces the node's secret settings with [`redact::KEPT`], so they can be shown.
    pub fn conceal(&self, node: &mut Value) {
        let Some(schema) = self.settings_schema(node).cloned() else { return };
        if let Some(settings) = node.pointer_mut("/spec/settings") {
            redact::conceal(&schema, settings);
        }
    }

    /// The secret settings of a FlowNode document given as values (not by reference): their
    /// JSON pointers in `spec.settings`.
    pub fn secret_values(&self, node: &Value) -> Vec<String> {
        let Some(schema) = self.settings_schema(node) else { return Vec::new() };
        let Some(settings) = node.pointer("/spec/settings") else { return Vec::new() };
        redact::secret_pointers(schema, settings)
            .into_iter()
            .filter(|pointer| {
                settings
                    .pointer(pointer)
                    .is_some_and(|value| !secret_ref::holds_reference(value) && !value.is_null())
            })
            .collect()
    }

    /// Whether a FlowNode document's settings hold [`redact::KEPT`] anywhere, so that
    /// [`Catalogue::restore`] may have something to do.
    pub fn holds_placeholder(node: &Value) -> bool {
        fn holds(value: &Value) -> bool {
            match value {
                Value::String(text) => text == redact::KEPT,
                Value::Array(items) => items.iter().any(holds),
                Value::Object(fields) => fields.values().any(holds),
                _ => false,
            }
        }
        node.pointer("/spec/settings").is_some_and(holds)
    }

    /// Puts the stored values back where the node's secret settings hold [`redact::KEPT`];
    /// fails naming the field when `stored` (the node as stored, if it is) has no value there.
    pub fn restore(&self, node: &mut Value, stored: Option<&Value>) -> Result<(), FieldError> {
        let Some(schema) = self.settings_schema(node).cloned() else { return Ok(()) };
        let Some(settings) = node.pointer_mut("/spec/settings") else { return Ok(()) };
        let stored = stored.and_then(|s| s.pointer("/spec/settings")).unwrap_or(&Value::Null);
        match redact::restore(&schema, settings, stored).first() {
            None => Ok(()),
            Some(pointer) => Err(FieldError {
                path: format!("spec.settings{}", field_path(pointer)),
                message: format!(
                    "{:?} keeps the stored secret, but none is stored here: give the value",
                    redact::KEPT
                ),
            }),
        }
    }
}
