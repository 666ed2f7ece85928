//! What the API's handlers answer from.

use tokio_util::sync::CancellationToken;
use weir_runtime::Runtime;

use super::{access::Access, feed::Feed};
use crate::scope::Scope;

/// What the handlers answer from.
#[derive(Clone)]
pub struct Api {
    /// Who may do what.
    pub access: Access,
    /// Where flows and modules live; requests that name no namespace are for `scope.home`.
    pub scope: Scope,
    /// The modules running in this process, when any.
    pub runtime: Option<Runtime>,
    /// Changes and messages as they happen, for the event stream and the last messages.
    pub feed: Feed,
    /// Ends the event streams when the server shuts down.
    pub stop: CancellationToken,
}
