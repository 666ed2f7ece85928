//! The Model Context Protocol server an AI assistant builds flows with: JSON-RPC messages
//! (`rpc`), the methods (`server`) and the tools (`tools`), each tool one request to the
//! engine's API made as the caller. Two transports carry it: `weir mcp` over standard input and
//! output, a client of an engine's API with the caller's token (`cmd/mcp.rs`), and streamable
//! HTTP at `/api/mcp`, inside the engine behind the API's own authentication (`api/mcp.rs`).

pub mod rpc;
pub mod server;
pub mod tools;
