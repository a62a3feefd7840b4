// The first screen: served by the engine with its security headers, within
// the JavaScript budget (400 KB gzipped), and redirecting a visitor with no
// session to the sign-in form.
export default async function ({ page, base, shot }) {
  const response = await page.goto(base + '/');
  const csp = response.headers()['content-security-policy'] || '';
  if (!csp.includes("script-src 'self'")) throw new Error('no strict policy on the page: ' + csp);
  await page.getByLabel('Email').waitFor();
  if (!page.url().endsWith('/login')) throw new Error('a visitor lands on ' + page.url());
  const scripts = await page.evaluate(() =>
    performance
      .getEntriesByType('resource')
      .filter((e) => e.initiatorType === 'script' || e.name.endsWith('.js'))
      .map((e) => ({ name: e.name, bytes: e.encodedBodySize })),
  );
  const total = scripts.reduce((sum, s) => sum + s.bytes, 0);
  console.log(`first screen JavaScript: ${(total / 1024).toFixed(1)} KB over the wire in ${scripts.length} files`);
  if (scripts.length === 0) throw new Error('no script was measured');
  if (total > 400 * 1024) throw new Error(`the first screen loads ${total} bytes of JavaScript (budget 400 KB)`);
  await shot('login');
}
