import { useMemo, useState } from 'react';
import { get } from '../api.js';
import { Link } from '../router.jsx';
import { ErrorText, Pager, Status, fmtDuration, fmtTime, localToMs, useLoad } from './common.jsx';
import { useTenantEvents } from './live.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled'];
const PAGE = 25;

/** A page of executions the filters pick. */
async function loadPage(filters, cursor) {
  const q = {
    workflow_id: filters.workflow,
    status: filters.status,
    test: filters.test,
    from: localToMs(filters.from),
    to: localToMs(filters.to),
    limit: PAGE,
    cursor,
  };
  return get('/v1/executions', q);
}

export default function Executions({ query }) {
  const [filters, setFilters] = useState({
    workflow: query?.get('workflow') || '',
    status: query?.get('status') || '',
    test: '',
    from: '',
    to: '',
  });
  // The cursors of the pages before this one, and this one's.
  const [cursors, setCursors] = useState([]);
  const cursor = cursors[cursors.length - 1];
  const page = useLoad(() => loadPage(filters, cursor), [filters, cursor]);
  const workflows = useLoad(() => get('/v1/workflows').then((r) => r.items), []);
  useTenantEvents(() => {
    if (!cursor) page.reload();
  });

  const nameOf = useMemo(() => new Map((workflows.data || []).map((w) => [w.id, w.name])), [workflows.data]);
  const set = (k) => (e) => {
    setCursors([]);
    setFilters((f) => ({ ...f, [k]: e.target.value }));
  };
  const data = page.data;

  return (
    <section>
      <h1>Executions</h1>
      <form className="filters" aria-label="Filter executions" onSubmit={(e) => e.preventDefault()}>
        <label>
          Workflow
          <select aria-label="Workflow" value={filters.workflow} onChange={set('workflow')}>
            <option value="">All workflows</option>
            {(workflows.data || []).map((w) => (
              <option key={w.id} value={w.id}>
                {w.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select aria-label="Status" value={filters.status} onChange={set('status')}>
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace('_', ' ')}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <select aria-label="Kind" value={filters.test} onChange={set('test')}>
            <option value="">Runs and test runs</option>
            <option value="false">Runs only</option>
            <option value="true">Test runs only</option>
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" aria-label="From" value={filters.from} onChange={set('from')} />
        </label>
        <label>
          To
          <input type="datetime-local" aria-label="To" value={filters.to} onChange={set('to')} />
        </label>
        <button
          type="button"
          onClick={() => {
            setCursors([]);
            setFilters({ workflow: '', status: '', test: '', from: '', to: '' });
          }}
        >
          Clear filters
        </button>
      </form>
      <ErrorText error={page.error} />
      <table aria-label="Executions">
        <thead>
          <tr>
            <th>Execution</th>
            <th>Workflow</th>
            <th>Version</th>
            <th>Status</th>
            <th>Started</th>
            <th className="num">Duration</th>
          </tr>
        </thead>
        <tbody>
          {data?.items.map((x) => (
            <tr key={x.id}>
              <td>
                <Link to={`/executions/${x.id}`} className="mono" aria-label={`Execution ${x.id}`}>
                  {x.id.slice(0, 8)}…
                </Link>
                {x.test && <span className="badge"> test</span>}
              </td>
              <td>
                <Link to={`/workflows/${x.workflow_id}`}>{nameOf.get(x.workflow_id) ?? x.workflow_id}</Link>
              </td>
              <td>v{x.version}</td>
              <td>
                <Status status={x.status} />
              </td>
              <td className="nowrap">{fmtTime(x.created_at)}</td>
              <td className="num">{x.finished_at ? fmtDuration(x.finished_at - x.created_at) : '—'}</td>
            </tr>
          ))}
          {data && data.items.length === 0 && (
            <tr>
              <td colSpan={6} className="muted">
                No executions match.
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
