// One node of an execution: its input, output, printed lines, error and
// attempts; re-run from it, or resume it when it waits.
import { useEffect, useRef, useState } from 'react';
import { get } from '../api.js';
import { jsonErrorAt } from '../editor/diff.js';

const pretty = (v) => JSON.stringify(v, null, 2);

export default function NodeDetail({ exec, doc, nodeId, state, logsTick, canOperate, onRerun, onResume }) {
  const [logs, setLogs] = useState(null);
  const [error, setError] = useState(null);
  const node = doc.nodes.find((n) => n.id === nodeId);

  useEffect(() => {
    let gone = false;
    get(`/v1/executions/${exec.id}/logs`)
      .then((l) => {
        if (!gone) setLogs(l.nodes || []);
      })
      .catch((e) => !gone && setError(e.message));
    return () => {
      gone = true;
    };
  }, [exec.id, logsTick]);

  const entries = logs ? logs.filter((l) => l.node === nodeId) : [];
  const log = entries[entries.length - 1];
  const status = state ? state.status : log ? log.status : 'pending';

  return (
    <aside className="fm-config fm-detail" aria-label={`Node ${nodeId} of the execution`}>
      <header className="fm-panel-head">
        <h2>{nodeId}</h2>
        <span className={`fm-badge st-${status}`} aria-label="Node status">
          {status}
        </span>
      </header>
      {node && (
        <p className="muted">
          {node.type} · {node.kind}
        </p>
      )}
      {error && <p className="error">{error}</p>}
      <dl className="fm-dl">
        <dt>attempts</dt>
        <dd>{state ? state.attempts : log ? log.attempts : 0}</dd>
        {state && state.branch && (
          <>
            <dt>branch</dt>
            <dd>{state.branch}</dd>
          </>
        )}
        {state && state.started_at && (
          <>
            <dt>took</dt>
            <dd>{state.finished_at ? `${state.finished_at - state.started_at} ms` : 'running'}</dd>
          </>
        )}
        {state && state.wake_at && (
          <>
            <dt>wakes</dt>
            <dd>{new Date(state.wake_at).toLocaleString()}</dd>
          </>
        )}
        {(state?.mocked || log?.mocked) && (
          <>
            <dt>mocked</dt>
            <dd>yes: the mock was its output</dd>
          </>
        )}
      </dl>
      {(state?.error || log?.error) && (
        <>
          <h3>Error</h3>
          <pre className="fm-pre error" aria-label="Node error">
            {state?.error || log?.error}
          </pre>
        </>
      )}
      {log && (
        <>
          <h3>Input</h3>
          <pre className="fm-pre" aria-label="Node input">
            {pretty(log.input)}
          </pre>
        </>
      )}
      {(state?.output !== undefined && state?.output !== null) || log?.output != null ? (
        <>
          <h3>Output</h3>
          <pre className="fm-pre" aria-label="Node output">
            {pretty(state?.output ?? log?.output)}
          </pre>
        </>
      ) : null}
      {((log && log.lines.length) || (state && state.logs && state.logs.length)) > 0 && (
        <>
          <h3>Printed</h3>
          <pre className="fm-pre" aria-label="Printed lines">
            {(log?.lines?.length ? log.lines : state.logs).join('\n')}
          </pre>
        </>
      )}
      {entries.length > 1 && (
        <>
          <h3>Steps ({entries.length})</h3>
          <ul className="fm-steps">
            {entries.map((e, i) => (
              <li key={i}>
                {e.status} · {e.attempts} attempt{e.attempts === 1 ? '' : 's'} {e.error ? `· ${e.error}` : ''}
              </li>
            ))}
          </ul>
        </>
      )}
      {canOperate && status === 'waiting' && node && node.kind === 'wait_for_event' && <ResumeForm nodeId={nodeId} onResume={onResume} />}
      {canOperate && status !== 'pending' && <RerunForm nodeId={nodeId} input={log ? log.input : {}} onRerun={onRerun} />}
    </aside>
  );
}

function useJson(initial) {
  const [text, setText] = useState(initial);
  const [error, setError] = useState(null);
  const parse = () => {
    try {
      const v = text.trim() ? JSON.parse(text) : null;
      setError(null);
      return { ok: true, value: v };
    } catch (e) {
      const at = jsonErrorAt(text, e);
      setError(`line ${at.line}, column ${at.column}: ${at.message}`);
      return { ok: false };
    }
  };
  return { text, setText, error, setError, parse };
}

function ResumeForm({ nodeId, onResume }) {
  const j = useJson('{\n  "approved": true\n}');
  return (
    <section className="fm-action" aria-label="Resume">
      <h3>Resume</h3>
      <label htmlFor="fm-resume-payload">Payload (JSON, becomes the node's output)</label>
      <textarea id="fm-resume-payload" className="mono" rows={4} value={j.text} onChange={(e) => j.setText(e.target.value)} />
      {j.error && <p className="error">{j.error}</p>}
      <button
        type="button"
        className="primary"
        aria-label={`Resume ${nodeId}`}
        onClick={() => {
          const p = j.parse();
          if (p.ok) onResume({ node: nodeId, payload: p.value });
        }}
      >
        Resume
      </button>
    </section>
  );
}

function RerunForm({ nodeId, input, onRerun }) {
  const j = useJson(pretty(input || {}));
  const touched = useRef(false);
  useEffect(() => {
    // The recorded input arrives with the logs; never over the user's edit.
    if (!touched.current) j.setText(pretty(input || {}));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [JSON.stringify(input)]);
  return (
    <section className="fm-action" aria-label="Re-run">
      <h3>Re-run from {nodeId}</h3>
      <label htmlFor="fm-rerun-input">Upstream outputs to use (JSON, by node id)</label>
      <textarea
        id="fm-rerun-input"
        className="mono"
        rows={6}
        value={j.text}
        onChange={(e) => {
          touched.current = true;
          j.setText(e.target.value);
        }}
      />
      {j.error && <p className="error">{j.error}</p>}
      <button
        type="button"
        aria-label={`Re-run from ${nodeId}`}
        onClick={() => {
          const p = j.parse();
          if (!p.ok) return;
          if (p.value !== null && (typeof p.value !== 'object' || Array.isArray(p.value))) {
            j.setError('an object of node ids to outputs');
            return;
          }
          const body = { from_node: nodeId };
          if (p.value && Object.keys(p.value).length) body.input_override = p.value;
          onRerun(body);
        }}
      >
        Re-run from here
      </button>
    </section>
  );
}
