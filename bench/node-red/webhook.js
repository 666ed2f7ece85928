// Node-RED's side of the webhook benchmark (modules/http/benches/webhook.rs): the runtime in
// this process with its HTTP server on a loopback port, and one flow: http in (POST /hook) →
// function (shapes the reply, as Weir's respond mapping does) → http response. Prints the URL,
// then serves until killed; with IDLE_RSS=1 it prints its RSS after idling 5 s and exits.
const http = require('http');
const express = require('express');
const os = require('os');
const fs = require('fs');
const path = require('path');
const RED = require('node-red');

async function main() {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-nr-hook-'));
  const app = express();
  const server = http.createServer(app);
  const settings = {
    userDir,
    httpAdminRoot: false,
    httpNodeRoot: '/',
    credentialSecret: false,
    logging: { console: { level: 'warn' } },
    flowFile: 'flows.json',
  };
  RED.init(server, settings);
  app.use(settings.httpNodeRoot, RED.httpNode);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  await RED.start();
  const flow = [
    { id: 'tab', type: 'tab', label: 'bench' },
    { id: 'in', type: 'http in', z: 'tab', url: '/hook', method: 'post', wires: [['shape']] },
    { id: 'shape', type: 'function', z: 'tab', func: 'msg.payload = { n: msg.payload.n, seen: true };\nreturn msg;', outputs: 1, wires: [['out']] },
    { id: 'out', type: 'http response', z: 'tab', statusCode: '', headers: {}, wires: [] },
  ];
  await RED.nodes.setFlows(flow, 'full');
  console.log(`url http://127.0.0.1:${server.address().port}/hook`);
  if (process.env.IDLE_RSS) {
    await new Promise((resolve) => setTimeout(resolve, 5000));
    console.log(`idle RSS ${(process.memoryUsage().rss / 1048576).toFixed(1)} MiB`);
    process.exit(0);
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
