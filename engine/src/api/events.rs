//! `GET /api/events`: Server-Sent Events for the editor's live view, optionally for one flow
//! (`?flow=`). A stream opens with a `node` event for every node (so the editor starts with
//! current counters), then follows the feed: `node`, `message`, `flow`, and `missed` when it
//! fell behind. Comments keep idle connections open through proxies. In a cluster a stream
//! ends once its caller's token or rights are gone, asked every ten seconds.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt, stream};
use tokio::sync::broadcast::error::RecvError;
use weir_model::Kind;
use weir_store::Selector;

use super::{
    access::Caller,
    error::ApiError,
    extract::Params,
    feed::{FeedEvent, node_event},
    state::Api,
};

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often an open stream asks whether its caller may still list the nodes it shows.
const RECHECK: Duration = Duration::from_secs(10);

/// Ends once `caller` may no longer list the nodes of `namespace`, as the cluster answers:
/// their token expired or was revoked, or their rights were taken away. A cluster that does not
/// answer ends nothing; without users (`weir up`) it never ends.
async fn revoked(caller: Caller, namespace: String) {
    if caller.client.is_none() {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(RECHECK).await;
        if let Err(ApiError::Failed { status, .. }) = caller.may("list", &namespace, "").await
            && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        {
            return;
        }
    }
}

/// Opens an event stream, which ends when its caller may no longer see what it shows.
pub async fn stream(
    State(api): State<Api>,
    caller: Caller,
    params: Params,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let namespace = params.namespace()?;
    let watched = namespace.clone();
    let flow = params.flow()?;
    // Subscribed before the nodes are read, so no change falls in between.
    let live = api.feed.subscribe();
    let nodes =
        caller.store.list(Kind::FlowNode, Some(&namespace), &Selector::everything()).await?;
    let opening: Vec<Arc<FeedEvent>> = nodes
        .iter()
        .map(node_event)
        .filter(|event| flow.as_deref().is_none_or(|flow| flow == event.flow))
        .map(Arc::new)
        .collect();
    let following = stream::unfold(live, move |mut live| {
        let (namespace, flow) = (namespace.clone(), flow.clone());
        async move {
            loop {
                match live.recv().await {
                    Ok(event) if event.concerns(&namespace, flow.as_deref()) => {
                        return Some((event, live));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        return Some((Arc::new(FeedEvent::missed(missed)), live));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let events = stream::iter(opening)
        .chain(following)
        .map(|event| Ok(Event::default().event(event.kind).data(&*event.data)))
        // Ends with the server, so open streams do not hold up a graceful shutdown.
        .take_until(api.stop.clone().cancelled_owned())
        .take_until(Box::pin(revoked(caller, watched)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
