// Editor benchmarks (issue #8), run by hand: `node bench.mjs` after scripts/ui.sh and
// `cargo build --release --bin weir` (WEIR_BIN picks the binary). Prints the wasm size raw and
// gzipped, the time from navigation to an interactive editor, the time to render a 200-node
// flow, and how fast that flow re-renders while a node is dragged. Results go to
// docs/benchmarks.md by hand, with the machine.
import { readFile } from 'node:fs/promises';
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

const wasm = await readFile(join(dist, 'app_bg.wasm'));
const glue = await readFile(join(dist, 'app.js'));
console.log(`wasm: ${wasm.length} bytes raw, ${gzipSync(wasm, { level: 9 }).length} gzipped; app.js ${glue.length} raw, ${gzipSync(glue, { level: 9 }).length} gzipped`);

const engine = await startEngine();
const browser = await startBrowser();
try {
  const saved = await fetch(`${engine.url}/api/flows/big`, {
    method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(await flowOf(NODES)),
  });
  if (!saved.ok) throw new Error(`cannot save the big flow: ${await saved.text()}`);

  const loads = [];
  const renders = [];
  const fetches = [];
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
    renders.push(await page.evaluate(() => performance.now()) - start);
    fetches.push(await page.evaluate(() => {
      const entries = performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/api/flows/big'));
      return entries.length ? entries[entries.length - 1].duration : 0;
    }));

    // Drag one node for 120 steps; count the frames the browser paints meanwhile.
    const header = page.getByTestId('node-n55').locator('.node-header');
    const box = await header.boundingBox();
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
      // One step per frame, as a person's pointer gives.
      await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done())));
    }
    await page.mouse.up();
    const { frames, elapsed } = await page.evaluate((t0) => { cancelAnimationFrame(window.__raf); return { frames: window.__frames, elapsed: performance.now() - t0 }; }, dragStart);
    drags.push(frames / (elapsed / 1000));
    await context.close();
  }
  console.log(`time to interactive (navigation to flow list): median ${median(loads).toFixed(0)} ms of ${loads.map((v) => v.toFixed(0)).join(', ')}`);
  console.log(`${NODES}-node flow, click to rendered: median ${median(renders).toFixed(0)} ms of ${renders.map((v) => v.toFixed(0)).join(', ')}`);
  console.log(`  of which fetching the flow from the engine: median ${median(fetches).toFixed(0)} ms`);
  console.log(`dragging a node in it: median ${median(drags).toFixed(1)} frames per second of ${drags.map((v) => v.toFixed(1)).join(', ')}`);
} finally {
  await browser.close();
  await engine.stop();
}
