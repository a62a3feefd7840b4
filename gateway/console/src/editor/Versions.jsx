// The workflow's versions, and a side-by-side difference between two.
import { useEffect, useMemo, useState } from 'react';
import { get } from '../api.js';
import { lineDiff } from './diff.js';

const pretty = (doc) => JSON.stringify(doc, null, 2);

export default function Versions({ workflowId, latest, onClose }) {
  const [versions, setVersions] = useState(null);
  const [error, setError] = useState(null);
  const [a, setA] = useState('');
  const [b, setB] = useState('');
  const [docs, setDocs] = useState({});
  const [changesOnly, setChangesOnly] = useState(true);

  useEffect(() => {
    get(`/v1/workflows/${workflowId}/versions`, { limit: 100 })
      .then((page) => {
        const items = page.items || [];
        setVersions(items);
        if (items.length) setB(String(items[0].version));
        if (items.length > 1) setA(String(items[1].version));
        else if (items.length) setA(String(items[0].version));
      })
      .catch((e) => setError(e.message));
  }, [workflowId, latest]);

  useEffect(() => {
    for (const v of [a, b]) {
      if (!v || docs[v]) continue;
      get(`/v1/workflows/${workflowId}/versions/${v}`)
        .then((d) => setDocs((old) => ({ ...old, [v]: pretty(d.document) })))
        .catch((e) => setError(e.message));
    }
  }, [a, b, workflowId, docs]);

  const rows = useMemo(() => (docs[a] !== undefined && docs[b] !== undefined ? lineDiff(docs[a], docs[b]) : null), [docs, a, b]);
  const shown = rows && changesOnly ? withContext(rows, 2) : rows;

  return (
    <section className="fm-versions" aria-label="Version history">
      <header className="fm-panel-head">
        <h2>Versions</h2>
        <button type="button" onClick={onClose} aria-label="Close version history">
          Close
        </button>
      </header>
      {error && <p className="error">{error}</p>}
      {!versions && !error && <p className="muted">Loading…</p>}
      {versions && (
        <>
          <ul className="fm-version-list">
            {versions.map((v) => (
              <li key={v.version}>
                v{v.version} · {new Date(v.created_at).toLocaleString()} {v.published && <strong>published</strong>}
              </li>
            ))}
          </ul>
          <div className="fm-row">
            <label>
              From{' '}
              <select aria-label="Compare from version" value={a} onChange={(e) => setA(e.target.value)}>
                {versions.map((v) => (
                  <option key={v.version} value={v.version}>
                    v{v.version}
                  </option>
                ))}
              </select>
            </label>
            <label>
              to{' '}
              <select aria-label="Compare to version" value={b} onChange={(e) => setB(e.target.value)}>
                {versions.map((v) => (
                  <option key={v.version} value={v.version}>
                    v{v.version}
                  </option>
                ))}
              </select>
            </label>
            <label>
              <input type="checkbox" checked={changesOnly} onChange={(e) => setChangesOnly(e.target.checked)} /> changes only
            </label>
          </div>
          {shown && (
            <table className="fm-diff" aria-label={`Difference between v${a} and v${b}`}>
              <thead>
                <tr>
                  <th>v{a}</th>
                  <th>v{b}</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((r, i) =>
                  r.gap ? (
                    <tr key={i} className="gap">
                      <td colSpan={2}>…</td>
                    </tr>
                  ) : (
                    <tr key={i} className={`d-${r.kind}`}>
                      <td>{r.left ?? ''}</td>
                      <td>{r.right ?? ''}</td>
                    </tr>
                  ),
                )}
              </tbody>
            </table>
          )}
          {rows && rows.every((r) => r.kind === 'same') && <p className="muted">The two versions are the same.</p>}
        </>
      )}
    </section>
  );
}

/** Changed rows and `n` rows around each; gaps between. */
function withContext(rows, n) {
  const keep = new Array(rows.length).fill(false);
  rows.forEach((r, i) => {
    if (r.kind !== 'same') for (let k = Math.max(0, i - n); k <= Math.min(rows.length - 1, i + n); k++) keep[k] = true;
  });
  const out = [];
  let gap = false;
  rows.forEach((r, i) => {
    if (keep[i]) {
      out.push(r);
      gap = false;
    } else if (!gap) {
      out.push({ gap: true });
      gap = true;
    }
  });
  return out;
}
