import { useState } from 'react';
import { get } from '../../api.js';
import { ErrorText, Pager, fmtTime, localToMs, useLoad, onlyFor } from '../common.jsx';

const EMPTY = { actor: '', action: '', outcome: '', since: '', until: '' };

function Audit() {
  const [draft, setDraft] = useState(EMPTY);
  const [filters, setFilters] = useState(EMPTY);
  const [cursors, setCursors] = useState([]);
  const cursor = cursors[cursors.length - 1];
  const page = useLoad(
    () =>
      get('/v1/audit', {
        actor: filters.actor.trim(),
        action: filters.action.trim(),
        outcome: filters.outcome.trim(),
        since: localToMs(filters.since),
        until: localToMs(filters.until),
        limit: 50,
        cursor,
      }),
    [filters, cursor],
  );
  const set = (k) => (e) => setDraft((d) => ({ ...d, [k]: e.target.value }));
  const apply = (e) => {
    e.preventDefault();
    setCursors([]);
    setFilters(draft);
  };
  const data = page.data;
  return (
    <section>
      <h1>Audit log</h1>
      <form className="filters" onSubmit={apply} aria-label="Filter the audit log">
        <label>
          Actor <input aria-label="Actor" placeholder="user:… or key:…" value={draft.actor} onChange={set('actor')} />
        </label>
        <label>
          Action <input aria-label="Action" placeholder="workflow. or user.invite" value={draft.action} onChange={set('action')} />
        </label>
        <label>
          Outcome{' '}
          <input aria-label="Outcome" list="audit-outcomes" placeholder="ok, denied…" value={draft.outcome} onChange={set('outcome')} />
          <datalist id="audit-outcomes">
            <option value="ok" />
            <option value="denied" />
          </datalist>
        </label>
        <label>
          Since <input type="datetime-local" aria-label="Since" value={draft.since} onChange={set('since')} />
        </label>
        <label>
          Until <input type="datetime-local" aria-label="Until" value={draft.until} onChange={set('until')} />
        </label>
        <button type="submit" className="primary">
          Apply filters
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft(EMPTY);
            setFilters(EMPTY);
            setCursors([]);
          }}
        >
          Clear
        </button>
      </form>
      <ErrorText error={page.error} />
      <table aria-label="Audit records">
        <thead>
          <tr>
            <th>When</th>
            <th>Actor</th>
            <th>Action</th>
            <th>Target</th>
            <th>Outcome</th>
            <th className="num">Status</th>
            <th>Source</th>
          </tr>
        </thead>
        <tbody>
          {data?.items.map((r) => (
            <tr key={r.id}>
              <td>{fmtTime(r.at)}</td>
              <td className="mono">{r.actor}</td>
              <td>{r.action}</td>
              <td className="mono">{r.target ?? '—'}</td>
              <td className={r.outcome === 'ok' ? 'ok' : 'error'}>{r.outcome}</td>
              <td className="num">{r.status}</td>
              <td className="mono">{r.source ?? '—'}</td>
            </tr>
          ))}
          {data && data.items.length === 0 && (
            <tr>
              <td colSpan={7} className="muted">
                No records match.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {page.loading && !data && <p className="loading">Loading…</p>}
      <Pager cursors={cursors} setCursors={setCursors} next={data?.next_cursor} />
    </section>
  );
}

export default onlyFor('admin', Audit);
