// Each step's time, as bars from its start to its finish.
export default function Timeline({ exec, onPick, selected }) {
  const steps = exec.nodes.filter((n) => n.started_at).sort((a, b) => a.started_at - b.started_at);
  if (!steps.length) return null;
  const start = Math.min(...steps.map((s) => s.started_at));
  const now = Date.now();
  const end = Math.max(...steps.map((s) => s.finished_at || (exec.finished_at ?? now)), start + 1);
  const span = end - start;
  return (
    <section className="fm-timeline" aria-label="Timeline">
      <h2>
        Timeline <span className="muted">({span} ms)</span>
      </h2>
      <ol>
        {steps.map((s) => {
          const to = s.finished_at || exec.finished_at || now;
          const left = ((s.started_at - start) / span) * 100;
          const width = Math.max(((to - s.started_at) / span) * 100, 0.5);
          return (
            <li key={s.node} className={selected === s.node ? 'is-selected' : ''}>
              <button type="button" className="link" onClick={() => onPick(s.node.split('[')[0].split('.')[0])} aria-label={`Timing of ${s.node}`}>
                {s.node}
              </button>
              <span className="fm-track">
                <span className={`fm-bar st-${s.status}`} style={{ left: `${left}%`, width: `${width}%` }} title={`${to - s.started_at} ms`} />
              </span>
              <span className="muted fm-ms">{s.finished_at ? `${s.finished_at - s.started_at} ms` : s.status}</span>
            </li>
          );
        })}
      </ol>
    </section>
  );
}
