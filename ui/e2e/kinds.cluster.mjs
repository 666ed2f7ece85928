// The kind and namespace pickers of the kubernetes nodes, and a mapping preview with a kind's
// real fields, against `weir up` acting with a kubeconfig of a user who may list Deployments
// and ConfigMaps in one namespace (and not list namespaces). Run by engine/tests/kinds.rs,
// which starts the control plane and weir up and passes WEIR_URL and WEIR_NAMESPACE; not a
// `node --test` file.
import assert from 'node:assert/strict';
import { startBrowser, openEditor, shot, drag } from './engine.mjs';

const url = process.env.WEIR_URL;
const namespace = process.env.WEIR_NAMESPACE;
assert.ok(url && namespace, 'the Rust test sets WEIR_URL and WEIR_NAMESPACE');

const browser = await startBrowser();
const errors = [];
try {
  const page = await openEditor(browser, url, errors);
  await page.getByTestId('new-flow-name').fill('kinds');
  await page.getByTestId('create-flow').click();
  await page.getByTestId('flow-kinds').waitFor();
  const canvas = page.getByTestId('canvas');
  await page.getByTestId('palette-kubernetes/resource_get').dragTo(canvas, { targetPosition: { x: 200, y: 150 } });
  // Node names are DNS labels: the component's underscore becomes a hyphen.
  await page.getByTestId('node-resource-get').waitFor();

  // The kinds offered are those the user may list, from the cluster's discovery.
  const kind = page.locator('select[data-testid=setting-kind]');
  await kind.waitFor();
  // Nothing chosen yet, the picker says so rather than showing the first kind as chosen.
  assert.equal(await kind.locator('option:checked').textContent(), '(choose a kind)');
  const kinds = await kind.locator('option').allTextContents();
  assert.ok(kinds.includes('Deployment (apps/v1)'), kinds.join(', '));
  assert.ok(kinds.includes('ConfigMap (v1)'), kinds.join(', '));
  assert.ok(!kinds.some((k) => k.startsWith('Secret ') || k.startsWith('Pod ')), `only what the user may list: ${kinds}`);
  await kind.selectOption({ label: 'Deployment (apps/v1)' });
  const namespaces = page.locator('select[data-testid=setting-namespace]');
  assert.deepEqual(await namespaces.locator('option').allTextContents(), ['(from each message)', namespace]);
  await namespaces.selectOption({ label: namespace });
  await shot(page, 'kinds-1-pickers');

  // Saved, the node's settings name the kind and namespace picked.
  await page.getByTestId('save').click();
  await page.getByTestId('save').filter({ hasText: /^Saved$/ }).waitFor();
  const saved = await (await page.request.get(`${url}/api/flows/kinds`)).json();
  const settings = saved.nodes.find((n) => n.metadata.name === 'resource-get').spec.settings;
  // The plural as the cluster serves the kind, so that the node need not guess it.
  assert.deepEqual([settings.apiVersion, settings.kind, settings.resource, settings.namespace], ['apps/v1', 'Deployment', 'deployments', namespace]);

  // A mapping from the node's output previews with the Deployment's own fields.
  await page.getByTestId('palette-common/debug').dragTo(canvas, { targetPosition: { x: 600, y: 200 } });
  await page.getByTestId('node-debug').waitFor();
  await drag(page, page.getByTestId('out-resource-get-out').locator('circle'), page.getByTestId('in-debug-in').locator('circle'));
  await page.locator('.edge .edge-hit').first().click({ force: true });
  await page.getByTestId('mapping-source-label').filter({ hasText: 'every field of the kind' }).waitFor();
  const source = JSON.parse(await page.getByTestId('mapping-source').inputValue());
  assert.equal(source.kind, 'Deployment');
  assert.equal(source.spec.replicas, 0, JSON.stringify(source.spec));
  await page.getByTestId('mapping-text').fill('{ "replicas": "{{ .spec.replicas }}", "name": "{{ .metadata.name }}" }');
  await page.getByTestId('mapping-preview').filter({ hasText: '"replicas"' }).waitFor();
  assert.deepEqual(JSON.parse(await page.getByTestId('mapping-preview').textContent()), { replicas: 0, name: '' });
  await shot(page, 'kinds-2-preview');
  assert.deepEqual(errors, [], 'no console errors');
  console.log('kinds: offered what the user may list, picked, saved, and previewed spec.replicas');
} finally {
  await browser.close();
}
