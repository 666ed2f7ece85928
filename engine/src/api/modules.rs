//! `GET /api/modules`: the installed modules' catalogues, for the editor's palette and
//! settings forms.

use axum::Json;
use weir_model::Module;

use super::{access::Caller, error::ApiError, extract::Params};
use crate::catalogue::Catalogue;

/// Every installed module (one per name, the namespace's own first), sorted by name.
pub async fn list(caller: Caller, params: Params) -> Result<Json<Vec<Module>>, ApiError> {
    let catalogue = Catalogue::read(&*caller.store, &params.namespace()?).await?;
    Ok(Json(catalogue.modules().to_vec()))
}
