// Runs the console's browser specs against a running engine.
//
//   FLOWMESH_URL     the engine's base URL (http://127.0.0.1:port)
//   FLOWMESH_SHOTS   where screenshots go (made if missing)
//   FLOWMESH_SPECS   optional: a comma-separated list of spec names to run
//   CHROMIUM         optional: the browser binary (default /usr/bin/chromium)
//
// Each spec (specs/*.mjs, run in name order) exports a default async
// function given a fresh page at 1280x800 and helpers; it throws to fail.
// A spec fails too when the page logs an error or breaks the
// Content-Security-Policy.
import { readdirSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { helpers } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const base = process.env.FLOWMESH_URL;
const shots = process.env.FLOWMESH_SHOTS;
if (!base || !shots) {
  console.error('set FLOWMESH_URL and FLOWMESH_SHOTS');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const only = (process.env.FLOWMESH_SPECS || '').split(',').filter(Boolean);
const files = readdirSync(join(here, 'specs'))
  .filter((f) => f.endsWith('.mjs'))
  .sort()
  .filter((f) => only.length === 0 || only.includes(f.replace(/\.mjs$/, '')));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
let failed = 0;
for (const file of files) {
  const name = file.replace(/\.mjs$/, '');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push('console error: ' + m.text());
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  const started = Date.now();
  try {
    const spec = await import(join(here, 'specs', file));
    await spec.default({ page, context, browser, base, ...helpers({ base, shots, name, page, context }) });
    // 401s while signed out and answers a spec provokes on purpose are
    // logged by the browser as failed loads: only script errors count.
    const real = problems.filter((p) => !/Failed to load resource/.test(p));
    if (real.length) throw new Error(real.join('\n'));
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
    await page.screenshot({ path: join(shots, `${name}-failure.png`) }).catch(() => {});
  }
  await context.close();
}
await browser.close();
console.log(`${files.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
