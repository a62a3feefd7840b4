// The selected node: its id, its config as a form, how it fails, and a
// keyboard way to connect it to another node.
import { useEffect, useMemo, useState } from 'react';
import SchemaForm from './SchemaForm.jsx';
import { outputsOf, upstreamOf } from './doc.js';

const ID_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export default function ConfigPanel({ doc, node, kind, readOnly, problems, onChangeNode, onRename, onConnect, onDelete, onExample }) {
  const upstream = useMemo(() => upstreamOf(doc, node.id), [doc, node.id]);
  const fieldProblems = useMemo(() => {
    const m = new Map();
    for (const p of problems) if (p.top === 'config' && p.field) m.set(p.field, (m.has(p.field) ? m.get(p.field) + '; ' : '') + p.message);
    return m;
  }, [problems]);
  const ctx = { nodeId: node.id, kind: node.kind, config: node.config, upstream, readOnly, problems: fieldProblems };
  const general = problems.filter((p) => p.top !== 'config' || !p.field);

  return (
    <aside className="fm-config" aria-label={`Configuration of ${node.id}`}>
      <header className="fm-panel-head">
        <h2>{node.id}</h2>
        <span className="muted">
          {node.type} · {node.kind}
        </span>
      </header>
      {kind && <p className="muted fm-desc">{kind.description}</p>}
      {general.length > 0 && (
        <ul className="error fm-node-problems">
          {general.map((p, i) => (
            <li key={i}>
              {p.field ? `${p.field}: ` : ''}
              {p.message}
            </li>
          ))}
        </ul>
      )}
      <RenameField id={node.id} readOnly={readOnly} taken={doc.nodes.map((n) => n.id)} onRename={onRename} />
      {!readOnly && <ConnectMenu doc={doc} node={node} onConnect={onConnect} />}
      <div className="fm-row fm-config-head">
        <h3>Config</h3>
        {!readOnly && kind && kind.example && (
          <button type="button" className="small" onClick={onExample} aria-label="Fill with the example">
            Fill with the example
          </button>
        )}
      </div>
      {kind ? (
        <SchemaForm schema={kind.config_schema} value={node.config || {}} ctx={ctx} onChange={(config) => onChangeNode({ ...node, config: config || {} })} />
      ) : (
        <p className="error">Unknown kind {node.kind}: edit it in the JSON view.</p>
      )}
      <h3>Failure</h3>
      <div className="fm-field">
        <label htmlFor={`on-error-${node.id}`}>on_error</label>
        <select
          id={`on-error-${node.id}`}
          disabled={readOnly}
          value={node.on_error || 'fail'}
          onChange={(e) => {
            const { on_error, ...rest } = node;
            onChangeNode(e.target.value === 'fail' ? rest : { ...rest, on_error: e.target.value });
          }}
        >
          <option value="fail">fail (the execution fails)</option>
          <option value="continue">continue (the error is the output)</option>
          <option value="route">route (error / success outputs)</option>
        </select>
      </div>
      <div className="fm-field">
        <label htmlFor={`timeout-${node.id}`}>timeout</label>
        <input
          id={`timeout-${node.id}`}
          disabled={readOnly}
          placeholder="e.g. 30s"
          value={node.timeout || ''}
          onChange={(e) => {
            const { timeout, ...rest } = node;
            onChangeNode(e.target.value ? { ...rest, timeout: e.target.value } : rest);
          }}
        />
      </div>
      {!readOnly && (
        <button type="button" className="danger" onClick={onDelete} aria-label={`Delete node ${node.id}`}>
          Delete node
        </button>
      )}
    </aside>
  );
}

function RenameField({ id, readOnly, taken, onRename }) {
  const [value, setValue] = useState(id);
  const [error, setError] = useState(null);
  useEffect(() => {
    setValue(id);
    setError(null);
  }, [id]);
  const commit = () => {
    if (value === id) return;
    if (!ID_RE.test(value)) return setError('letters, digits and _, not starting with a digit');
    if (taken.includes(value)) return setError(`${value} is taken`);
    setError(null);
    onRename(value);
  };
  return (
    <div className="fm-field">
      <label htmlFor="fm-node-id">Node id</label>
      <input
        id="fm-node-id"
        aria-label="Node id"
        disabled={readOnly}
        value={value}
        onChange={(e) => setValue(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => {
          if (e.key === 'Enter') commit();
        }}
      />
      {error && <p className="error">{error}</p>}
    </div>
  );
}

function ConnectMenu({ doc, node, onConnect }) {
  const outs = outputsOf(node);
  const others = doc.nodes.filter((n) => n.id !== node.id && n.type !== 'trigger');
  const [to, setTo] = useState('');
  const [when, setWhen] = useState(outs[0] || '');
  useEffect(() => {
    setTo('');
    setWhen(outputsOf(node)[0] || '');
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [node.id]);
  if (!others.length) return null;
  return (
    <div className="fm-connect" role="group" aria-label="Connect to">
      <label htmlFor="fm-connect-to">Connect to…</label>
      <div className="fm-row">
        <select id="fm-connect-to" aria-label="Connect to node" value={to} onChange={(e) => setTo(e.target.value)}>
          <option value="">(choose a node)</option>
          {others.map((n) => (
            <option key={n.id} value={n.id}>
              {n.id}
            </option>
          ))}
        </select>
        {outs.length > 0 && (
          <select aria-label="Leave from output" value={when} onChange={(e) => setWhen(e.target.value)}>
            {outs.map((o) => (
              <option key={o} value={o}>
                on {o}
              </option>
            ))}
          </select>
        )}
        <button
          type="button"
          aria-label="Connect"
          disabled={!to}
          onClick={() => {
            onConnect({ from: node.id, to, when: outs.length && !(when === 'success' && outs.includes('error')) ? when : undefined });
            setTo('');
          }}
        >
          Connect
        </button>
      </div>
    </div>
  );
}
