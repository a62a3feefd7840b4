// The workflow editor and the execution view: build the README's signup
// workflow by hand on the canvas, run it, re-run a failed node, resume a
// waiting one, and keep dragging smooth on a large workflow.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const node = (page, id) => page.locator(`.react-flow__node[data-id="${id}"]`);

/** Drags a palette kind onto the canvas at a point of the viewport. */
async function dropKind(page, kind, x, y) {
  const item = page.getByRole('button', { name: `Add ${kind}`, exact: true });
  const pane = page.locator('.fm-canvas .react-flow__pane');
  const box = await pane.boundingBox();
  await item.dragTo(pane, { targetPosition: { x: x - box.x, y: y - box.y } });
}

/** Renames the selected node through its form. */
async function rename(page, from, to) {
  await node(page, from).waitFor();
  const field = page.getByLabel('Node id', { exact: true });
  await field.fill(to);
  await field.press('Enter');
  await node(page, to).waitFor();
}

/** Drags from one node's source handle to another's target handle. */
async function connect(page, from, to, output) {
  const src = node(page, from).locator(output ? `.react-flow__handle.source[data-handleid="${output}"]` : '.react-flow__handle.source');
  const dst = node(page, to).locator('.react-flow__handle.target');
  const a = await src.boundingBox();
  const b = await dst.boundingBox();
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 5 });
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 5 });
  await page.mouse.up();
}

const panel = (page, id) => page.getByRole('complementary', { name: `Configuration of ${id}` });

async function select(page, id) {
  await node(page, id).click({ position: { x: 20, y: 12 } });
  await panel(page, id).waitFor();
}

async function latestExecution(call, token, workflowId, eventually, not) {
  return eventually('an execution of the workflow', async () => {
    const r = await call('GET', `/v1/executions?workflow_id=${workflowId}&limit=5`, { token });
    const items = (r.body && r.body.items) || [];
    const found = items.find((e) => e.id !== not);
    return found && found.id;
  });
}

export default async function ({ page, base, call, newTenant, signIn, eventually, shot }) {
  const t = await newTenant('editor');
  const token = t.token;
  // The engine refuses a workflow without a trigger: the nearest to empty
  // is one manual trigger, which the editor deletes first.
  const created = await call('POST', '/v1/workflows', { token, body: { name: 'signup', nodes: [{ id: 'start', type: 'trigger', kind: 'manual', config: {} }] } });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
  const wf = created.body.id;

  await signIn(t);
  await page.goto(`${base}/workflows/${wf}`);
  await page.getByRole('toolbar', { name: 'Editor' }).waitFor();
  await node(page, 'start').click();
  await page.keyboard.press('Delete');
  await eventually('the placeholder trigger deleted', async () => (await page.locator('.react-flow__node').count()) === 0);

  // Build the signup workflow from the palette.
  const plan = [
    ['webhook', 'hook', 330, 200],
    ['mapping', 'user', 330, 360],
    ['if_else', 'check', 330, 520],
    ['respond', 'welcome', 650, 440],
    ['respond', 'reject', 650, 620],
  ];
  for (const [kind, id, x, y] of plan) {
    const before = await page.locator('.react-flow__node').count();
    await dropKind(page, kind, x, y);
    await eventually(`${kind} dropped`, async () => (await page.locator('.react-flow__node').count()) === before + 1);
    const fresh = await page.getByLabel('Node id', { exact: true }).inputValue();
    await rename(page, fresh, id);
  }

  // Configure each through its form.
  await select(page, 'hook');
  await panel(page, 'hook').getByRole('textbox', { name: /^path/ }).fill('signup');
  await panel(page, 'hook').getByRole('textbox', { name: /^method/ }).fill('POST');

  await select(page, 'user');
  const user = panel(page, 'user');
  await user.getByRole('button', { name: 'Add to mapping' }).click();
  await user.getByLabel('mapping name 1').fill('email');
  await user.getByLabel('mapping value 1').fill('{{ trigger.body.email }}');
  await user.getByRole('button', { name: 'Add to mapping' }).click();
  await user.getByLabel('mapping name 2').fill('name');
  await user.getByLabel('mapping value 2').fill('{{ trigger.body.name | upper }}');

  await select(page, 'check');
  await panel(page, 'check').getByRole('textbox', { name: /^logic/ }).fill("user.email.endswith('@example.com')");

  await select(page, 'welcome');
  await panel(page, 'welcome').getByRole('spinbutton', { name: /^status/ }).fill('200');
  await panel(page, 'welcome').getByRole('textbox', { name: /^body/ }).fill('{"welcome": "{{ user.name }}"}');

  await select(page, 'reject');
  await panel(page, 'reject').getByRole('spinbutton', { name: /^status/ }).fill('422');
  await panel(page, 'reject').getByRole('textbox', { name: /^body/ }).fill('{"error": "unknown domain {{ user.email }}"}');

  // Wire them by dragging handle to handle.
  await connect(page, 'hook', 'user');
  await connect(page, 'user', 'check');
  await connect(page, 'check', 'welcome', 'true');
  await connect(page, 'check', 'reject', 'false');
  await eventually('four edges', async () => (await page.locator('.react-flow__edge').count()) === 4);

  await page.getByRole('button', { name: 'Save draft' }).click();
  await page.getByRole('status').filter({ hasText: 'Saved as version' }).waitFor();
  await page.getByRole('button', { name: 'Publish' }).click();
  await page.getByRole('status').filter({ hasText: 'is published' }).waitFor();
  await page.getByRole('button', { name: 'Auto-layout' }).click();
  await page.waitForTimeout(300);
  await shot('editor');

  const saved = await call('GET', `/v1/workflows/${wf}`, { token });
  const edges = saved.body.document.edges.map((e) => `${e.from}>${e.to}${e.when ? ':' + e.when : ''}`).sort();
  if (edges.join(',') !== 'check>reject:false,check>welcome:true,hook>user,user>check') throw new Error('edges: ' + edges);

  // Its webhook answers as the README says.
  const hook = await fetch(`${base}/hooks/${t.tenant}/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: 'ada@example.com', name: 'Ada' }),
  });
  const answer = await hook.json();
  if (answer.welcome !== 'ADA') throw new Error('webhook: ' + JSON.stringify(answer));

  const run = await latestExecution(call, token, wf, eventually);
  await page.goto(`${base}/executions/${run}`);
  for (const id of ['hook', 'user', 'check', 'welcome']) {
    await node(page, id).locator('.fm-node.st-succeeded').waitFor();
  }
  await node(page, 'reject').locator('.fm-node.st-skipped').waitFor();
  await node(page, 'welcome').click();
  await eventually('welcome output shown', async () => /ADA/.test(await page.getByLabel('Node output').textContent()));
  await shot('run');

  // A failing node: its error, then a re-run from it with another input.
  const failing = await call('POST', '/v1/workflows', {
    token,
    body: {
      name: 'greeting',
      nodes: [
        { id: 'start', type: 'trigger', kind: 'manual', config: {} },
        { id: 'user', type: 'data', kind: 'mapping', config: { mapping: { name: '{{ trigger.body.name }}' } } },
        { id: 'greet', type: 'data', kind: 'mapping', config: { mapping: { hello: '{{ user.nick | upper }}' } } },
      ],
      edges: [
        { from: 'start', to: 'user' },
        { from: 'user', to: 'greet' },
      ],
    },
  });
  if (failing.status !== 201) throw new Error(`create greeting: ${failing.status} ${JSON.stringify(failing.body)}`);
  await call('POST', `/v1/workflows/${failing.body.id}/publish`, { token });
  const bad = await call('POST', `/v1/workflows/${failing.body.id}/executions`, { token, body: { name: 'Ada' } });
  await page.goto(`${base}/executions/${bad.body.execution_id}`);
  await node(page, 'greet').locator('.fm-node.st-failed').waitFor();
  await node(page, 'greet').click();
  await eventually('the error shown', async () => /nick/.test(await page.getByLabel('Node error').textContent()));
  await page.getByLabel('Node input').waitFor();
  await page.locator('#fm-rerun-input').fill('{"user": {"name": "Ada", "nick": "ada"}}');
  await page.getByRole('button', { name: 'Re-run from greet' }).click();
  await page.waitForURL((u) => u.pathname.startsWith('/executions/') && !u.pathname.endsWith(bad.body.execution_id));
  await node(page, 'greet').locator('.fm-node.st-succeeded').waitFor();
  await node(page, 'greet').click();
  await eventually('the re-run output', async () => /ADA/.test(await page.getByLabel('Node output').textContent()));

  // A waiting run resumed from the console.
  const waiting = await call('POST', '/v1/workflows', {
    token,
    body: {
      name: 'approval',
      nodes: [
        { id: 'start', type: 'trigger', kind: 'manual', config: {} },
        { id: 'approve', type: 'action', kind: 'wait_for_event', config: { timeout: '1h' } },
        { id: 'after', type: 'data', kind: 'mapping', config: { mapping: { got: '{{ approve.payload.approved }}' } } },
      ],
      edges: [
        { from: 'start', to: 'approve' },
        { from: 'approve', to: 'after' },
      ],
    },
  });
  if (waiting.status !== 201) throw new Error(`create approval: ${waiting.status} ${JSON.stringify(waiting.body)}`);
  await call('POST', `/v1/workflows/${waiting.body.id}/publish`, { token });
  const held = await call('POST', `/v1/workflows/${waiting.body.id}/executions`, { token, body: {} });
  await page.goto(`${base}/executions/${held.body.execution_id}`);
  await node(page, 'approve').locator('.fm-node.st-waiting').waitFor();
  await node(page, 'approve').click();
  await page.locator('#fm-resume-payload').fill('{"approved": true}');
  await page.getByRole('button', { name: 'Resume approve' }).click();
  await node(page, 'after').locator('.fm-node.st-succeeded').waitFor();
  await page.getByLabel('Execution status').filter({ hasText: 'succeeded' }).waitFor();

  // Dragging stays smooth on a 200-node workflow.
  const nodes = [{ id: 'start', type: 'trigger', kind: 'manual', config: {} }];
  const edgesBig = [];
  for (let c = 0; c < 12; c++) {
    let prev = 'start';
    for (let i = 0; i < 18 && nodes.length < 200; i++) {
      const id = `n${c}_${i}`;
      nodes.push({ id, type: 'data', kind: 'mapping', config: { mapping: { step: `${c}.${i}` } } });
      edgesBig.push({ from: prev, to: id });
      prev = id;
    }
  }
  const big = await call('POST', '/v1/workflows', { token, body: { name: 'large', nodes, edges: edgesBig } });
  if (big.status !== 201) throw new Error(`create large: ${big.status} ${JSON.stringify(big.body)}`);
  await page.goto(`${base}/workflows/${big.body.id}`);
  await eventually('200 nodes drawn', async () => (await page.locator('.react-flow__node').count()) === 200);
  const grip = await node(page, 'n5_8').boundingBox();
  await page.evaluate(() => {
    window.__frames = [];
    let last = performance.now();
    const tick = (now) => {
      window.__frames.push(now - last);
      last = now;
      if (window.__measuring) requestAnimationFrame(tick);
    };
    window.__measuring = true;
    requestAnimationFrame(tick);
  });
  await page.mouse.move(grip.x + grip.width / 2, grip.y + grip.height / 2);
  await page.mouse.down();
  for (let i = 1; i <= 60; i++) {
    await page.mouse.move(grip.x + grip.width / 2 + i * 3, grip.y + grip.height / 2 + i * 2);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  }
  await page.mouse.up();
  const frames = await page.evaluate(() => {
    window.__measuring = false;
    return window.__frames.slice(1);
  });
  frames.sort((a, b) => a - b);
  const p95 = frames[Math.min(frames.length - 1, Math.floor(frames.length * 0.95))];
  console.log(`     drag of one node among 200: ${frames.length} frames, p95 ${p95.toFixed(1)} ms`);
  // The goal is 33 ms (BENCHMARKS.md records a quiet run); the bound here
  // is looser because the tests share the machine with everything else,
  // and still fails a canvas that redraws every node on each move.
  const bound = Number(process.env.FLOWMESH_FRAME_BOUND_MS || 66);
  writeFileSync(join(process.env.FLOWMESH_SHOTS, 'drag-frames.json'), JSON.stringify({ nodes: 200, frames: frames.length, p95_ms: p95 }));
  if (p95 > bound) throw new Error(`dragging is slow: p95 frame ${p95.toFixed(1)} ms (bound ${bound} ms)`);
  const moved = await node(page, 'n5_8').boundingBox();
  if (Math.abs(moved.x - grip.x) < 20) throw new Error('the node did not move');
}
