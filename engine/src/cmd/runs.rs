//! `weir runs FLOW [RUN]` and `weir replay RUN [NODE]`: the runs a running engine keeps of a
//! flow (`GET /api/flows/{flow}/runs`, `GET /api/runs/{run}`), and sending a message a node
//! received in one of them to it again (`POST /api/runs/{run}/replay`).

use std::io::Write;

use anyhow::Result;
use weir_api::{Answer, Replay, RunRecord, RunSummary};
use weir_model::NodeName;

use super::remote::Remote;
use crate::cli::{ReplayArgs, RunsArgs};

/// How much of a message `weir runs FLOW RUN` prints on its line.
const SHOWN_CHARS: usize = 80;

/// Runs `weir runs`.
pub async fn list(remote: &Remote, args: RunsArgs, out: &mut impl Write) -> Result<()> {
    let namespace = &args.namespace;
    if let Some(run) = &args.run {
        let record: RunRecord = remote.get(&["runs", run], namespace).await?;
        if record.summary.flow != args.flow {
            anyhow::bail!(
                "run {run} is one of flow {namespace}/{}, not of {}",
                record.summary.flow,
                args.flow
            );
        }
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
            return Ok(());
        }
        let mut rows = vec![row(["TIME", "NODE", "PORT", "WHAT", "MESSAGE"])];
        rows.extend(record.messages.iter().map(|seen| {
            let message = seen.payload.to_string();
            let shown = match message.char_indices().nth(SHOWN_CHARS) {
                Some((end, _)) => format!("{}…", &message[..end]),
                None => message,
            };
            vec![seen.time.clone(), seen.node.clone(), seen.port.clone(), seen.what.clone(), shown]
        }));
        crate::printer::write_columns(out, &rows)?;
        if record.summary.dropped > 0 {
            writeln!(out, "({} later messages of this run were not kept)", record.summary.dropped)?;
        }
        return Ok(());
    }
    let runs: Vec<RunSummary> = remote.get(&["flows", &args.flow, "runs"], namespace).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&runs)?)?;
        return Ok(());
    }
    if runs.is_empty() {
        writeln!(out, "No runs of flow {namespace}/{} are kept.", args.flow)?;
        return Ok(());
    }
    let mut rows = vec![row(["RUN", "STARTED", "OUTCOME", "FAILURES", "NODES"])];
    rows.extend(runs.iter().map(|run| {
        vec![
            run.run.clone(),
            run.started.clone(),
            run.outcome.as_str().to_owned(),
            run.failures.to_string(),
            run.nodes.join(" → "),
        ]
    }));
    crate::printer::write_columns(out, &rows)
}

/// Runs `weir replay`.
pub async fn replay(remote: &Remote, args: ReplayArgs, out: &mut impl Write) -> Result<()> {
    let node = args
        .node
        .as_deref()
        .map(|node| node.parse::<NodeName>().map_err(|err| anyhow::anyhow!("node {node:?}: {err}")))
        .transpose()?;
    let timeout = args.timeout.get();
    let body = Replay { node, timeout: Some(args.timeout) };
    let path = ["runs", args.run.as_str(), "replay"];
    let answer: Answer = remote.post(&path, &args.namespace, &body, timeout).await?;
    writeln!(out, "{}", serde_json::to_string_pretty(&answer.answer)?)?;
    Ok(())
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.map(str::to_owned).to_vec()
}
