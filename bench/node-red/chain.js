// Peer-comparison harness: Node-RED per-hop message cost through a 13-node,
// in-process chain (12 hops). Embeds the Node-RED runtime (no editor, no HTTP),
// deploys one chain per variant, injects messages with node.receive() on the
// first node and detects completion on the last one.
//
//   npm ci && node chain.js            # default runtime (async delivery)
//   node chain.js --sync               # runtimeSyncDelivery: true (diagnostic)
//   N=10000 node chain.js              # fewer measured messages
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const RED = require("node-red");

const NODES = 13;
const HOPS = NODES - 1;
const WARMUP = 2000;
const N = Number(process.env.N) || 50000;
const SYNC = process.argv.includes("--sync");

// The transformation, comparable to the jq mapping
//   { "value": "{{ .value + 1 }}", "name": "{{ .name }}" }
const JSONATA = '{"value": payload.value + 1, "name": payload.name}';
const FUNC = "msg.payload = { value: msg.payload.value + 1, name: msg.payload.name };\nreturn msg;";

// Each variant: the config of the 12 forwarding nodes; `expect` is how much
// payload.value grows over the chain (checked on every message at the sink).
const VARIANTS = [
  { label: "pass-through (junction)", node: { type: "junction" }, expect: 0 },
  { label: "pass-through (change, no rules)", node: { type: "change", rules: [] }, expect: 0 },
  { label: "pass-through (function `return msg;`)", node: { type: "function", func: "return msg;", outputs: 1 }, expect: 0 },
  { label: "transform (change + JSONata)", expect: HOPS,
    node: { type: "change", rules: [{ t: "set", p: "payload", pt: "msg", to: JSONATA, tot: "jsonata" }] } },
  { label: "transform (function)", node: { type: "function", func: FUNC, outputs: 1 }, expect: HOPS },
];

function chainFlow(v) {
  const ids = Array.from({ length: NODES }, (_, i) => `n${i}`);
  const nodes = ids.map((id, i) => i < NODES - 1
    ? { ...v.node, id, z: "chain", wires: [[ids[i + 1]]] } // exactly one wire: no clone
    : { id, type: "junction", z: "chain", wires: [] });   // sink, handler replaced below
  return { ids, flow: [{ id: "chain", type: "tab", label: "chain" }, ...nodes] };
}

async function deploy(v) {
  const { ids, flow } = chainFlow(v);
  const started = new Promise((resolve) => RED.events.once("flows:started", resolve));
  await RED.nodes.setFlows(flow, "full");
  await started;
  return { first: RED.nodes.getNode(ids[0]), sink: RED.nodes.getNode(ids[NODES - 1]) };
}

const msgFor = (i) => ({ payload: { value: i, name: `item-${i}` } });
const fmt = (ns) => (ns >= 1e9 ? `${(ns / 1e9).toFixed(2)} s` : `${(ns / 1e6).toFixed(0)} ms`);

async function bench(v) {
  const { first, sink } = await deploy(v);
  let onArrive = null;
  let bad = 0;
  // Replace the sink junction's input handler: record completion, check the payload.
  sink.removeAllListeners("input");
  sink.on("input", (msg, send, done) => {
    done();
    if (msg.payload.value !== msg.seq + v.expect || msg.payload.name !== `item-${msg.seq}`) bad++;
    onArrive();
  });
  const inject = (i) => first.receive({ ...msgFor(i), seq: i });

  // Sequential: the next message is injected only when the previous one reached
  // the sink (queueMicrotask so the stack unwinds first; matters for --sync).
  const sequential = (n) => new Promise((resolve) => {
    let i = 0;
    onArrive = () => (++i === n ? resolve() : queueMicrotask(() => inject(i)));
    inject(0);
  });
  // Pipelined: all messages injected back to back, wait for the last one.
  const pipelined = (n) => new Promise((resolve) => {
    let i = 0;
    onArrive = () => { if (++i === n) resolve(); };
    for (let k = 0; k < n; k++) inject(k);
  });

  await sequential(WARMUP);
  let t0 = process.hrtime.bigint();
  await sequential(N);
  const seq = Number(process.hrtime.bigint() - t0);
  await pipelined(WARMUP);
  t0 = process.hrtime.bigint();
  await pipelined(N);
  const pipe = Number(process.hrtime.bigint() - t0);

  const perHop = (ns) => (ns / (N * HOPS) / 1000).toFixed(2);
  console.log(`${v.label}: ${perHop(seq)} µs per hop (${N} messages through ${NODES} nodes in ${fmt(seq)}, sequential)`);
  console.log(`${v.label} [pipelined throughput]: ${perHop(pipe)} µs per hop, ` +
    `${Math.round(N / (pipe / 1e9))} msg/s (${N} messages injected back to back, last done after ${fmt(pipe)})`);
  if (bad) console.log(`  !! ${bad} messages arrived with an unexpected payload`);
}

async function main() {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "weir-node-red-"));
  RED.init({
    userDir,
    flowFile: "flows.json",
    httpAdminRoot: false,
    httpNodeRoot: false,
    credentialSecret: false,
    telemetry: { enabled: false },
    runtimeSyncDelivery: SYNC,
    logging: { console: { level: "warn", metrics: false, audit: false } },
  });
  await RED.start();
  console.log(`Node-RED ${RED.version()} on Node ${process.version}, ${os.cpus().length} CPUs` +
    `, ${SYNC ? "runtimeSyncDelivery: true" : "default async delivery (setImmediate per hop)"}`);

  await deploy(VARIANTS[0]);
  await new Promise((r) => setTimeout(r, 5000));
  const mib = (b) => (b / 1048576).toFixed(1);
  console.log(`idle RSS after deploying the ${NODES}-node chain and idling 5 s: ${mib(process.memoryUsage().rss)} MiB`);

  for (const v of VARIANTS) await bench(v);
  console.log(`RSS after all runs: ${mib(process.memoryUsage().rss)} MiB`);

  await RED.stop();
  fs.rmSync(userDir, { recursive: true, force: true });
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
