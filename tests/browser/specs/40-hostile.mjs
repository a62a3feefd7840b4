// Script and markup in workflow names, node outputs and error messages are
// shown as text on the dashboard, the executions list and the run page,
// and never run.
const PAYLOADS = [
  '<img src=x onerror=window.__pwned=1>',
  '<script>window.__pwned=1</script>',
  '"><svg onload=window.__pwned=1>',
  'javascript:window.__pwned=1',
];
const ALL = PAYLOADS.join(' ');

/** Nothing ran and no element of a payload made it into the page. */
async function clean(page, where) {
  const found = await page.evaluate(() => ({
    pwned: window.__pwned,
    elements: document.querySelectorAll('img[src="x"], svg[onload], [onerror], [onload], script:not([src])').length,
    links: [...document.querySelectorAll('a[href]')].filter((a) => /^\s*javascript:/i.test(a.getAttribute('href'))).length,
  }));
  if (found.pwned !== undefined) throw new Error(`${where}: window.__pwned is ${found.pwned}`);
  if (found.elements) throw new Error(`${where}: ${found.elements} elements of a payload in the page`);
  if (found.links) throw new Error(`${where}: ${found.links} javascript: links in the page`);
}

/** Each payload appears in the page's text, literally. */
async function literal(page, where, within = 'body') {
  const text = await page.locator(within).first().innerText();
  for (const p of PAYLOADS) if (!text.includes(p)) throw new Error(`${where}: ${JSON.stringify(p)} is not shown as text`);
}

export default async function ({ page, base, call, newTenant, signIn, shot, eventually }) {
  const owner = await newTenant('hostile');
  const T = { token: owner.token };

  // A webhook workflow named with every payload, whose mapping and answer carry them.
  const doc = {
    name: ALL,
    nodes: [
      { id: 'hook', type: 'trigger', kind: 'webhook', config: { path: 'hostile', method: 'POST' } },
      { id: 'shape', type: 'data', kind: 'mapping', config: { mapping: { text: ALL, each: PAYLOADS, link: 'javascript:window.__pwned=1' } } },
      { id: 'answer', type: 'action', kind: 'respond', config: { status: 200, body: { echo: '{{ shape.text }}' } } },
    ],
    edges: [
      { from: 'hook', to: 'shape' },
      { from: 'shape', to: 'answer' },
    ],
  };
  const wf = await call('POST', '/v1/workflows', { ...T, body: doc });
  if (wf.status !== 201) throw new Error(`create: ${wf.status} ${JSON.stringify(wf.body)}`);
  const pub = await call('POST', `/v1/workflows/${wf.body.id}/publish`, T);
  if (pub.status !== 200) throw new Error(`publish: ${pub.status} ${JSON.stringify(pub.body)}`);
  const hook = await call('POST', `/hooks/${owner.tenant}/hostile`, { body: { who: PAYLOADS[0] } });
  if (hook.status !== 200 || hook.body.echo !== ALL) throw new Error(`webhook: ${hook.status} ${JSON.stringify(hook.body)}`);

  // A node id carrying markup is refused by the engine: ids are plain names.
  const badId = await call('POST', '/v1/workflows', { ...T, body: { name: 'x', nodes: [{ id: PAYLOADS[0], type: 'trigger', kind: 'manual' }], edges: [] } });
  if (badId.status !== 422) throw new Error(`a node id with markup: ${badId.status}`);

  // A second workflow whose failure message carries them.
  const failing = await call('POST', '/v1/workflows', {
    ...T,
    body: {
      name: 'fails with ' + PAYLOADS[1],
      nodes: [
        { id: 'start', type: 'trigger', kind: 'manual' },
        { id: 'stop', type: 'action', kind: 'fail', config: { message: ALL } },
      ],
      edges: [{ from: 'start', to: 'stop' }],
    },
  });
  if (failing.status !== 201) throw new Error(`create failing: ${failing.status} ${JSON.stringify(failing.body)}`);
  await call('POST', `/v1/workflows/${failing.body.id}/publish`, T);
  const failed = await call('POST', `/v1/workflows/${failing.body.id}/executions?wait=true`, { ...T, body: {} });
  if (failed.body?.status !== 'failed') throw new Error(`the failing run: ${failed.status} ${JSON.stringify(failed.body)}`);

  const runs = await eventually('the webhook execution listed', async () => {
    const r = await call('GET', `/v1/executions?workflow_id=${wf.body.id}`, T);
    return r.body.items.length ? r.body.items : null;
  });
  const runId = runs[0].id;
  await eventually('it finished', async () => (await call('GET', `/v1/executions/${runId}`, T)).body.status === 'succeeded');

  await signIn(owner);
  await page.getByRole('link', { name: ALL, exact: true }).first().waitFor();
  await literal(page, 'dashboard', 'table');
  await page.getByRole('list', { name: 'Recent executions' }).getByText(ALL).first().waitFor();
  await clean(page, 'dashboard');
  // Search by a piece of the name.
  await page.getByLabel('Search workflows').fill('<svg onload');
  await eventually('the search applied', async () => (await page.getByRole('table', { name: 'Workflows' }).getByRole('link', { name: /^fails with/ }).count()) === 0);
  await page.getByRole('link', { name: ALL, exact: true }).first().waitFor();
  await clean(page, 'dashboard search');
  await shot('hostile-dashboard');

  await page.goto(base + '/executions');
  await page.getByRole('link', { name: `Execution ${runId}` }).waitFor();
  await literal(page, 'executions list', 'table');
  await page.getByLabel('Workflow').selectOption({ label: ALL });
  await page.getByRole('link', { name: `Execution ${runId}` }).waitFor();
  await clean(page, 'executions list');
  await shot('hostile-executions');

  // The run page shows the output, literally.
  await page.goto(`${base}/executions/${runId}`);
  await eventually('the run page shows the output', async () => {
    const text = await page.locator('main').innerText();
    return PAYLOADS.every((p) => text.includes(p));
  });
  await clean(page, 'run page');
  await shot('hostile');

  await page.goto(`${base}/executions/${failed.body.execution_id}`);
  await eventually('the failed run shows its error', async () => (await page.locator('main').innerText()).includes(PAYLOADS[2]));
  await clean(page, 'failed run page');
  await shot('hostile-failed');

  await page.goto(`${base}/workflows/${wf.body.id}`);
  await page.waitForLoadState('networkidle');
  await clean(page, 'editor');
}
