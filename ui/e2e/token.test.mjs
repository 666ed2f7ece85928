// The editor against `weir up --token-file`: it asks for the token, names a wrong one, and once
// signed in (the token then rides in an HttpOnly cookie) works as on an open weir up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEngine, startBrowser, shot } from './engine.mjs';

const token = '4e1c7a0b9d2f83a6c5e7b1d0f9a8c6e2';
let dir;
let engine;
let browser;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-e2e-token-'));
  await writeFile(join(dir, 'token'), `${token}\n`);
  engine = await startEngine(['--token-file', join(dir, 'token')]);
  browser = await startBrowser();
});

after(async () => {
  await browser?.close();
  await engine?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('the editor signs in with the token file\'s token and then saves a flow', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(engine.url);
  await page.getByTestId('sign-in').waitFor();
  await page.getByTestId('token').fill('0123456789abcdef0123');
  await page.getByTestId('sign-in-button').click();
  const refused = page.getByTestId('sign-in-error');
  await refused.waitFor();
  assert.match(await refused.textContent(), /not the token of weir up's --token-file/);

  await page.getByTestId('token').fill(token);
  await page.getByTestId('sign-in-button').click();
  await page.getByTestId('new-flow-name').waitFor();
  assert.match(await page.getByTestId('who').textContent(), /--token-file/);
  await page.getByTestId('new-flow-name').fill('guarded');
  await page.getByTestId('create-flow').click();
  await page.getByTestId('flow-guarded').waitFor();
  await shot(page, 'token-1-signed-in');

  // The flow was saved, as the signed-in page (its cookie) reads it back.
  const saved = await page.request.get(`${engine.url}/api/flows/guarded`);
  assert.equal(saved.status(), 200, await saved.text());
  // Without the cookie, the API wants the token.
  const bare = await fetch(`${engine.url}/api/flows`);
  assert.equal(bare.status, 401);
  await page.close();
});
