import { useMemo, useState } from 'react';
import { atLeast, get, post } from '../api.js';
import { Link, navigate } from '../router.jsx';
import { ErrorText, Status, fmtDuration, fmtNumber, fmtPercent, fmtTime, useDebounced, useLoad } from './common.jsx';
import { useTenantEvents } from './live.js';

/** The smallest valid document: one manual trigger. */
const NEW_WORKFLOW = {
  name: 'Untitled workflow',
  nodes: [{ id: 'start', type: 'trigger', kind: 'manual' }],
  edges: [],
};

/** The workflows the filters pick, each with its statistics. */
async function loadWorkflows({ q, state, failing }) {
  const { items } = await get('/v1/workflows', { q: q.trim(), state, failing: failing ? 'true' : undefined, stats: 'true' });
  return { items };
}

export default function Dashboard({ me }) {
  const [q, setQ] = useState('');
  const [state, setState] = useState('');
  const [failing, setFailing] = useState(false);
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState(null);

  const search = useDebounced(q);
  const workflows = useLoad(() => loadWorkflows({ q: search, state, failing }), [search, state, failing]);
  const names = useLoad(() => get('/v1/workflows').then((r) => r.items), []);
  const recent = useLoad(() => get('/v1/executions', { limit: 10 }), []);
  const usage = useLoad(() => get('/v1/usage'), []);
  const billing = useLoad(() => get('/v1/billing', { limit: 1 }), []);

  useTenantEvents(() => {
    workflows.reload();
    recent.reload();
    usage.reload();
    billing.reload();
  });

  const nameOf = useMemo(() => {
    const m = new Map();
    for (const w of names.data || []) m.set(w.id, w.name);
    for (const w of workflows.data?.items || []) m.set(w.id, w.name);
    return m;
  }, [names.data, workflows.data]);

  const create = async () => {
    setCreating(true);
    setCreateError(null);
    try {
      const w = await post('/v1/workflows', NEW_WORKFLOW);
      navigate(`/workflows/${w.id}`);
    } catch (e) {
      setCreateError(e);
      setCreating(false);
    }
  };

  const data = workflows.data;
  return (
    <section className="dashboard">
      <div className="heading">
        <h1>Workflows</h1>
        {atLeast(me, 'editor') && (
          <button type="button" className="primary" onClick={create} disabled={creating} aria-label="New workflow">
            New workflow
          </button>
        )}
      </div>
      <ErrorText error={createError} />
      <div className="dash-grid">
        <div>
          <form className="filters" role="search" aria-label="Filter workflows" onSubmit={(e) => e.preventDefault()}>
            <label>
              Search
              <input type="search" aria-label="Search workflows" value={q} onChange={(e) => setQ(e.target.value)} placeholder="name contains…" />
            </label>
            <label>
              State
              <select aria-label="State" value={state} onChange={(e) => setState(e.target.value)}>
                <option value="">All</option>
                <option value="published">Published</option>
                <option value="draft">Draft</option>
              </select>
            </label>
            <label className="check">
              <input type="checkbox" aria-label="Has failures" checked={failing} onChange={(e) => setFailing(e.target.checked)} />
              Has failures
            </label>
          </form>
          <ErrorText error={workflows.error} />
          <table aria-label="Workflows">
            <thead>
              <tr>
                <th>Name</th>
                <th>State</th>
                <th className="num">Runs</th>
                <th className="num">Success</th>
                <th className="num">p50</th>
                <th className="num">p95</th>
                <th>Last run</th>
              </tr>
            </thead>
            <tbody>
              {data?.items.map((w) => (
                <tr key={w.id}>
                  <td>
                    <Link to={`/workflows/${w.id}`}>{w.name}</Link>
                  </td>
                  <td>{w.published_version ? <span className="badge published">published v{w.published_version}</span> : <span className="badge draft">draft</span>}{w.published_version && w.version > w.published_version ? <span className="muted"> · draft v{w.version}</span> : null}</td>
                  <td className="num">{w.stats ? fmtNumber(w.stats.total) : '—'}</td>
                  <td className="num">{w.stats ? fmtPercent(w.stats.success_rate) : '—'}</td>
                  <td className="num">{w.stats ? fmtDuration(w.stats.p50_ms) : '—'}</td>
                  <td className="num">{w.stats ? fmtDuration(w.stats.p95_ms) : '—'}</td>
                  <td>
                    {w.stats?.last_run ? (
                      <Link to={`/executions/${w.stats.last_run.execution_id}`} aria-label={`Last run of ${w.name}: ${w.stats.last_run.status}`}>
                        <Status status={w.stats.last_run.status} /> {fmtTime(w.stats.last_run.created_at)}
                      </Link>
                    ) : (
                      <span className="muted">{w.stats ? 'never' : '—'}</span>
                    )}
                  </td>
                </tr>
              ))}
              {data && data.items.length === 0 && (
                <tr>
                  <td colSpan={7} className="muted">
                    {q || state || failing ? 'No workflow matches.' : 'No workflows yet.'}
                  </td>
                </tr>
              )}
            </tbody>
          </table>
          {workflows.loading && !data && <p className="loading">Loading…</p>}
        </div>
        <aside className="side">
          <section aria-labelledby="credits-h" className="panel">
            <h2 id="credits-h">Credits</h2>
            <ErrorText error={billing.error} />
            {billing.data && (
              <p className="big">
                {fmtNumber(billing.data.balance)} <span className="muted">balance</span>
              </p>
            )}
            <ErrorText error={usage.error} />
            {usage.data && (
              <dl className="facts">
                <dt>Credits used</dt>
                <dd>{fmtNumber(usage.data.total.credits)}</dd>
                <dt>Executions</dt>
                <dd>{fmtNumber(usage.data.total.executions)}</dd>
                <dt>Node runs</dt>
                <dd>{fmtNumber(usage.data.total.node_runs)}</dd>
                <dt className="hint">Period</dt>
                <dd className="hint">
                  {usage.data.from} – {usage.data.to}
                </dd>
              </dl>
            )}
            <Link to="/admin/usage">Usage by day</Link>
          </section>
          <section aria-labelledby="recent-h" className="panel">
            <h2 id="recent-h">Recent executions</h2>
            <ErrorText error={recent.error} />
            <ul className="recent" aria-label="Recent executions">
              {recent.data?.items.map((x) => (
                <li key={x.id}>
                  <Link to={`/executions/${x.id}`}>
                    <Status status={x.status} /> {nameOf.get(x.workflow_id) ?? x.workflow_id}
                  </Link>
                  <span className="muted"> {fmtTime(x.created_at)}{x.test ? ' · test' : ''}</span>
                </li>
              ))}
              {recent.data && recent.data.items.length === 0 && <li className="muted">None yet.</li>}
            </ul>
            <Link to="/executions">All executions</Link>
          </section>
        </aside>
      </div>
    </section>
  );
}
