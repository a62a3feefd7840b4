// Every problem the engine found in the document, each pointing at its node.
export default function Problems({ problems, onPick }) {
  return (
    <section className="fm-problems" aria-label="Problems">
      <h2>Problems ({problems.length})</h2>
      <ul>
        {problems.map((p, i) => (
          <li key={i}>
            {p.node ? (
              <button type="button" className="link" onClick={() => onPick(p.node, p.top === 'config' ? p.field : '')} aria-label={`Show problem at ${p.node}`}>
                {p.node}
                {p.field ? ` · ${p.field}` : ''}
              </button>
            ) : (
              <code>{p.path || '(document)'}</code>
            )}{' '}
            <span className="error">{p.message}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
