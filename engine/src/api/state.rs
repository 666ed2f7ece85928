//! What the API's handlers answer from.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use weir_runtime::Runtime;

use super::{access::Access, feed::Feed};
use crate::{
    kinds::{OwnCluster, Schemas},
    scope::Scope,
};

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
    /// Where webhooks are reached from outside, such as `http://127.0.0.1:7423/hooks/`.
    pub webhooks: Option<String>,
    /// Kinds' schemas read from the cluster, kept for a while.
    pub schemas: Arc<Schemas>,
    /// The cluster `weir up`'s nodes act on, for callers without a client of their own.
    pub own_cluster: Arc<OwnCluster>,
}
