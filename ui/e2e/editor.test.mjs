// The editor in a real headless Chromium against a real `weir up`: a flow built by drag and
// drop runs and its messages show in the debug panel; a mapping previews live; a flow file
// imports and exports back unchanged; a broken file is refused with a message naming what is
// wrong. Screenshots of each step land in ui/e2e/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEngine, startBrowser, openEditor, shot, drag } from './engine.mjs';

let engine;
let browser;
let page;
const errors = [];

before(async () => {
  engine = await startEngine();
  browser = await startBrowser();
  page = await openEditor(browser, engine.url, errors);
});

after(async () => {
  await browser?.close();
  await engine?.stop();
});

test('a ticker and a debug node, dragged in and wired, run and show their messages', async () => {
  // weir up has no users: the header says whose identity nodes use.
  assert.equal(await page.getByTestId('who').textContent(), 'Nodes act as your kubeconfig');
  await page.getByTestId('new-flow-name').fill('demo');
  await page.getByTestId('create-flow').click();
  await page.getByTestId('flow-demo').waitFor();
  await shot(page, '1-new-flow');

  const canvas = page.getByTestId('canvas');
  await page.getByTestId('palette-common/ticker').dragTo(canvas, { targetPosition: { x: 200, y: 150 } });
  await page.getByTestId('node-ticker').waitFor();
  await page.getByTestId('setting-interval').fill('300ms');
  await page.getByTestId('setting-interval').press('Tab');
  await page.getByTestId('palette-common/debug').dragTo(canvas, { targetPosition: { x: 600, y: 200 } });
  await page.getByTestId('node-debug').waitFor();
  await shot(page, '2-nodes-dropped');

  await drag(page, page.getByTestId('out-ticker-out').locator('circle'), page.getByTestId('in-debug-in').locator('circle'));
  await page.locator('.edge').first().waitFor();
  assert.equal(await page.locator('.edge').count(), 1, 'one edge after the drag');
  assert.equal(await page.getByTestId('check').textContent(), 'no problems');
  await shot(page, '3-wired');

  await page.getByTestId('save').click();
  await page.getByTestId('notice').filter({ hasText: 'saved demo' }).waitFor();
  const received = page.getByTestId('debug-message').filter({ hasText: /debug:in\s*received/ });
  await received.nth(1).waitFor({ timeout: 20_000 });
  assert.match(await received.first().textContent(), /"count":\d+/);
  await page.getByTestId('node-debug').getByTestId('counters').filter({ hasText: /in [1-9]/ }).waitFor({ timeout: 10_000 });
  const tickerCounters = await page.getByTestId('node-ticker').getByTestId('counters').textContent();
  assert.match(tickerCounters, /errors 0$/, 'the first tick waited for the debug node to start');
  await shot(page, '4-running');

  // Suspending is an edit like any other: saved, the flow's spec says so.
  const save = page.getByTestId('save');
  await page.getByTestId('suspend').check();
  await save.filter({ hasText: /^Save$/ }).waitFor();
  await save.click();
  await save.filter({ hasText: /^Saved$/ }).waitFor();
  const suspended = await (await fetch(`${engine.url}/api/flows/demo`)).json();
  assert.equal(suspended.flow.spec.suspend, true, JSON.stringify(suspended.flow.spec));
  await page.getByTestId('suspend').uncheck();
  await save.filter({ hasText: /^Save$/ }).waitFor();
  await save.click();
  await save.filter({ hasText: /^Saved$/ }).waitFor();
  const resumed = await (await fetch(`${engine.url}/api/flows/demo`)).json();
  assert.equal(resumed.flow.spec.suspend, undefined, JSON.stringify(resumed.flow.spec));
  assert.deepEqual(errors, [], 'no console errors');
});

test('a new flow given a taken name does not replace the flow of that name', async () => {
  await page.getByTestId('new-flow-name').fill('demo');
  await page.getByTestId('create-flow').click();
  const stale = page.getByTestId('stale');
  await stale.waitFor();
  assert.match(await stale.textContent(), /A flow of this name exists already.*flow default\/demo exists already/);
  const refused = errors.findIndex((e) => e.includes('status of 412'));
  assert.ok(refused >= 0, `the refused save shows as a failed request: ${errors}`);
  errors.splice(refused, 1);
  await page.getByTestId('stale-reload').click();
  await page.getByTestId('node-ticker').waitFor();
  const stored = await (await fetch(`${engine.url}/api/flows/demo`)).json();
  assert.equal(stored.nodes.length, 2, 'the stored flow kept its nodes');
  assert.deepEqual(errors, [], 'no console errors');
});

test('an edge mapping previews its result and names what cannot work', async () => {
  await page.locator('.edge .edge-hit').first().click({ force: true });
  await page.getByTestId('mapping-panel').waitFor();
  await page.getByTestId('mapping-text').fill('{ "seen": "{{ .count }}", "note": "tick {{ .count }}" }');
  await page.getByTestId('mapping-preview').filter({ hasText: '"seen"' }).waitFor();
  const preview = JSON.parse(await page.getByTestId('mapping-preview').textContent());
  assert.equal(typeof preview.seen, 'number', 'a {{ }} field keeps its JSON type');
  assert.match(preview.note, /^tick \d+$/, 'text around {{ }} interpolates');
  await shot(page, '5-mapping-preview');

  // How the edge delivers: a bad value is refused in place, naming the field; good ones save.
  await page.getByTestId('edge-attempts').fill('0');
  await page.getByTestId('edge-attempts').press('Tab');
  await page.getByTestId('edge-delivery-problem').filter({ hasText: 'attempts: a whole number from 1 to 100' }).waitFor();
  await page.getByTestId('edge-attempts').fill('3');
  await page.getByTestId('edge-attempts').press('Tab');
  await page.getByTestId('edge-timeout').fill('5s');
  await page.getByTestId('edge-timeout').press('Tab');
  assert.equal(await page.getByTestId('edge-delivery-problem').textContent(), '');
  await page.getByTestId('save').click();
  await page.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();
  const saved = await (await page.request.get(`${engine.url}/api/flows/demo`)).json();
  const edge = saved.nodes.find((n) => n.metadata.name === 'ticker').spec.edges[0];
  assert.deepEqual([edge.retry, edge.timeout, edge.mapping.seen], [{ attempts: 3 }, '5s', '{{ .count }}']);

  await page.getByTestId('mapping-text').fill('{ "seen": "{{ .count | }}" }');
  await page.getByTestId('mapping-problems').locator('li').first().waitFor();
  assert.match(await page.getByTestId('mapping-problems').textContent(), /seen: \{\{ \.count \| \}\}/);
  await shot(page, '6-mapping-problem');
  assert.deepEqual(errors, [], 'no console errors');
});

test('select all, copy, paste, undo, redo and delete work from the keyboard; a test message reaches a node', async () => {
  // Opening the flow again drops the mapping typed above, after asking.
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByTestId('flow-demo').click();
  await page.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();
  const nodes = page.locator('g.node');
  const edges = page.locator('g.edge');
  const counts = async () => [await nodes.count(), await edges.count()];
  await page.getByTestId('canvas').click({ position: { x: 40, y: 500 } });
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Control+C');
  await page.keyboard.press('Control+V');
  assert.deepEqual(await counts(), [4, 2], 'the copies come with the edge between them');
  await page.getByTestId('node-ticker-2').waitFor();
  await shot(page, '9-pasted');
  await page.keyboard.press('Control+Z');
  assert.deepEqual(await counts(), [2, 1], 'undo takes the paste back');
  await page.keyboard.press('Control+Shift+Z');
  assert.deepEqual(await counts(), [4, 2], 'redo brings it again');

  // Shift-click adds to the selection; Delete removes both nodes and the edge between them.
  await page.getByTestId('node-ticker-2').locator('.node-header').click();
  await page.getByTestId('node-debug-2').locator('.node-header').click({ modifiers: ['Shift'] });
  await page.keyboard.press('Delete');
  assert.deepEqual(await counts(), [2, 1]);
  assert.equal(await page.getByTestId('save').textContent(), 'Saved', 'back to what is saved');

  await page.getByTestId('node-debug').locator('.node-header').click();
  await page.getByTestId('send-debug:in').fill('{ "hello": "from the editor" }');
  await page.getByTestId('send-button-debug:in').click();
  await page.getByTestId('debug-message').filter({ hasText: 'from the editor' }).first().waitFor();
  await shot(page, '10-test-message');
  assert.deepEqual(errors, [], 'no console errors');
});

test('the runs panel lists the flow\'s runs, draws one\'s path on the canvas and replays its message', async () => {
  await page.getByTestId('runs-refresh').click();
  const run = page.getByTestId('run').filter({ hasText: 'ticker → debug' }).first();
  await run.waitFor({ timeout: 10_000 });
  assert.match(await run.textContent(), /succeeded/);
  await run.locator('button').click();
  const onPath = page.locator('g.node.on-path');
  await onPath.nth(1).waitFor();
  assert.equal(await onPath.count(), 2, 'the ticker and the debug node');
  await shot(page, '11-run-path');
  const received = page.getByTestId('run-messages').locator('li');
  assert.equal(await received.count(), 1, 'only the debug node received a message');
  assert.match(await received.first().textContent(), /^debug:in\{".+\}Replay$/);
  const before = new Date().toISOString();
  await page.getByTestId('replay-debug').click();
  await page.getByTestId('notice').filter({ hasText: /sent debug its message of run [0-9a-f]{8} again/ }).waitFor();
  // The replay is a run of its own, which starts at the debug node.
  const runs = await (await fetch(`${engine.url}/api/flows/demo/runs`)).json();
  assert.ok(
    runs.some((r) => r.started >= before && r.outcome === 'succeeded' && r.nodes.join() === 'debug'),
    JSON.stringify(runs),
  );
  assert.deepEqual(errors, [], 'no console errors');
});

test('the solutions gallery installs the image mirror with the settings given', async () => {
  await page.getByTestId('solution-image-mirror').click();
  await page.getByTestId('install-form').waitFor();
  await shot(page, '11-gallery');
  // The mirror setting is required: installing without it stops at its field (more in
  // access.test.mjs).
  await page.getByTestId('install').click();
  await page.getByTestId('solution-problem-mirror').filter({ hasText: 'mirror is required' }).waitFor();
  await page.getByTestId('solution-setting-mirror').fill('127.0.0.1:5000');
  await page.getByTestId('solution-setting-interval').fill('5m');
  // An optional setting cleared installs empty: no namespace left out.
  const excluded = page.getByTestId('solution-setting-excludeNamespaces');
  assert.equal(await excluded.inputValue(), 'kube-system', 'it starts at its default');
  await excluded.fill('');
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByTestId('install').click();
  await page.getByTestId('notice').filter({ hasText: 'installed image-mirror: image-mirror' }).waitFor();
  const installed = await (await fetch(`${engine.url}/api/flows/image-mirror`)).json();
  const plan = installed.nodes.find((n) => n.metadata.name === 'mirror-plan').spec.settings;
  assert.deepEqual([plan.excludeNamespaces, plan.prefix], [[], 'mirror'], 'cleared empty, untouched at its default');
  await page.getByTestId('node-mirror-tick').waitFor();
  await page.getByTestId('node-mirror-tick').locator('.node-header').click();
  assert.equal(await page.getByTestId('setting-interval').inputValue(), '5m');
  assert.equal(await page.getByTestId('setting-firstTick').locator('option:checked').textContent(), 'immediately');
  // Its only problem: no mirror registry runs here.
  await page.locator('[data-testid="check"][title^="node mirror-check: degraded: "]')
    .filter({ hasText: /^1 problem$/ }).waitFor({ timeout: 10_000 });
  await shot(page, '12-installed');
  assert.deepEqual(errors, [], 'no console errors');
});

// In the form `weir export` writes (keys sorted), so that the export can equal it byte for byte.
const flowFile = `apiVersion: weir.dev/v1alpha1
kind: Flow
metadata:
  name: imported
spec:
  description: A flow from a file
  layout:
    hello:
      left: 80.0
      top: 60.0
---
apiVersion: weir.dev/v1alpha1
kind: FlowNode
metadata:
  name: hello
spec:
  component: signal
  flow: imported
  module: common
  settings:
    payload:
      greeting: hi
`;

test('a flow file imports and exports back unchanged', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'weir-e2e-files-'));
  const file = join(dir, 'imported.yaml');
  await writeFile(file, flowFile);
  await page.getByTestId('import-file').setInputFiles(file);
  await page.getByTestId('notice').filter({ hasText: 'imported imported.yaml: imported' }).waitFor();
  await page.getByTestId('node-hello').waitFor();
  await shot(page, '7-imported');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-flow').click()]);
  const exported = await readFile(await download.path(), 'utf8');
  await rm(dir, { recursive: true, force: true });
  assert.equal(exported, flowFile);
  assert.deepEqual(errors, [], 'no console errors');
});

test('a webhook node shows its URL, copyable, and a request to it shows in the debug panel', async () => {
  // A page of its own, whatever the tests before left selected, panned or open.
  const page = await openEditor(browser, engine.url, errors);
  await page.getByTestId('new-flow-name').fill('hooks');
  await page.getByTestId('create-flow').click();
  await page.getByTestId('flow-hooks').waitFor();
  const canvas = page.getByTestId('canvas');
  await page.getByTestId('palette-http/respond').dragTo(canvas, { targetPosition: { x: 600, y: 200 } });
  await page.getByTestId('node-respond').waitFor();
  await page.getByTestId('palette-http/webhook').dragTo(canvas, { targetPosition: { x: 200, y: 150 } });
  await page.getByTestId('node-webhook').waitFor();
  await drag(page, page.getByTestId('out-webhook-out').locator('circle'), page.getByTestId('in-respond-in').locator('circle'));
  await page.locator('.edge').first().waitFor();
  // respond takes {status, headers, body}: the edge answers with the request's body.
  await page.locator('.edge .edge-hit').first().click({ force: true });
  await page.getByTestId('mapping-text').fill('{ "body": "{{ .body }}" }');
  await page.getByTestId('mapping-text').press('Tab');
  await page.getByTestId('check').filter({ hasText: 'no problems' }).waitFor();
  await page.getByTestId('save').click();
  await page.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();

  // The URL is the webhook listener's (weir up serves it on loopback, apart from the editor).
  await page.getByTestId('node-webhook').locator('.node-header').click();
  const url = await page.getByTestId('webhook-url').textContent();
  const listener = engine.log().match(/webhooks="?(http:\/\/127\.0\.0\.1:\d+)\/hooks\//);
  assert.ok(listener, `weir up logs where it serves webhooks:\n${engine.log()}`);
  assert.equal(url, `${listener[1]}/hooks/default/hooks/webhook`);
  assert.notEqual(new URL(url).port, new URL(engine.url).port, 'webhooks have a listener of their own');
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: engine.url });
  await page.getByTestId('copy-webhook-url').click();
  await page.getByTestId('copy-webhook-url').filter({ hasText: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url);
  await shot(page, '13-webhook-url');

  // A request from outside the editor: its run shows in the debug panel. The node serves once
  // its trigger started, so until then the listener answers 404.
  const send = () => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hello: 'from outside' }) });
  let answered = await send();
  for (let tries = 0; answered.status === 404 && tries < 200; tries++) {
    await new Promise((done) => setTimeout(done, 100));
    answered = await send();
  }
  assert.equal(answered.status, 200, await answered.clone().text());
  assert.deepEqual(await answered.json(), { hello: 'from outside' });
  const seen = page.getByTestId('debug-message').filter({ hasText: /webhook:out\s*emitted/ }).filter({ hasText: 'from outside' });
  await seen.first().waitFor({ timeout: 10_000 });
  assert.match(await seen.first().textContent(), /"path":"\/hooks\/default\/hooks\/webhook"/);
  await shot(page, '14-webhook-request');
  assert.deepEqual(errors, [], 'no console errors');
  await page.close();
});

test('a broken flow file is refused with a message naming what is wrong', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'weir-e2e-files-'));
  const file = join(dir, 'broken.yaml');
  await writeFile(file, flowFile.replace('component: signal', 'component: Not_A_Name'));
  await page.getByTestId('import-file').setInputFiles(file);
  const notice = page.getByTestId('notice').filter({ hasText: 'broken.yaml' });
  await notice.waitFor();
  const text = await notice.textContent();
  await rm(dir, { recursive: true, force: true });
  assert.match(text, /spec\.component/, text);
  await shot(page, '8-broken-import');
});

test('a node its module cannot build says why on the canvas and in the inspector', async () => {
  const before = errors.length; // the broken file's refusal above is that test's
  // Its token is a Secret's: the save takes the reference, and the module, with no cluster to
  // read Secrets from, cannot build the node.
  const node = { apiVersion: 'weir.dev/v1alpha1', kind: 'FlowNode', metadata: { name: 'call-api' },
    spec: { flow: 'unbuilt', module: 'http', component: 'request', settings: { url: 'http://127.0.0.1:9/',
      auth: { type: 'bearer', token: { secretKeyRef: { name: 'api', key: 'token' } } } } } };
  const flow = { apiVersion: 'weir.dev/v1alpha1', kind: 'Flow', metadata: { name: 'unbuilt' },
    spec: { layout: { 'call-api': { left: 120, top: 120 } } } };
  const saved = await fetch(`${engine.url}/api/flows/unbuilt`, { method: 'PUT',
    headers: { 'content-type': 'application/json', 'x-weir-request': '1' }, body: JSON.stringify({ flow, nodes: [node] }) });
  assert.ok(saved.ok, await saved.text());
  // A page of its own, whatever the tests before left open.
  const page = await openEditor(browser, engine.url, errors);
  await page.getByTestId('flow-unbuilt').click();
  const box = page.getByTestId('node-call-api');
  await box.locator('.node-header').click();
  const problem = page.getByTestId('node-problem');
  await problem.waitFor({ timeout: 10_000 });
  assert.match(await problem.textContent(), /^not built: spec\.settings\.auth\.token: /);
  assert.match(await box.getAttribute('class'), /\bfailing\b/);
  // The toolbar counts it with the flow's other problems.
  await page.locator('[data-testid="check"][title^="node call-api: not built: spec.settings.auth.token: "]')
    .filter({ hasText: /^1 problem$/ }).waitFor();
  await shot(page, '15-unbuilt-node');
  assert.deepEqual(errors.slice(before), [], 'no console errors');
  await page.close();
});
