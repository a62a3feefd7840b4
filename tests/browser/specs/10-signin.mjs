// Registering through the console, signing out, a wrong password, and
// signing in again onto the dashboard.
export default async function ({ page, base, call, newTenant, shot }) {
  const slug = `signin-${process.pid}-${Date.now() % 100000}`;
  const email = `${slug}@example.test`;
  const password = 'correct horse battery staple';

  await page.goto(base + '/register');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Tenant slug').fill(slug);
  await shot('register');
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.getByRole('heading', { name: 'Workflows' }).waitFor();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  if (!page.url().endsWith('/login')) throw new Error(`signed out onto ${page.url()}`);

  // A wrong password is told as text, and nobody is signed in.
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('not the password at all');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  if (await page.getByRole('button', { name: 'Sign out' }).count()) throw new Error('signed in with a wrong password');

  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.getByRole('heading', { name: 'Workflows' }).waitFor();
  const who = await page.locator('.who').textContent();
  if (!who.includes(slug) || !who.includes('owner')) throw new Error(`signed in as "${who}"`);
  // An owner may make workflows.
  await page.getByRole('button', { name: 'New workflow' }).waitFor();
  await page.getByRole('table', { name: 'Workflows' }).waitFor();
  await page.getByRole('heading', { name: 'Credits', exact: true }).waitFor();
  await shot('dashboard');

  // An account of two tenants chooses one, from the list or by its slug.
  const other = await newTenant('signin-b');
  const second = other.tenant;
  const inv = await call('POST', '/v1/invitations', { token: other.token, body: { email, role: 'editor' } });
  if (inv.status !== 201) throw new Error(`invite: ${inv.status} ${JSON.stringify(inv.body)}`);
  const acc = await call('POST', '/v1/auth/accept', { body: { token: inv.body.token, password } });
  if (acc.status !== 202) throw new Error(`accept: ${acc.status} ${JSON.stringify(acc.body)}`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: `Sign in to ${second}` }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  if (!(await page.locator('.who').textContent()).includes(second)) throw new Error('not signed in to the tenant chosen');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Tenant (optional)').fill(slug);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  const again = await page.locator('.who').textContent();
  if (!again.includes(slug) || again.includes(second)) throw new Error(`signed in to "${again}" by slug`);

  // A reload keeps the session (the cookie), and the CSRF token with it.
  await page.reload();
  await page.getByRole('button', { name: 'New workflow' }).click();
  await page.waitForURL(/\/workflows\/[0-9a-f-]{36}$/);
}
