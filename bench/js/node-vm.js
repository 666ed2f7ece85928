// The image-mirror plan script in Node's `vm` module, the sandbox a Node-RED function node runs
// its code in, on the input the Weir bench wrote, with the script it took from the solution's
// manifest (`cargo bench -p weir-js --bench js` first).
// Each message is parsed from JSON and the result serialized, as a node that receives and
// sends messages would. Run: node bench/js/node-vm.js
const fs = require("fs");
const os = require("os");
const path = require("path");
const vm = require("vm");

const source = fs.readFileSync(path.join(os.tmpdir(), "weir-js-plan.mjs"), "utf8").replace("export default function plan", "function plan");
const context = vm.createContext({});
vm.runInContext(source, context);
const plan = context.plan;
const input = fs.readFileSync(path.join(os.tmpdir(), "weir-js-plan-input.json"), "utf8");

function measure(what, call, message, warmup, rounds) {
  for (let i = 0; i < warmup; i++) call(message);
  const latencies = [];
  for (let i = 0; i < rounds; i++) {
    const started = process.hrtime.bigint();
    call(message);
    latencies.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  latencies.sort((a, b) => a - b);
  const at = (p) => latencies[Math.floor((latencies.length - 1) * p)];
  const total = latencies.reduce((a, b) => a + b, 0);
  console.log(`${what}: p50 ${at(0.5).toFixed(1)} µs, p99 ${at(0.99).toFixed(1)} µs, ${Math.round(rounds / (total / 1e6))} messages/s (${rounds} messages)`);
}

console.log(`plan: ${plan(JSON.parse(input)).items.length} images to mirror`);
measure("node vm: plan over 1,000 Deployments", (m) => JSON.stringify(plan(JSON.parse(m))), input, 20, 200);
vm.runInContext("function trivial(x) { return { n: x.n + 1 }; }", context);
measure("node vm: trivial transform", (m) => JSON.stringify(context.trivial(JSON.parse(m))), '{"n":1}', 1000, 20000);
