// Peer-comparison harness: Node-RED flow runs per second, the shape of Weir's
// engine/runtime/benches/runs.rs: a run enters a junction, a switch routes on
// `payload.n % 2` (JSONata), a change node per route shapes the payload with
// JSONata ({value: payload.n * 2, parity}), and the run ends at a sink whose
// input handler is replaced to count it. Runs are started as fast as they
// complete, with 1, 8 and 64 in flight (a run starts when one ends).
//
//   npm ci && node runs.js
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const RED = require("node-red");

const WARMUP = 20000;
const RUNS = Number(process.env.N) || 200000;

const shape = (parity) => ({
  type: "change", z: "runs", wires: [["sink"]],
  rules: [{ t: "set", p: "payload", pt: "msg", to: `{"value": payload.n * 2, "parity": "${parity}"}`, tot: "jsonata" }],
});

const FLOW = [
  { id: "runs", type: "tab", label: "runs" },
  { id: "entry", type: "junction", z: "runs", wires: [["route"]] },
  { id: "route", type: "switch", z: "runs", property: "payload.n % 2", propertyType: "jsonata",
    rules: [{ t: "eq", v: "0", vt: "num" }, { t: "else" }], checkall: "false", outputs: 2,
    wires: [["even"], ["odd"]] },
  { id: "even", ...shape("even") },
  { id: "odd", ...shape("default") },
  { id: "sink", type: "junction", z: "runs", wires: [] },
];

async function main() {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "weir-node-red-"));
  RED.init({
    userDir, flowFile: "flows.json", httpAdminRoot: false, httpNodeRoot: false,
    credentialSecret: false, telemetry: { enabled: false },
    logging: { console: { level: "warn", metrics: false, audit: false } },
  });
  await RED.start();
  console.log(`Node-RED ${RED.version()} on Node ${process.version}, ${os.cpus().length} CPUs`);
  const started = new Promise((resolve) => RED.events.once("flows:started", resolve));
  await RED.nodes.setFlows(FLOW, "full");
  await started;
  // flows:started may be the start of the empty flows RED.start began with: wait for ours.
  while (!RED.nodes.getNode("sink")) await new Promise((r) => setTimeout(r, 50));
  const entry = RED.nodes.getNode("entry");
  const sink = RED.nodes.getNode("sink");
  let onEnd = null;
  let wrong = 0;
  sink.removeAllListeners("input");
  sink.on("input", (msg, send, done) => {
    done();
    const parity = msg.n % 2 === 0 ? "even" : "default";
    if (msg.payload.value !== msg.n * 2 || msg.payload.parity !== parity) wrong++;
    onEnd();
  });
  const runs = (inFlight, total) => new Promise((resolve) => {
    let startedRuns = 0;
    let ended = 0;
    const start = () => { const n = startedRuns++; entry.receive({ payload: { n }, n }); };
    onEnd = () => {
      if (++ended === total) return resolve();
      if (startedRuns < total) start();
    };
    for (let k = 0; k < Math.min(inFlight, total); k++) start();
  });
  for (const inFlight of [1, 8, 64]) {
    await runs(inFlight, WARMUP);
    wrong = 0;
    const t0 = process.hrtime.bigint();
    await runs(inFlight, RUNS);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(`${inFlight} in flight: ${Math.round(RUNS / seconds)} runs/s ` +
      `(${RUNS} runs of 5 nodes in ${seconds.toFixed(2)} s; ${wrong} wrong answers)`);
  }
  await RED.stop();
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
