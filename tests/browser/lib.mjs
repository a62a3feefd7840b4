// Helpers every spec gets.
import { join } from 'node:path';

let counter = 0;

export function helpers({ base, shots, name, page }) {
  /** Saves a screenshot of the page as `<spec>-<label>.png`. */
  const shot = (label) => page.screenshot({ path: join(shots, `${name}-${label}.png`) });

  /** Calls the API with a bearer token (or none); answers {status, body}. */
  const call = async (method, path, { token, body, headers = {} } = {}) => {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch(base + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    return { status: r.status, body: parsed, headers: r.headers };
  };

  /** Registers a new tenant and owner by the API; answers {email, password, tenant, token}. */
  const newTenant = async (prefix = name) => {
    counter += 1;
    const slug = `${prefix}-${process.pid}-${Date.now() % 100000}-${counter}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40);
    const email = `${slug}@example.test`;
    const password = 'correct horse battery staple';
    const reg = await call('POST', '/v1/auth/register', { body: { email, password, tenant: slug } });
    if (reg.status !== 202) throw new Error(`register: ${reg.status} ${JSON.stringify(reg.body)}`);
    const login = await call('POST', '/v1/auth/login', { body: { email, password } });
    if (login.status !== 200) throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`);
    return { email, password, tenant: slug, token: login.body.token };
  };

  /** Signs in through the console's form. */
  const signIn = async ({ email, password }, p = page) => {
    await p.goto(base + '/login');
    await p.getByLabel('Email').fill(email);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('button', { name: 'Sign out' }).waitFor();
  };

  /** Polls `check` (async, truthy when done) until it holds or `ms` pass. */
  const eventually = async (what, check, ms = 15000) => {
    const deadline = Date.now() + ms;
    let last;
    while (Date.now() < deadline) {
      try {
        last = await check();
        if (last) return last;
      } catch (e) {
        last = e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what}: not true within ${ms} ms (last: ${last})`);
  };

  return { shot, call, newTenant, signIn, eventually };
}
