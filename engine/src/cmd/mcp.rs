//! `weir mcp`: the Model Context Protocol over standard input and output (`crate::mcp`), one
//! JSON-RPC message a line, for an assistant that starts it as a local server. Its tools use an
//! engine's API (`weir up`, or a cluster's engine) with the caller's credentials, so they act
//! as the caller, with their rights, exactly as the editor would.

use std::{io::Write, time::Duration};

use anyhow::{Context as _, Result};
use axum::http::Method;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, BufReader};

use super::remote::Remote;
use crate::{
    cli::{McpArgs, StoreChoice},
    mcp::{
        rpc::{self, RpcError, code},
        server,
        tools::{Engine, Reply},
    },
};

/// How long a tool's request to the engine may take: a run started by `send_message` too.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `weir mcp` until standard input ends, asking the engine `args.at` names with its
/// token, or the kubeconfig user's (as `weir runs` does).
pub async fn run(choice: StoreChoice, args: McpArgs, out: &mut impl Write) -> Result<()> {
    let engine = Remote::new(&args.at, choice).await?;
    serve(&engine, BufReader::new(tokio::io::stdin()), out).await
}

/// Answers each line of `input` on a line of `output`, in order, until `input` ends.
async fn serve(
    engine: &dyn Engine,
    mut input: impl AsyncBufRead + Unpin,
    output: &mut impl Write,
) -> Result<()> {
    let mut line = Vec::new();
    loop {
        let answer = match next_line(&mut input, &mut line).await? {
            Line::End => return Ok(()),
            Line::TooLong => Some(rpc::error(
                &Value::Null,
                &RpcError::new(
                    code::INVALID_REQUEST,
                    format!(
                        "the message is larger than {} MiB, the most read",
                        rpc::MAX_MESSAGE_BYTES >> 20
                    ),
                ),
            )),
            Line::Read if line.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Read => server::answer(engine, rpc::read(&line)).await,
        };
        if let Some(answer) = answer {
            writeln!(output, "{answer}").context("cannot write to standard output")?;
            output.flush().context("cannot write to standard output")?;
        }
    }
}

/// What [`next_line`] read.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line, without its newline.
    Read,
    /// A line longer than a message may be, skipped.
    TooLong,
    /// The input ended.
    End,
}

/// Reads the next line into `line`, keeping at most [`rpc::MAX_MESSAGE_BYTES`] of it, so a
/// line without end cannot fill memory.
async fn next_line(input: &mut (impl AsyncBufRead + Unpin), line: &mut Vec<u8>) -> Result<Line> {
    line.clear();
    let mut too_long = false;
    loop {
        let available = input.fill_buf().await.context("cannot read standard input")?;
        if available.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::End,
                (false, false) => Line::Read,
            });
        }
        let (chunk, used, ends) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if line.len() + chunk.len() > rpc::MAX_MESSAGE_BYTES {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        input.consume(used);
        if ends {
            return Ok(if too_long { Line::TooLong } else { Line::Read });
        }
    }
}

#[async_trait::async_trait]
impl Engine for Remote {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let (status, body) = self
            .exchange(method, path, body, CALL_TIMEOUT)
            .await
            .map_err(|err| format!("{err:#}"))?;
        Ok(Reply { status: status.as_u16(), body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_whole_and_an_endless_one_is_skipped() -> Result<()> {
        let mut text = b"{\"a\":1}\n\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', rpc::MAX_MESSAGE_BYTES + 10));
        text.extend(b"\nlast");
        let mut input = BufReader::with_capacity(4096, &text[..]);
        let mut line = Vec::new();
        assert_eq!(next_line(&mut input, &mut line).await?, Line::Read);
        assert_eq!(line, b"{\"a\":1}");
        assert_eq!(next_line(&mut input, &mut line).await?, Line::Read);
        assert!(line.is_empty());
        assert_eq!(next_line(&mut input, &mut line).await?, Line::TooLong);
        assert!(line.is_empty(), "nothing of the long line is kept");
        assert_eq!(next_line(&mut input, &mut line).await?, Line::Read);
        assert_eq!(line, b"last");
        assert_eq!(next_line(&mut input, &mut line).await?, Line::End);
        Ok(())
    }
}
