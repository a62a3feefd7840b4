// The admin screens: an API key made, used and revoked; a viewer invited,
// who joins in a browser of their own and is offered no way to edit.
export default async function ({ page, browser, base, call, newTenant, signIn, shot, eventually }) {
  const owner = await newTenant('admin');
  const T = { token: owner.token };
  // Something to list: a published workflow with one execution.
  const wf = await call('POST', '/v1/workflows', {
    ...T,
    body: { name: 'admin screens', nodes: [{ id: 'start', type: 'trigger', kind: 'manual' }, { id: 'out', type: 'data', kind: 'mapping', config: { mapping: { ok: true } } }], edges: [{ from: 'start', to: 'out' }] },
  });
  if (wf.status !== 201) throw new Error(`create: ${wf.status} ${JSON.stringify(wf.body)}`);
  const id = wf.body.id;
  await call('POST', `/v1/workflows/${id}/publish`, T);
  const run = await call('POST', `/v1/workflows/${id}/executions?wait=true`, { ...T, body: { n: 1 } });
  if (run.status !== 200) throw new Error(`run: ${run.status} ${JSON.stringify(run.body)}`);

  await signIn(owner);

  // API keys: made, shown once, working; then revoked, and refused.
  await page.goto(base + '/admin/keys');
  await page.getByLabel('Key name').fill('deploy bot');
  await page.getByLabel('Key role').selectOption('operator');
  await page.getByRole('button', { name: 'Create key' }).click();
  const tokenBox = page.getByRole('textbox', { name: 'New key token' });
  await tokenBox.waitFor();
  const key = await tokenBox.inputValue();
  const me = await call('GET', '/v1/me', { token: key });
  if (me.status !== 200 || me.body.role !== 'operator') throw new Error(`the new key: ${me.status} ${JSON.stringify(me.body)}`);
  await page.getByRole('cell', { name: 'deploy bot', exact: true }).waitFor();
  await shot('keys');
  await page.reload();
  await page.getByRole('cell', { name: 'deploy bot', exact: true }).waitFor();
  if (await page.getByLabel('New key token').count()) throw new Error('the key is shown again after a reload');
  if ((await page.content()).includes(key)) throw new Error('the key is in the page after a reload');
  await page.getByRole('button', { name: 'Revoke key deploy bot' }).click();
  await page.getByRole('button', { name: 'Confirm revoke key deploy bot' }).click();
  await page.getByText(/revoked/).waitFor();
  await eventually('the revoked key refused', async () => (await call('GET', '/v1/me', { token: key })).status === 401);

  // Secrets: names only.
  await page.goto(base + '/admin/secrets');
  const value = 'sk-never-shown-' + Date.now();
  await page.getByLabel('Secret name').fill('SLACK_TOKEN');
  await page.getByLabel('Secret value').fill(value);
  await page.getByRole('button', { name: 'Set secret' }).click();
  await page.getByRole('cell', { name: 'SLACK_TOKEN', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Replace SLACK_TOKEN' }).click();
  await page.getByLabel('New value of SLACK_TOKEN').fill(value + '-2');
  await page.getByRole('button', { name: 'Replace', exact: true }).click();
  await page.getByText('Secret SLACK_TOKEN replaced.').waitFor();
  if ((await page.content()).includes(value)) throw new Error('a secret value is in the page');
  await shot('secrets');

  // Settings.
  await page.goto(base + '/admin/settings');
  const retention = page.getByLabel('Retention of finished executions');
  await eventually('the settings shown', async () => (await retention.inputValue()) === '30d');
  await retention.fill('14d');
  await page.getByRole('button', { name: 'Save data settings' }).click();
  await page.getByText('Saved.').first().waitFor();
  const settings = await call('GET', '/v1/settings', T);
  if (!/^14\s*d/.test(String(settings.body.retention))) throw new Error(`retention: ${JSON.stringify(settings.body)}`);
  await shot('settings');

  await page.goto(base + '/admin/usage');
  await page.getByRole('heading', { name: 'Credits', exact: true }).waitFor();
  await page.getByRole('table', { name: 'Usage by day' }).waitFor();
  await shot('usage');

  await page.goto(base + '/executions');
  await page.getByRole('link', { name: `Execution ${run.body.execution_id}` }).waitFor();
  await shot('executions');
  // From tomorrow on: none.
  const tomorrow = new Date(Date.now() + 86400000);
  const local = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  await page.getByLabel('From').fill(local);
  await page.getByText('No executions match.').waitFor();
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.getByLabel('Status').selectOption('succeeded');
  await page.getByRole('link', { name: `Execution ${run.body.execution_id}` }).waitFor();

  // Users: a viewer invited.
  await page.goto(base + '/admin/users');
  const viewer = `viewer-${process.pid}-${Date.now() % 100000}@example.test`;
  await page.getByLabel('Invitee email').fill(viewer);
  await page.getByLabel('Invitee role').selectOption('viewer');
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  const linkBox = page.getByRole('textbox', { name: `Invitation link for ${viewer}` });
  await linkBox.waitFor();
  const link = await linkBox.inputValue();
  if (!link.includes('/accept?token=')) throw new Error(`invitation link: ${link}`);
  await shot('users');

  await page.goto(base + '/admin/audit');
  await page.getByRole('cell', { name: 'user.invite', exact: true }).first().waitFor();
  await page.getByLabel('Action').fill('key.');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByRole('cell', { name: 'key.revoke', exact: true }).waitFor();
  if (await page.getByRole('cell', { name: 'user.invite', exact: true }).count()) throw new Error('the action filter is not applied');
  await shot('audit');

  // The viewer joins in a browser of their own.
  const other = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p2 = await other.newPage();
  p2.setDefaultTimeout(15000);
  const errors = [];
  p2.on('pageerror', (e) => errors.push(e.message));
  await p2.goto(link);
  await p2.getByLabel('Email').fill(viewer);
  await p2.getByLabel('Password').fill('a viewer password');
  await p2.getByRole('button', { name: 'Accept and sign in' }).click();
  await p2.getByRole('button', { name: 'Sign out' }).waitFor();
  await p2.getByRole('link', { name: 'admin screens', exact: true }).waitFor();
  const who = await p2.locator('.who').textContent();
  if (!who.includes('viewer')) throw new Error(`the invited user is "${who}"`);
  if (await p2.getByRole('button', { name: 'New workflow' }).count()) throw new Error('a viewer is offered "New workflow"');
  const nav = p2.getByRole('navigation', { name: 'Main' });
  for (const label of ['API keys', 'Users', 'Secrets', 'Settings', 'Audit log', 'Create']) {
    if (await nav.getByRole('link', { name: label, exact: true }).count()) throw new Error(`a viewer's nav offers ${label}`);
  }
  await p2.screenshot({ path: `${process.env.FLOWMESH_SHOTS}/30-admin-viewer.png` });
  // An admin screen reached by its address says so, and offers nothing.
  await p2.goto(base + '/admin/keys');
  await p2.getByText('for admins').waitFor();
  if (await p2.getByRole('button', { name: 'Create key' }).count()) throw new Error('a viewer is offered "Create key"');
  // The editor is read-only for a viewer.
  await p2.goto(`${base}/workflows/${id}`);
  await p2.waitForLoadState('networkidle');
  await p2.waitForTimeout(500);
  if (await p2.getByRole('button', { name: 'Save', exact: true }).count()) throw new Error('a viewer is offered "Save" in the editor');
  if (errors.length) throw new Error(errors.join('\n'));
  await other.close();

  // The owner sees the viewer among the members, and removes them.
  await page.goto(base + '/admin/users');
  await page.getByRole('cell', { name: viewer, exact: true }).waitFor();
  await page.getByRole('button', { name: `Remove ${viewer}` }).click();
  await page.getByRole('button', { name: `Confirm remove ${viewer}` }).click();
  await eventually('the viewer gone', async () => (await page.getByRole('cell', { name: viewer, exact: true }).count()) === 0);
  const users = await call('GET', '/v1/users', T);
  if (users.body.items.some((u) => u.email === viewer)) throw new Error('the viewer is still a member');
}
