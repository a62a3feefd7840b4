// The node kinds, grouped by primitive, to drag onto the canvas (or add
// with Enter at the canvas's centre).
import { useMemo, useState } from 'react';

const ORDER = ['trigger', 'action', 'condition', 'data', 'connection'];
export const DRAG_TYPE = 'application/x-flowmesh-kind';

export default function Palette({ kinds, onAdd }) {
  const [q, setQ] = useState('');
  const groups = useMemo(() => {
    const needle = q.trim().toLowerCase();
    const by = new Map();
    for (const k of kinds) {
      if (needle && !k.kind.toLowerCase().includes(needle) && !(k.description || '').toLowerCase().includes(needle)) continue;
      if (!by.has(k.type)) by.set(k.type, []);
      by.get(k.type).push(k);
    }
    return [...by.entries()].sort((a, b) => ORDER.indexOf(a[0]) - ORDER.indexOf(b[0]));
  }, [kinds, q]);
  return (
    <aside className="fm-palette" aria-label="Node kinds">
      <input type="search" aria-label="Search node kinds" placeholder="Search kinds…" value={q} onChange={(e) => setQ(e.target.value)} />
      {groups.map(([prim, list]) => (
        <section key={prim}>
          <h3>{prim}</h3>
          <ul>
            {list.map((k) => (
              <li key={k.kind}>
                <div
                  className={`fm-kind prim-${k.type}`}
                  role="button"
                  tabIndex={0}
                  draggable
                  aria-label={`Add ${k.kind}`}
                  title={k.description}
                  data-kind={k.kind}
                  onDragStart={(e) => {
                    e.dataTransfer.setData(DRAG_TYPE, k.kind);
                    e.dataTransfer.setData('text/plain', k.kind);
                    e.dataTransfer.effectAllowed = 'copy';
                  }}
                  onKeyDown={(e) => {
                    if (e.key === 'Enter' || e.key === ' ') {
                      e.preventDefault();
                      onAdd(k.kind, null);
                    }
                  }}
                  onDoubleClick={() => onAdd(k.kind, null)}
                >
                  {k.kind}
                </div>
              </li>
            ))}
          </ul>
        </section>
      ))}
      {groups.length === 0 && <p className="muted">No kind matches.</p>}
    </aside>
  );
}
