// The editor's sign-in against `weir engine` on a real apiserver: a token the cluster refuses
// is named as refused, a good one opens the editor as that user (the flow list comes through
// their RBAC), the namespace picker moves the editor to another namespace the user may work in,
// and signing out asks again. Run by engine/tests/chart.rs, which starts the
// control plane and the engine and passes WEIR_URL and WEIR_TOKEN; not a `node --test` file.
import assert from 'node:assert/strict';
import { startBrowser, shot } from './engine.mjs';

const url = process.env.WEIR_URL;
const token = process.env.WEIR_TOKEN;
const user = process.env.WEIR_USER;
const home = process.env.WEIR_HOME;
const other = process.env.WEIR_OTHER_NAMESPACE;
assert.ok(url && token && user && home && other, 'the Rust test sets WEIR_URL, WEIR_TOKEN, WEIR_USER, WEIR_HOME and WEIR_OTHER_NAMESPACE');

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

  // The namespace picker: the engine's own by default, another one where the user may work,
  // kept across a reload; a name that cannot be a namespace is refused in place.
  const picker = page.getByTestId('namespace');
  assert.equal(await picker.getAttribute('placeholder'), home);
  await picker.fill('Not_A_Namespace');
  await picker.press('Enter');
  await page.locator('[data-testid=namespace].wrong').waitFor();
  await picker.fill(other);
  await picker.press('Enter');
  await page.getByTestId('flow-elsewhere').waitFor();
  assert.equal(await page.getByTestId('flow-seed').count(), 0, 'only the chosen namespace\'s flows');
  assert.equal(await page.getByTestId('namespace').inputValue(), other);
  await shot(page, 'cluster-4-other-namespace');
  await page.getByTestId('flow-elsewhere').click();
  await page.getByTestId('node-tick').waitFor();
  await page.getByTestId('namespace').fill('');
  await page.getByTestId('namespace').press('Enter');
  await page.getByTestId('flow-seed').waitFor();

  await page.getByTestId('sign-out').click();
  await page.getByTestId('sign-in').waitFor();
  await shot(page, 'cluster-5-signed-out');
  assert.deepEqual(errors, [], 'no page errors');
  console.log('sign-in: refused token named, signed in, reload kept the session, namespaces picked, signed out');
} finally {
  await browser.close();
}
