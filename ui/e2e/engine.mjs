// A real `weir up` for the editor tests: its own data directory, a free loopback port, the
// built editor from ui/dist. It dies with the test process (setpriv --pdeathsig), and stop()
// ends it at the end of each test file.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
export const artifacts = join(here, 'artifacts');

// `extra`: more arguments for `weir up`, such as ['--token-file', FILE].
export async function startEngine(extra = []) {
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-e2e-'));
  const bin = process.env.WEIR_BIN ?? join(targetDir, 'debug', 'weir');
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', bin, 'up', '--data-dir', dataDir,
    '--listen', '127.0.0.1:0', '--webhook-listen', '127.0.0.1:0', '--ui-dir', join(root, 'ui', 'dist'), ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' },
  });
  let log = '';
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`weir up did not start within 60 s:\n${log}`)), 60_000);
    const read = (chunk) => {
      log += chunk.toString();
      const found = log.match(/weir is up on (http:\/\/127\.0\.0\.1:\d+)/);
      if (found) { clearTimeout(timer); resolveUrl(found[1]); }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`weir up exited with ${code}:\n${log}`)); });
  });
  return {
    url,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((done) => { if (child.exitCode !== null) done(); else child.on('exit', done); });
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function startBrowser() {
  await mkdir(artifacts, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A page on the editor that fails the test on any console error, once the editor has loaded
// its flow list, gallery and palette: until then they grow (each part is aria-busy), and a
// palette entry moving down under a drag would be no drag at all.
export async function openEditor(browser, url, errors) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(url);
  await page.getByTestId('new-flow-name').waitFor();
  await page.locator('[aria-busy="true"]').first().waitFor({ state: 'detached' });
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

// Drags from one element's centre to another's, in small steps, as a person would.
export async function drag(page, from, to) {
  const a = await from.boundingBox();
  const b = await to.boundingBox();
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  for (let step = 1; step <= 10; step++) {
    await page.mouse.move(a.x + a.width / 2 + (b.x + b.width / 2 - a.x - a.width / 2) * step / 10,
      a.y + a.height / 2 + (b.y + b.height / 2 - a.y - a.height / 2) * step / 10);
  }
  await page.mouse.up();
}
