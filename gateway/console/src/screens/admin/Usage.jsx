import { useMemo, useState } from 'react';
import { get } from '../../api.js';
import { Link } from '../../router.jsx';
import { ErrorText, fmtNumber, fmtTime, useLoad } from '../common.jsx';

export default function Usage() {
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [cursors, setCursors] = useState([]);
  const usage = useLoad(() => get('/v1/usage', { from, to }), [from, to]);
  const cursor = cursors[cursors.length - 1];
  const billing = useLoad(() => get('/v1/billing', { limit: 20, cursor }), [cursor]);
  const workflows = useLoad(() => get('/v1/workflows').then((r) => r.items), []);
  const nameOf = useMemo(() => new Map((workflows.data || []).map((w) => [w.id, w.name])), [workflows.data]);
  const u = usage.data;
  const b = billing.data;
  return (
    <section>
      <h1>Usage and credits</h1>
      <div className="two-col">
        <section className="panel" aria-labelledby="bal-h">
          <h2 id="bal-h">Credits</h2>
          <ErrorText error={billing.error} />
          {b && (
            <dl className="facts">
              <dt>Balance</dt>
              <dd className="big">{fmtNumber(b.balance)}</dd>
              <dt>Not settled yet</dt>
              <dd>{fmtNumber(b.pending)}</dd>
              <dt>Automatic refill</dt>
              <dd>{b.auto_refill ? `${fmtNumber(b.auto_refill.amount)} credits when below ${fmtNumber(b.auto_refill.threshold)}` : 'off'}</dd>
            </dl>
          )}
        </section>
        <section className="panel" aria-labelledby="tot-h">
          <h2 id="tot-h">Usage {u ? `${u.from} – ${u.to}` : ''}</h2>
          <form className="filters" aria-label="Usage period" onSubmit={(e) => e.preventDefault()}>
            <label>
              From <input type="date" aria-label="Usage from" value={from} onChange={(e) => setFrom(e.target.value)} />
            </label>
            <label>
              To <input type="date" aria-label="Usage to" value={to} onChange={(e) => setTo(e.target.value)} />
            </label>
          </form>
          <ErrorText error={usage.error} />
          {u && (
            <dl className="facts">
              <dt>Credits used</dt>
              <dd className="big">{fmtNumber(u.total.credits)}</dd>
              <dt>Executions</dt>
              <dd>{fmtNumber(u.total.executions)}</dd>
              <dt>Node runs</dt>
              <dd>{fmtNumber(u.total.node_runs)}</dd>
              <dt>Sandbox time</dt>
              <dd>{fmtNumber(u.total.sandbox_ms)} ms</dd>
              <dt>Model tokens</dt>
              <dd>{fmtNumber(u.total.llm_tokens)}</dd>
            </dl>
          )}
        </section>
      </div>
      <h2>By day and workflow</h2>
      <table aria-label="Usage by day">
        <thead>
          <tr>
            <th>Day</th>
            <th>Workflow</th>
            <th className="num">Executions</th>
            <th className="num">Node runs</th>
            <th className="num">Sandbox ms</th>
            <th className="num">Tokens</th>
            <th className="num">Credits</th>
          </tr>
        </thead>
        <tbody>
          {u?.items.map((d) => (
            <tr key={`${d.day}-${d.workflow_id}`}>
              <td>{d.day}</td>
              <td>{d.workflow_id ? <Link to={`/workflows/${d.workflow_id}`}>{nameOf.get(d.workflow_id) ?? d.workflow_id}</Link> : '—'}</td>
              <td className="num">{fmtNumber(d.executions)}</td>
              <td className="num">{fmtNumber(d.node_runs)}</td>
              <td className="num">{fmtNumber(d.sandbox_ms)}</td>
              <td className="num">{fmtNumber(d.llm_tokens)}</td>
              <td className="num">{fmtNumber(d.credits)}</td>
            </tr>
          ))}
          {u && u.items.length === 0 && (
            <tr>
              <td colSpan={7} className="muted">
                No usage in this period.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <h2>Ledger</h2>
      <table aria-label="Ledger">
        <thead>
          <tr>
            <th>When</th>
            <th>Kind</th>
            <th className="num">Change</th>
            <th className="num">Balance after</th>
            <th>By</th>
            <th>Note</th>
          </tr>
        </thead>
        <tbody>
          {b?.ledger.map((l) => (
            <tr key={l.id}>
              <td>{fmtTime(l.at)}</td>
              <td>{l.kind}</td>
              <td className="num">{l.delta > 0 ? '+' : ''}{fmtNumber(l.delta)}</td>
              <td className="num">{fmtNumber(l.balance_after)}</td>
              <td className="mono">{l.actor || '—'}</td>
              <td>{l.note || l.reference || ''}</td>
            </tr>
          ))}
          {b && b.ledger.length === 0 && (
            <tr>
              <td colSpan={6} className="muted">
                No entries.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <div className="pager">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))} aria-label="Previous ledger page">
          Previous
        </button>
        <button type="button" disabled={!b?.next_cursor} onClick={() => setCursors((c) => [...c, b.next_cursor])} aria-label="Next ledger page">
          Next
        </button>
      </div>
    </section>
  );
}
