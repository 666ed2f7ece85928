// The editor's sign-in against `weir engine` on a real apiserver: a token the cluster refuses
// is named as refused, a good one opens the editor as that user (the flow list comes through
// their RBAC), and signing out asks again. Run by engine/tests/chart.rs, which starts the
// control plane and the engine and passes WEIR_URL and WEIR_TOKEN; not a `node --test` file.
import assert from 'node:assert/strict';
import { startBrowser, shot } from './engine.mjs';

const url = process.env.WEIR_URL;
const token = process.env.WEIR_TOKEN;
const user = process.env.WEIR_USER;
assert.ok(url && token && user, 'WEIR_URL, WEIR_TOKEN and WEIR_USER are set by the Rust test');

const browser = await startBrowser();
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(url);
  await page.getByTestId('sign-in').waitFor();
  await shot(page, 'cluster-1-sign-in');

  await page.getByTestId('token').fill('not-a-token');
  await page.getByTestId('sign-in-button').click();
  const refused = page.getByTestId('sign-in-error');
  await refused.waitFor();
  assert.match(await refused.textContent(), /does not accept this token/);
  await shot(page, 'cluster-2-refused');

  await page.getByTestId('token').fill(token);
  await page.getByTestId('sign-in-button').click();
  await page.getByTestId('flow-seed').waitFor();
  assert.equal(await page.getByTestId('who').textContent(), user);
  assert.equal(await page.getByTestId('token').count(), 0, 'the token field is gone');
  await shot(page, 'cluster-3-signed-in');

  // The session outlives a reload: the cookie carries it, the page never held the token.
  await page.reload();
  await page.getByTestId('flow-seed').waitFor();
  assert.equal(await page.evaluate(() => document.cookie), '', 'the session cookie is HttpOnly');

  await page.getByTestId('sign-out').click();
  await page.getByTestId('sign-in').waitFor();
  await shot(page, 'cluster-4-signed-out');
  assert.deepEqual(errors, [], 'no page errors');
  console.log('sign-in: refused token named, signed in, reload kept the session, signed out');
} finally {
  await browser.close();
}
