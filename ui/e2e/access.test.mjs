// The editor for everyone, in a real headless Chromium against a real `weir up`: axe-core finds
// no violations (colour contrast included) on the flow list, the install form, a flow open and
// a node's settings; the install form asks for required settings without pretending to fill
// them; a flow opens fitted into view; nodes, ports and edges are reached, moved, opened, wired
// and deleted from the keyboard; a save over someone else's change offers reload or overwrite
// instead of winning silently; and in a flow larger than the view, of which only what is in
// view is drawn, Tab still reaches every node, the view following the focus.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startEngine, startBrowser, openEditor, shot } from './engine.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

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

// axe-core's every rule but the experimental ones (WCAG 2.x A and AA, colour contrast
// included, and its best practices), on the page as it is.
async function violations(on) {
  if (!(await on.evaluate(() => 'axe' in window))) await on.addScriptTag({ path: axePath });
  const found = await on.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations);
  return found.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`).join('\n  ')}`);
}

// Takes the console errors Chromium logs for refused requests the test caused on purpose.
function expectRefused(status) {
  const at = errors.findIndex((e) => e.includes(`status of ${status}`));
  assert.ok(at >= 0, `the refused request shows as a failed request: ${errors}`);
  errors.splice(at, 1);
}

// Whether every node of the open flow is drawn whole inside the canvas.
async function allInView(on) {
  return on.evaluate(() => {
    const canvas = document.querySelector('[data-testid=canvas]').getBoundingClientRect();
    return [...document.querySelectorAll('g.node')].every((node) => {
      const box = node.getBoundingClientRect();
      return box.left >= canvas.left && box.top >= canvas.top && box.right <= canvas.right && box.bottom <= canvas.bottom;
    });
  });
}

// Presses Tab from the flow list's name field until the focus is on what `wanted` accepts (an
// element's data-role, data-node, data-testid); fails after `limit` presses.
async function tabTo(on, wanted, limit = 400) {
  await on.getByTestId('new-flow-name').focus();
  const trail = [];
  for (let i = 0; i < limit; i++) {
    await on.keyboard.press('Tab');
    const at = await on.evaluate(() => {
      const e = document.activeElement;
      return { tag: e?.tagName, role: e?.getAttribute('data-role'), node: e?.getAttribute('data-node'), testid: e?.getAttribute('data-testid') };
    });
    if (wanted(at)) return;
    trail.push(JSON.stringify(at));
  }
  assert.fail(`Tab never reached what was wanted, through:\n${trail.join('\n')}`);
}

// Where a node is drawn on the canvas (its transform), in canvas units.
async function placed(on, node) {
  const transform = await on.getByTestId(`node-${node}`).getAttribute('transform');
  const [, left, top] = transform.match(/translate\(([-\d.]+) ([-\d.]+)\)/);
  return [Number(left), Number(top)];
}

test('the flow list has no accessibility violations', async () => {
  assert.deepEqual(await violations(page), []);
  assert.deepEqual(errors, [], 'no console errors');
});

test('the install form asks for required settings with an example as a hint, shows ranges, and names only the setting', async () => {
  await page.getByTestId('solution-image-mirror').click();
  await page.getByTestId('install-form').waitFor();
  const mirror = page.getByTestId('solution-setting-mirror');
  assert.equal(await mirror.inputValue(), '', 'a required setting starts empty');
  assert.equal(await mirror.getAttribute('placeholder'), 'such as registry.local:5000');
  assert.equal(await mirror.getAttribute('aria-required'), 'true');
  // Its label names it, as a screen reader reads it.
  assert.equal(await page.getByLabel('mirror (required)').getAttribute('data-testid'), 'solution-setting-mirror');
  const concurrency = page.getByTestId('solution-setting-concurrency');
  assert.deepEqual([await concurrency.getAttribute('min'), await concurrency.getAttribute('max')], ['1', '256']);
  assert.match(await page.locator('#solution-image-mirror-concurrency-help').textContent(), /From 1 to 256\.$/);
  assert.equal(await page.getByTestId('solution-setting-interval').inputValue(), '10m', 'an optional one starts at its default');
  await shot(page, 'access-1-install-form');
  assert.deepEqual(await violations(page), []);

  // Installing without the mirror stops at its field, before asking the engine.
  await page.getByTestId('install').click();
  await page.getByTestId('solution-problem-mirror').filter({ hasText: 'mirror is required' }).waitFor();
  assert.equal(await mirror.getAttribute('aria-invalid'), 'true');
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'solution-setting-mirror');
  assert.deepEqual(await violations(page), [], 'the form with its problem shown');

  // A value out of range is refused by the engine, naming the setting and not the solution
  // again (the notice already says which install failed).
  await mirror.fill('127.0.0.1:5000');
  await mirror.press('Tab');
  assert.equal(await page.getByTestId('solution-problem-mirror').count(), 0, 'typing a value clears the problem');
  await concurrency.fill('0');
  await concurrency.press('Tab');
  await page.getByTestId('install').click();
  const notice = page.getByTestId('notice').filter({ hasText: 'concurrency' });
  await notice.waitFor();
  assert.equal(await notice.textContent(), 'install image-mirror: setting concurrency: 0 is below the minimum, 1');
  expectRefused(400);

  await concurrency.fill('');
  await concurrency.press('Tab');
  await page.getByTestId('install').click();
  await page.getByTestId('notice').filter({ hasText: 'installed image-mirror: image-mirror' }).waitFor();
  assert.deepEqual(errors, [], 'no console errors');
});

test('a flow opens fitted into view, Fit fits it again, and an open flow and a node\'s settings have no violations', async () => {
  await page.getByTestId('node-mirror-patch').waitFor();
  const nodes = await page.locator('g.node').count();
  assert.equal(nodes, 19, 'the whole image mirror');
  await page.waitForFunction(() => document.querySelectorAll('g.node').length === 19);
  assert.ok(await allInView(page), 'every node of the image mirror in view as it opens');
  await shot(page, 'access-2-fitted');

  await page.locator('button[title="Reset zoom"]').click();
  assert.ok(!(await allInView(page)), 'at 100% the image mirror is larger than the canvas');
  await page.getByTestId('fit').click();
  assert.ok(await allInView(page), 'Fit brings every node back into view');
  // No mirror registry runs here: its check node says so, and the toolbar counts it (once
  // the nodes' resolved ports have come, which the flow check reads too).
  await page.locator('[data-testid="check"][title^="node mirror-check: degraded: registry 127.0.0.1:5000 has not answered"]')
    .filter({ hasText: /^1 problem$/ }).waitFor({ timeout: 10_000 });
  assert.deepEqual(await violations(page), [], 'a flow open');

  await page.getByTestId('node-mirror-tick').locator('.node-header').click();
  await page.getByTestId('settings').waitFor();
  await shot(page, 'access-3-settings');
  assert.deepEqual(await violations(page), [], 'a node\'s settings');
  assert.deepEqual(errors, [], 'no console errors');
});

test('nodes, ports and edges are reached, moved, opened, wired and deleted from the keyboard, each with a role and a name', async () => {
  await page.getByTestId('new-flow-name').fill('keys');
  await page.getByTestId('create-flow').click();
  await page.getByTestId('flow-keys').waitFor();
  // Components come in from the palette by keyboard too.
  for (const component of ['ticker', 'debug']) {
    await page.getByTestId('palette-search').fill(component);
    await page.getByTestId(`palette-common/${component}`).getByRole('button').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId(`node-${component}`).waitFor();
  }
  await page.getByTestId('palette-search').fill('');
  assert.equal(await page.getByRole('application').getAttribute('aria-label'), 'Flow keys');
  assert.equal(await page.getByRole('group', { name: 'Node ticker' }).count(), 1);
  assert.equal(await page.getByRole('button', { name: 'ticker Ticker', exact: true }).count(), 1, 'the title bar, as it reads');
  assert.equal(await page.getByRole('button', { name: 'ticker: output port out' }).count(), 1);
  assert.equal(await page.getByRole('button', { name: 'debug: input port in' }).count(), 1);
  await page.getByTestId('save').click();
  await page.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();

  // Tab reaches the ticker, which focus selects; arrows move it, one undoable edit a press.
  await tabTo(page, (at) => at.role === 'node' && at.node === 'ticker');
  await page.getByTestId('node-panel').filter({ hasText: 'ticker' }).waitFor();
  const [left, top] = await placed(page, 'ticker');
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Shift+ArrowDown');
  assert.deepEqual(await placed(page, 'ticker'), [left + 20, top + 50]);
  await page.keyboard.press('Control+Z');
  assert.deepEqual(await placed(page, 'ticker'), [left + 20, top]);
  await page.keyboard.press('Control+S');
  await page.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();
  const saved = await (await fetch(`${engine.url}/api/flows/keys`)).json();
  assert.deepEqual(saved.flow.spec.layout.ticker, { left: left + 20, top }, 'moved by keyboard, saved like a drag');

  // Enter opens its settings: the focus moves into the form.
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.closest('[data-testid=node-panel]') !== null);

  // The debug node was added where the ticker was: Shift+arrows move it further.
  await tabTo(page, (at) => at.role === 'node' && at.node === 'debug');
  await page.keyboard.press('Shift+ArrowDown');
  await page.keyboard.press('Shift+ArrowDown');
  await page.keyboard.press('Shift+ArrowDown');
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Shift+ArrowRight');
  // From the ticker's output port, the port picker lists the inputs it can be wired to.
  await tabTo(page, (at) => at.testid === 'out-ticker-out');
  await page.keyboard.press('Enter');
  await page.getByTestId('port-picker').waitFor();
  await page.waitForFunction(() => document.activeElement?.closest('[data-testid=port-picker]') !== null);
  assert.equal(await page.getByRole('dialog').getAttribute('aria-modal'), 'true');
  assert.deepEqual(await page.getByTestId('port-picker').locator('li button').allTextContents(), ['debug: in']);
  await shot(page, 'access-4-port-picker');
  assert.deepEqual(await violations(page), [], 'the port picker');
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'pick-debug-in');
  await page.keyboard.press('Enter');
  await page.getByTestId('notice').filter({ hasText: 'wired ticker:out to debug:in' }).waitFor();
  assert.equal(await page.locator('g.edge').count(), 1);
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'out-ticker-out');
  assert.equal(await page.getByRole('button', { name: 'Edge from ticker:out to debug:in' }).count(), 1);
  await shot(page, 'access-5-wired');

  // Escape closes the picker and changes nothing.
  await page.keyboard.press('Enter');
  await page.getByTestId('port-picker').waitFor();
  await page.keyboard.press('Escape');
  assert.equal(await page.getByTestId('port-picker').count(), 0);
  assert.equal(await page.locator('g.edge').count(), 1);
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'out-ticker-out');

  // From an input port it lists the outputs; the edge made already is refused, naming it.
  await tabTo(page, (at) => at.testid === 'in-debug-in');
  await page.keyboard.press('Enter');
  await page.getByTestId('port-picker').filter({ hasText: 'Wire an output port to debug:in' }).waitFor();
  assert.deepEqual(await page.getByTestId('port-picker').locator('li button').allTextContents(), ['ticker: out']);
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'pick-ticker-out');
  await page.keyboard.press('Enter');
  await page.getByTestId('notice').filter({ hasText: 'ticker:out is already wired to debug:in' }).waitFor();
  assert.equal(await page.locator('g.edge').count(), 1);

  // Delete removes the edge focus is on, then a node, as with the mouse.
  await tabTo(page, (at) => at.role === 'edge');
  await page.getByTestId('mapping-panel').waitFor();
  assert.deepEqual(await violations(page), [], 'an edge\'s mapping');
  await page.keyboard.press('Delete');
  assert.equal(await page.locator('g.edge').count(), 0);
  await tabTo(page, (at) => at.role === 'node' && at.node === 'debug');
  await page.keyboard.press('Delete');
  assert.equal(await page.getByTestId('node-debug').count(), 0);
  assert.deepEqual(errors, [], 'no console errors');
});

test('a save over someone else\'s change offers reload or overwrite; overwrite wins, reload shows their change', async () => {
  // Ours: the keys flow as saved, with the ticker alone.
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByTestId('flow-keys').click();
  await page.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();
  const [left, top] = await placed(page, 'ticker');

  // Theirs: another browser opens the same flow and moves the ticker down.
  const otherErrors = [];
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const other = await openEditor(context, engine.url, otherErrors);
  await other.getByTestId('flow-keys').click();
  await other.getByTestId('node-ticker').locator('.node-header').click();
  await other.keyboard.press('Shift+ArrowDown');
  await other.getByTestId('save').click();
  await other.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();

  // Ours moves it right and saves: refused, with the choice.
  await page.getByTestId('node-ticker').locator('.node-header').click();
  await page.keyboard.press('Shift+ArrowRight');
  await page.getByTestId('save').click();
  const choice = page.getByTestId('stale');
  await choice.waitFor();
  assert.match(await choice.textContent(), /flow default\/keys was changed by someone else/);
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'stale-reload');
  expectRefused(412);
  await shot(page, 'access-6-stale');
  assert.deepEqual(await violations(page), [], 'the choice');
  let stored = await (await fetch(`${engine.url}/api/flows/keys`)).json();
  assert.deepEqual(stored.flow.spec.layout.ticker, { left, top: top + 50 }, 'theirs stands until we choose');

  // Overwrite: ours wins, on purpose.
  await page.getByTestId('stale-overwrite').click();
  await page.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();
  assert.equal(await choice.count(), 0);
  stored = await (await fetch(`${engine.url}/api/flows/keys`)).json();
  assert.deepEqual(stored.flow.spec.layout.ticker, { left: left + 50, top });

  // Now theirs is stale: they move it again, are refused, and reload to see ours.
  await other.getByTestId('node-ticker').locator('.node-header').click();
  await other.keyboard.press('ArrowUp');
  await other.getByTestId('save').click();
  await other.getByTestId('stale').waitFor();
  await other.getByTestId('stale-reload').click();
  await other.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();
  await other.waitForFunction(() => document.querySelector('[data-testid=stale]') === null);
  assert.deepEqual(await placed(other, 'ticker'), [left + 50, top], 'reload shows our change');
  // Saving again after the reload goes through.
  await other.getByTestId('node-ticker').locator('.node-header').click();
  await other.keyboard.press('ArrowLeft');
  await other.getByTestId('save').click();
  await other.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();
  stored = await (await fetch(`${engine.url}/api/flows/keys`)).json();
  assert.deepEqual(stored.flow.spec.layout.ticker, { left: left + 40, top });
  const refused = otherErrors.filter((e) => e.includes('status of 412'));
  assert.equal(refused.length, 1, `their one refused save: ${otherErrors}`);
  assert.deepEqual(otherErrors.filter((e) => !e.includes('status of 412')), [], 'no other console errors');
  await context.close();
  assert.deepEqual(errors, [], 'no console errors');
});

// Where keyboard focus is after a key press, once the frame that moves it (focus::soon) is
// drawn: its element's marks, and whether it is whole inside the canvas.
async function focusAfter(on, key) {
  await on.keyboard.press(key);
  await on.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  return on.evaluate(() => {
    const e = document.activeElement;
    const canvas = document.querySelector('[data-testid=canvas]').getBoundingClientRect();
    const box = e.getBoundingClientRect();
    const inView = box.left >= canvas.left && box.top >= canvas.top && box.right <= canvas.right && box.bottom <= canvas.bottom;
    return { role: e.getAttribute('data-role'), node: e.getAttribute('data-node'), testid: e.getAttribute('data-testid'), inView };
  });
}

test('a flow wider than the view draws what is in view, and Tab and Shift+Tab reach every node, the view following the focus', async () => {
  // One row of 60 nodes: fitted at the smallest zoom, the view shows fewer than half of them.
  const size = 60;
  const name = (i) => `row-${String(i).padStart(2, '0')}`; // in the flow's order, by name
  const nodes = [];
  const layout = {};
  for (let i = 0; i < size; i++) {
    layout[name(i)] = { left: 40 + i * 230, top: 40 };
    nodes.push({ apiVersion: 'weir.dev/v1alpha1', kind: 'FlowNode', metadata: { name: name(i) },
      spec: { flow: 'row', module: 'common', component: 'delay', settings: { duration: '1ms' },
        edges: i + 1 < size ? [{ port: 'out', to: { node: name(i + 1), port: 'in' } }] : [] } });
  }
  const saved = await fetch(`${engine.url}/api/flows/row`, { method: 'PUT', headers: { 'content-type': 'application/json', 'x-weir-request': '1' },
    body: JSON.stringify({ flow: { apiVersion: 'weir.dev/v1alpha1', kind: 'Flow', metadata: { name: 'row' }, spec: { layout } }, nodes }) });
  assert.ok(saved.ok, await saved.text());
  await page.goto(engine.url);
  await page.locator('[aria-busy="true"]').first().waitFor({ state: 'detached' });
  await page.getByTestId('flow-row').click();
  await page.getByTestId(`node-${name(size / 2)}`).waitFor();
  const drawn = await page.locator('g.node').count();
  assert.ok(drawn < size / 2, `${drawn} of ${size} nodes drawn`);
  assert.ok(!(await allInView(page)), 'the nodes at the sides of the view are drawn, partly out of it');
  await shot(page, 'access-7-row');

  // From the first edge, Tab goes through every edge and then every node and its ports.
  await tabTo(page, (at) => at.role === 'edge');
  const reached = [];
  for (let i = 0; i < 4 * size && reached.length < size; i++) {
    const at = await focusAfter(page, 'Tab');
    if (at.role !== 'node') continue;
    assert.ok(at.inView, `${at.node} in view once it has the focus`);
    reached.push(at.node);
  }
  assert.deepEqual(reached, nodes.map((node) => node.metadata.name), 'Tab reached every node, in order');
  // And Shift+Tab back: the last node's ports, then each node before it.
  assert.equal((await focusAfter(page, 'Shift+Tab')).testid, `out-${name(size - 2)}-out`);
  const back = [];
  for (let i = 0; i < 4 * size && back.length < size - 1; i++) {
    const at = await focusAfter(page, 'Shift+Tab');
    if (at.role !== 'node') continue;
    assert.ok(at.inView, `${at.node} in view once it has the focus`);
    back.push(at.node);
  }
  assert.deepEqual(back, nodes.slice(0, -1).map((node) => node.metadata.name).reverse(), 'Shift+Tab reached every node back');
  assert.deepEqual(errors, [], 'no console errors');
});
