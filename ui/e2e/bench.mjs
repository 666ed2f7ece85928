// Editor benchmarks (issue #8), run by hand: `node bench.mjs` after scripts/ui.sh and
// `cargo build --release --bin weir` (WEIR_BIN picks the binary). Prints the wasm size raw and
// gzipped, the time from navigation to an interactive editor, the time to render a 200-node
// flow, and how fast that flow re-renders while a node is dragged; then the same for Node-RED's
// editor (installed from npm into ~/.cache/weir/node-red the first time) in the same browser,
// side by side. Results go to docs/benchmarks.md by hand, with the machine.
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEngine, startBrowser } from './engine.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../dist');
const NODES = 200;
const ROUNDS = 5;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function flowOf(size) {
  const nodes = [];
  const layout = {};
  for (let i = 0; i < size; i++) {
    const name = `n${i}`;
    layout[name] = { left: 40 + (i % 10) * 230, top: 40 + Math.floor(i / 10) * 120 };
    nodes.push({
      apiVersion: 'weir.dev/v1alpha1', kind: 'FlowNode', metadata: { name },
      spec: { flow: 'big', module: 'common', component: 'delay', settings: { duration: '1ms' },
        edges: i + 1 < size ? [{ port: 'out', to: { node: `n${i + 1}`, port: 'in' } }] : [] },
    });
  }
  return { flow: { apiVersion: 'weir.dev/v1alpha1', kind: 'Flow', metadata: { name: 'big' }, spec: { layout } }, nodes };
}

// Drags the element under `handle` for 120 steps, one per frame as a person's pointer gives,
// and answers how many frames per second the browser painted meanwhile.
async function dragRate(page, handle) {
  const box = await handle.boundingBox();
  await page.evaluate(() => {
    window.__frames = 0;
    const count = () => { window.__frames++; window.__raf = requestAnimationFrame(count); };
    window.__raf = requestAnimationFrame(count);
  });
  const dragStart = await page.evaluate(() => performance.now());
  await page.mouse.move(box.x + 20, box.y + 10);
  await page.mouse.down();
  const steps = 120;
  for (let step = 1; step <= steps; step++) {
    await page.mouse.move(box.x + 20 + step * 2, box.y + 10 + step);
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done())));
  }
  await page.mouse.up();
  const { frames, elapsed } = await page.evaluate((t0) => { cancelAnimationFrame(window.__raf); return { frames: window.__frames, elapsed: performance.now() - t0 }; }, dragStart);
  return frames / (elapsed / 1000);
}

async function freePort() {
  return new Promise((done) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => done(port)); });
  });
}

// Node-RED 4 from npm, with the same 200-node chain (delay nodes) in its flows file.
async function nodeRed() {
  const prefix = join(homedir(), '.cache', 'weir', 'node-red');
  const bin = join(prefix, 'node_modules', '.bin', 'node-red');
  try { await readFile(bin); } catch {
    execFileSync('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', 'node-red@4'], { stdio: 'inherit' });
  }
  const userDir = await mkdtemp(join(tmpdir(), 'node-red-bench-'));
  const flows = [{ id: 'tab', type: 'tab', label: 'big' }];
  for (let i = 0; i < NODES; i++) {
    flows.push({ id: `n${i}`, type: 'delay', z: 'tab', name: `n${i}`, pauseType: 'delay', timeout: '1', timeoutUnits: 'milliseconds',
      x: 120 + (i % 10) * 230, y: 60 + Math.floor(i / 10) * 120, wires: i + 1 < NODES ? [[`n${i + 1}`]] : [[]] });
  }
  await writeFile(join(userDir, 'flows.json'), JSON.stringify(flows));
  const port = await freePort();
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, bin, '--userDir', userDir, '--port', String(port), 'flows.json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`node-red did not start:\n${log}`)), 60_000);
    const read = (chunk) => { log += chunk; if (/Started flows|Server now running/.test(log)) { clearTimeout(timer); done(); } };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
  });
  const version = JSON.parse(await readFile(join(prefix, 'node_modules', 'node-red', 'package.json'), 'utf8')).version;
  return {
    url: `http://127.0.0.1:${port}/`, version,
    async stop() { child.kill('SIGTERM'); await new Promise((done) => { if (child.exitCode !== null) done(); else child.on('exit', done); }); await rm(userDir, { recursive: true, force: true }); },
  };
}

const wasm = await readFile(join(dist, 'app_bg.wasm'));
const glue = await readFile(join(dist, 'app.js'));
console.log(`wasm: ${wasm.length} bytes raw, ${gzipSync(wasm, { level: 9 }).length} gzipped; app.js ${glue.length} raw, ${gzipSync(glue, { level: 9 }).length} gzipped`);

const engine = await startEngine();
const browser = await startBrowser();
try {
  const saved = await fetch(`${engine.url}/api/flows/big`, {
    method: 'PUT', headers: { 'content-type': 'application/json', 'x-weir-request': '1' }, body: JSON.stringify(await flowOf(NODES)),
  });
  if (!saved.ok) throw new Error(`cannot save the big flow: ${await saved.text()}`);

  const loads = [];
  const renders = [];
  const fetches = [];
  const totals = [];
  const drags = [];
  for (let round = 0; round < ROUNDS; round++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await page.goto(engine.url);
    await page.getByTestId('new-flow-name').waitFor();
    // Navigation start to the flow list being there: wasm fetched, compiled, mounted, catalogue and flows fetched.
    await page.getByTestId('flow-big').waitFor();
    loads.push(await page.evaluate(() => performance.now()));

    const start = await page.evaluate(() => performance.now());
    await page.getByTestId('flow-big').click();
    await page.waitForFunction((n) => document.querySelectorAll('g.node').length >= n && document.querySelectorAll('g.edge').length >= n - 1, NODES, { polling: 'raf' });
    const rendered = await page.evaluate(() => performance.now());
    renders.push(rendered - start);
    totals.push(rendered);
    fetches.push(await page.evaluate(() => {
      const entries = performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/api/flows/big'));
      return entries.length ? entries[entries.length - 1].duration : 0;
    }));

    drags.push(await dragRate(page, page.getByTestId('node-n55').locator('.node-header')));
    await context.close();
  }
  console.log(`time to interactive (navigation to flow list): median ${median(loads).toFixed(0)} ms of ${loads.map((v) => v.toFixed(0)).join(', ')}`);
  console.log(`${NODES}-node flow, click to rendered: median ${median(renders).toFixed(0)} ms of ${renders.map((v) => v.toFixed(0)).join(', ')}`);
  console.log(`navigation to the ${NODES}-node flow on screen (through the flow list): median ${median(totals).toFixed(0)} ms of ${totals.map((v) => v.toFixed(0)).join(', ')}`);
  console.log(`  of which fetching the flow from the engine: median ${median(fetches).toFixed(0)} ms`);
  console.log(`dragging a node in it: median ${median(drags).toFixed(1)} frames per second of ${drags.map((v) => v.toFixed(1)).join(', ')}`);

  const red = await nodeRed();
  try {
    const shown = [];
    const redDrags = [];
    for (let round = 0; round < ROUNDS; round++) {
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await context.newPage();
      await page.goto(red.url);
      await page.waitForFunction((n) => document.querySelectorAll('g.red-ui-flow-node-group').length >= n, NODES, { polling: 'raf', timeout: 60_000 });
      shown.push(await page.evaluate(() => performance.now()));
      redDrags.push(await dragRate(page, page.locator('g.red-ui-flow-node-group').nth(55).locator('rect.red-ui-flow-node')));
      await context.close();
    }
    console.log(`Node-RED ${red.version}: navigation to the ${NODES}-node flow on screen: median ${median(shown).toFixed(0)} ms of ${shown.map((v) => v.toFixed(0)).join(', ')}`);
    console.log(`Node-RED ${red.version}: dragging a node in it: median ${median(redDrags).toFixed(1)} frames per second of ${redDrags.map((v) => v.toFixed(1)).join(', ')}`);
  } finally {
    await red.stop();
  }
} finally {
  await browser.close();
  await engine.stop();
}
