// Editor benchmarks (issues #8 and #24), run by hand: `node bench.mjs` after scripts/ui.sh and
// `cargo build --bin weir` (WEIR_BIN picks another binary). For chains of 200, 800 and 1,000
// nodes (BENCH_SIZES, comma-separated), BENCH_ROUNDS rounds each (5), every round in a fresh
// browser context: the time from navigation to an interactive editor, from a click on the flow
// to every node and edge in view drawn, the frame times (requestAnimationFrame deltas) while a
// node is dragged, the view panned and zoomed, one input per frame, and the page's memory after
// (JS heap, the wasm's linear memory, DOM nodes, the renderer process's RSS). Then the same for
// Node-RED's editor (bench/node-red, 4.1.15 pinned, installed there with `npm ci` the first
// time) in the same browser, unless BENCH_NODE_RED=0. Prints the wasm size raw and gzipped
// first. Results go to docs/benchmarks.md by hand, with the machine and its load.
import { readFile, writeFile, mkdtemp, rm, access } from 'node:fs/promises';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir, loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEngine, startBrowser } from './engine.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../dist');
const SIZES = (process.env.BENCH_SIZES ?? '200,800,1000').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const STEPS = 120;
const VIEWPORT = { width: 1400, height: 900 };
// The chain's grid: 10 nodes a row, each slot 230 × 120 canvas units.
const COLUMNS = 10;
const place = (i) => ({ left: 40 + (i % COLUMNS) * 230, top: 40 + Math.floor(i / COLUMNS) * 120 });

const sorted = (values) => [...values].sort((a, b) => a - b);
const median = (values) => sorted(values)[Math.floor(values.length / 2)];
const percentile = (values, p) => sorted(values)[Math.min(values.length - 1, Math.ceil(values.length * p) - 1)];
const list = (values, digits = 0) => values.map((v) => v.toFixed(digits)).join(', ');
const mb = (bytes) => (bytes / 1e6).toFixed(1);

// Node names are unique in a namespace, so each flow's have its size in them: c800-0, c800-1…
const nodeName = (size, i) => `c${size}-${i}`;

function flowOf(name, size) {
  const nodes = [];
  const layout = {};
  for (let i = 0; i < size; i++) {
    layout[nodeName(size, i)] = place(i);
    nodes.push({
      apiVersion: 'weir.dev/v1alpha1', kind: 'FlowNode', metadata: { name: nodeName(size, i) },
      spec: { flow: name, module: 'common', component: 'delay', settings: { duration: '1ms' },
        edges: i + 1 < size ? [{ port: 'out', to: { node: nodeName(size, i + 1), port: 'in' } }] : [] },
    });
  }
  return { flow: { apiVersion: 'weir.dev/v1alpha1', kind: 'Flow', metadata: { name }, spec: { layout } }, nodes };
}

// Answers the performance.now() of the first frame begun after the open flow is drawn in Weir:
// every node whose box meets the canvas (under the canvas's pan and zoom) is there, and every
// edge into or out of one. Checked in each frame, so it holds whether or not the editor draws
// what is out of view.
async function weirDrawn(page, size) {
  return page.evaluate(({ size, columns }) => new Promise((done) => {
    const check = () => {
      const svg = document.querySelector('svg.canvas');
      const group = svg?.querySelector(':scope > g');
      const found = group?.getAttribute('transform')?.match(/translate\(([-\d.]+) ([-\d.]+)\) scale\(([-\d.]+)\)/);
      if (!found || Number(found[3]) >= 1) return false; // every chain here is fitted below 100%
      const [x, y, zoom] = found.slice(1).map(Number);
      const rect = svg.getBoundingClientRect();
      const nodes = new Set([...group.querySelectorAll('g.node')].map((n) => n.getAttribute('data-testid')));
      const edges = new Set([...group.querySelectorAll('g.edge')].map((e) => e.getAttribute('data-node')));
      for (let i = 0; i < size; i++) {
        const left = 40 + (i % columns) * 230;
        const top = 40 + Math.floor(i / columns) * 120;
        const inView = x + (left + 190) * zoom > 0 && x + left * zoom < rect.width && y + (top + 74) * zoom > 0 && y + top * zoom < rect.height;
        if (!inView) continue;
        if (!nodes.has(`node-c${size}-${i}`)) return false;
        if ((i > 0 && !edges.has(`c${size}-${i - 1}`)) || (i + 1 < size && !edges.has(`c${size}-${i}`))) return false;
      }
      return true;
    };
    const frame = () => requestAnimationFrame(() => {
      if (check()) requestAnimationFrame(() => done(performance.now()));
      else frame();
    });
    frame();
  }), { size, columns: COLUMNS });
}

// The same for Node-RED, which draws every node of the open tab.
async function redDrawn(page, size) {
  return page.evaluate((size) => new Promise((done) => {
    const frame = () => requestAnimationFrame(() => {
      if (document.querySelectorAll('g.red-ui-flow-node-group').length >= size && document.querySelectorAll('g.red-ui-flow-link').length >= size - 1) {
        requestAnimationFrame(() => done(performance.now()));
      } else frame();
    });
    frame();
  }), size);
}

const nextFrame = (page) => page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done())));

// Runs `input` (one step of a gesture per frame) while every frame's start is noted, and
// answers the time between consecutive frames, in ms.
async function frameTimes(page, input) {
  await page.evaluate(() => {
    window.__deltas = [];
    let last;
    const tick = (t) => { if (last !== undefined) window.__deltas.push(t - last); last = t; window.__raf = requestAnimationFrame(tick); };
    window.__raf = requestAnimationFrame(tick);
  });
  await input();
  return page.evaluate(() => { cancelAnimationFrame(window.__raf); return window.__deltas; });
}

// Marks the element of `selector` nearest the middle of `area` (a selector) as data-bench=target.
async function nearestMiddle(page, selector, area) {
  await page.evaluate(({ selector, area }) => {
    const box = document.querySelector(area).getBoundingClientRect();
    const [cx, cy] = [box.left + box.width / 2, box.top + box.height / 2];
    let best;
    let distance = Infinity;
    for (const element of document.querySelectorAll(selector)) {
      const b = element.getBoundingClientRect();
      const d = Math.hypot(b.left + b.width / 2 - cx, b.top + b.height / 2 - cy);
      if (d < distance) { distance = d; best = element; }
    }
    document.querySelectorAll('[data-bench]').forEach((e) => e.removeAttribute('data-bench'));
    best.setAttribute('data-bench', 'target');
  }, { selector, area });
}

async function drag(page, handle) {
  const box = await handle.boundingBox();
  const [x, y] = [box.x + Math.min(20, box.width / 2), box.y + box.height / 2];
  return frameTimes(page, async () => {
    await page.mouse.move(x, y);
    await page.mouse.down();
    for (let step = 1; step <= STEPS; step++) {
      await page.mouse.move(x + step * 2, y + step);
      await nextFrame(page);
    }
    await page.mouse.up();
  });
}

// Zooms in 20 wheel notches and out 20, three times, at the middle of `area`.
async function zoom(page, area, modifier) {
  const box = await page.locator(area).boundingBox();
  const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
  await page.mouse.move(x, y);
  if (modifier) await page.keyboard.down(modifier);
  const times = await frameTimes(page, async () => {
    for (let step = 0; step < STEPS; step++) {
      await page.mouse.wheel(0, Math.floor(step / 20) % 2 === 0 ? -100 : 100);
      await nextFrame(page);
    }
  });
  if (modifier) await page.keyboard.up(modifier);
  return times;
}

// The renderer's memory once garbage is collected: JS heap, DOM nodes (CDP), the wasm's
// linear memory (noted by the init script below), the renderer process's RSS (/proc).
async function memory(browser, page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('Performance.enable');
  const { metrics } = await cdp.send('Performance.getMetrics');
  const metric = (name) => metrics.find((m) => m.name === name)?.value ?? 0;
  const wasm = await page.evaluate(() => window.__wasmMemory?.buffer.byteLength ?? 0);
  const system = await browser.newBrowserCDPSession();
  const { processInfo } = await system.send('SystemInfo.getProcessInfo');
  let rss = 0;
  for (const { type, id } of processInfo) {
    if (type !== 'renderer') continue;
    const status = await readFile(`/proc/${id}/status`, 'utf8').catch(() => '');
    rss = Math.max(rss, Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1] ?? 0) * 1024);
  }
  await system.detach();
  return { heap: metric('JSHeapUsedSize'), nodes: metric('Nodes'), wasm, rss };
}

const noteWasmMemory = () => {
  for (const name of ['instantiateStreaming', 'instantiate']) {
    const original = WebAssembly[name];
    WebAssembly[name] = async (...args) => {
      const made = await original(...args);
      if (made.instance) window.__wasmMemory = made.instance.exports.memory;
      return made;
    };
  }
};

function summary(who, size, r) {
  const frames = (name) => {
    const all = r[name].flat();
    const p95s = r[name].map((times) => percentile(times, 0.95));
    return `${name}: p95 ${median(p95s).toFixed(1)} ms (rounds ${list(p95s, 1)}), p50 ${median(all).toFixed(1)}, max ${Math.max(...all).toFixed(1)}, ${all.length} frames`;
  };
  console.log(`${who}, ${size} nodes:`);
  if (r.loads.length) console.log(`  navigation to an interactive editor: median ${median(r.loads).toFixed(0)} ms of ${list(r.loads)}`);
  console.log(`  open (click) to drawn: median ${median(r.opens).toFixed(0)} ms of ${list(r.opens)}`);
  if (r.fetches.length) console.log(`    of which fetching the flow: median ${median(r.fetches).toFixed(0)} ms`);
  console.log(`  navigation to drawn: median ${median(r.totals).toFixed(0)} ms of ${list(r.totals)}`);
  console.log(`  frame times, ${frames('drag')}`);
  console.log(`               ${frames('pan')}`);
  console.log(`               ${frames('zoom')}`);
  const m = (key) => median(r.memory.map((x) => x[key]));
  console.log(`  memory (median): JS heap ${mb(m('heap'))} MB, wasm memory ${mb(m('wasm'))} MB, ${m('nodes')} DOM nodes, renderer RSS ${mb(m('rss'))} MB`);
}

const rounds = () => ({ loads: [], opens: [], fetches: [], totals: [], drag: [], pan: [], zoom: [], memory: [] });

async function weir(browser, engine, size) {
  const name = `chain-${size}`;
  const saved = await fetch(`${engine.url}/api/flows/${name}`, {
    method: 'PUT', headers: { 'content-type': 'application/json', 'x-weir-request': '1' }, body: JSON.stringify(flowOf(name, size)),
  });
  if (!saved.ok) throw new Error(`cannot save flow ${name}: ${(await saved.text()).slice(0, 500)}`);
  // The flow runs once saved: wait until every node reported that it is built, so that a
  // thousand statuses arriving are not what is measured.
  for (let ready = false; !ready; await new Promise((done) => setTimeout(done, 1000))) {
    const { nodes } = await (await fetch(`${engine.url}/api/flows/${name}`)).json();
    ready = nodes.every((node) => node.status?.conditions?.length);
  }
  const r = rounds();
  for (let round = 0; round < ROUNDS; round++) {
    const context = await browser.newContext({ viewport: VIEWPORT });
    await context.addInitScript(noteWasmMemory);
    const page = await context.newPage();
    await page.goto(engine.url);
    await page.getByTestId(`flow-${name}`).waitFor();
    await page.locator('[aria-busy="true"]').first().waitFor({ state: 'detached' });
    r.loads.push(await page.evaluate(() => performance.now()));

    const start = await page.evaluate(() => performance.now());
    await page.getByTestId(`flow-${name}`).click();
    const drawn = await weirDrawn(page, size);
    r.opens.push(drawn - start);
    r.totals.push(drawn);
    r.fetches.push(await page.evaluate((name) => {
      const entries = performance.getEntriesByType('resource').filter((e) => e.name.endsWith(`/api/flows/${name}`));
      return entries.length ? entries[entries.length - 1].duration : 0;
    }, name));

    await nearestMiddle(page, 'g.node', 'svg.canvas');
    r.drag.push(await drag(page, page.locator('[data-bench=target] .node-header')));
    // Pan from the background beside the flow: up 60 steps, then back down.
    const from = await page.evaluate(() => {
      const svg = document.querySelector('svg.canvas');
      const box = svg.getBoundingClientRect();
      for (let x = box.left + 4; x < box.right; x += 4) {
        if (document.elementFromPoint(x, box.top + box.height / 2) === svg) return [x, box.top + box.height / 2];
      }
      throw new Error('no background to pan from');
    });
    r.pan.push(await frameTimes(page, async () => {
      await page.mouse.move(...from);
      await page.mouse.down();
      for (let step = 1; step <= STEPS; step++) {
        await page.mouse.move(from[0], from[1] - 8 * (step <= STEPS / 2 ? step : STEPS - step));
        await nextFrame(page);
      }
      await page.mouse.up();
    }));
    r.zoom.push(await zoom(page, 'svg.canvas'));
    r.memory.push(await memory(browser, page));
    await context.close();
  }
  return r;
}

async function freePort() {
  return new Promise((done) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => done(port)); });
  });
}

// Node-RED with two tabs: `small` (one node, shown first) and `big`, the same chain of delay
// nodes, opened by a click on its tab as Weir's flow is opened from the flow list.
async function nodeRed(size) {
  const prefix = resolve(here, '../../bench/node-red');
  const bin = join(prefix, 'node_modules', '.bin', 'node-red');
  try { await access(bin); } catch {
    execFileSync('npm', ['ci', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error'], { stdio: 'inherit' });
  }
  const userDir = await mkdtemp(join(tmpdir(), 'node-red-bench-'));
  const flows = [{ id: 'small', type: 'tab', label: 'small' }, { id: 'big', type: 'tab', label: 'big' },
    { id: 's0', type: 'delay', z: 'small', name: 's0', pauseType: 'delay', timeout: '1', timeoutUnits: 'milliseconds', x: 120, y: 60, wires: [[]] }];
  for (let i = 0; i < size; i++) {
    const { left, top } = place(i);
    flows.push({ id: `n${i}`, type: 'delay', z: 'big', name: `n${i}`, pauseType: 'delay', timeout: '1', timeoutUnits: 'milliseconds',
      x: left + 80, y: top + 20, wires: i + 1 < size ? [[`n${i + 1}`]] : [[]] });
  }
  await writeFile(join(userDir, 'flows.json'), JSON.stringify(flows));
  // No welcome tour and no question about update notifications over the workspace.
  await writeFile(join(userDir, 'settings.js'), 'module.exports = { editorTheme: { tours: false }, telemetry: { enabled: false } };\n');
  const port = await freePort();
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, bin, '--userDir', userDir, '--settings', join(userDir, 'settings.js'), '--port', String(port), 'flows.json'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

async function redRounds(browser, red, size) {
  const r = rounds();
  for (let round = 0; round < ROUNDS; round++) {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    await page.goto(red.url);
    await redDrawn(page, 1);
    r.loads.push(await page.evaluate(() => performance.now()));
    const start = await page.evaluate(() => performance.now());
    await page.locator('#red-ui-tab-big a').click();
    const drawn = await redDrawn(page, size);
    r.opens.push(drawn - start);
    r.totals.push(drawn);
    await nearestMiddle(page, 'g.red-ui-flow-node-group', '#red-ui-workspace-chart');
    r.drag.push(await drag(page, page.locator('[data-bench=target] rect.red-ui-flow-node')));
    // Node-RED pans by scrolling its workspace: down 60 notches of 40 px, then back up.
    const box = await page.locator('#red-ui-workspace-chart').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    r.pan.push(await frameTimes(page, async () => {
      for (let step = 0; step < STEPS; step++) {
        await page.mouse.wheel(0, step < STEPS / 2 ? 40 : -40);
        await nextFrame(page);
      }
    }));
    // And zooms with Alt and the wheel.
    r.zoom.push(await zoom(page, '#red-ui-workspace-chart', 'Alt'));
    r.memory.push(await memory(browser, page));
    await context.close();
  }
  return r;
}

const wasm = await readFile(join(dist, 'app_bg.wasm'));
const glue = await readFile(join(dist, 'app.js'));
console.log(`wasm: ${wasm.length} bytes raw, ${gzipSync(wasm, { level: 9 }).length} gzipped; app.js ${glue.length} raw, ${gzipSync(glue, { level: 9 }).length} gzipped`);
console.log(`load average before: ${list(loadavg(), 2)}`);

const engine = await startEngine();
const browser = await startBrowser();
try {
  for (const size of SIZES) summary('Weir', size, await weir(browser, engine, size));
  console.log(`load average: ${list(loadavg(), 2)}`);
  if (process.env.BENCH_NODE_RED !== '0') {
    for (const size of SIZES) {
      const red = await nodeRed(size);
      try {
        summary(`Node-RED ${red.version}`, size, await redRounds(browser, red, size));
      } finally {
        await red.stop();
      }
    }
    console.log(`load average after: ${list(loadavg(), 2)}`);
  }
} finally {
  await browser.close();
  await engine.stop();
}
