//! `weir send NODE:PORT JSON`: starts a run by delivering a message to a node's input port
//! (`crate::ops::send`), and prints what the flow answered.

use std::io::{Read as _, Write};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{cli::SendArgs, ops::send::deliver};

/// Runs `weir send`. In a cluster the module checks who sends: the message goes with the
/// bearer token of the kubeconfig's user, who needs the right to update the node.
pub async fn run(opened: &super::open::Opened, args: SendArgs, out: &mut impl Write) -> Result<()> {
    let bearer = match &opened.config {
        Some(config) => Some(crate::gate::bearer(config).and_then(|b| b.token()).with_context(|| {
            format!(
                "in a cluster, modules take messages only from callers with a bearer token, and \
                 the user of {} has none (a client certificate cannot be passed on): use a \
                 kubeconfig with a token, such as `kubectl create token` prints",
                opened.place
            )
        })?),
        None => None,
    };
    let store = &*opened.store;
    let Some((node, port)) =
        args.target.split_once(':').filter(|(n, p)| !n.is_empty() && !p.is_empty())
    else {
        bail!("target {:?} is not NODE:PORT (such as plan:in)", args.target);
    };
    let text = if args.message == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the message from standard input")?;
        text
    } else {
        args.message.clone()
    };
    let message: Value = serde_json::from_str(&text).context("the message is not JSON")?;
    let answer = deliver(
        store,
        &args.namespace,
        (node, port),
        &message,
        args.timeout.get(),
        bearer.as_deref(),
    )
    .await?;
    writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
    Ok(())
}
