//! Whether a node's settings fit the settings schema its component publishes in its module's
//! catalogue.

use serde_json::Value;

use weir_model::secret_ref::field_path;

/// The first way `settings` do not fit `schema`: the field (such as `spec.settings.interval`)
/// and what is wrong, naming the value's type but never the value (it may be a secret).
pub fn misfit(schema: &Value, settings: &Value) -> Option<(String, String)> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(validator) => validator,
        Err(err) => {
            // A module's bug, not the flow author's: the node's build reports it.
            tracing::warn!(error = %err, "a settings schema does not compile");
            return None;
        }
    };
    let (pointer, problem) = weir_runtime::misfit(&validator, settings)?;
    Some((format!("spec.settings{}", field_path(&pointer)), problem))
}
