// One execution on the canvas of the version it ran: each node coloured
// by its state, live from the execution's events.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ReactFlowProvider } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import '../editor/editor.css';
import './run.css';
import { atLeast, get, post } from '../api.js';
import { Link, navigate } from '../router.jsx';
import Canvas from '../editor/Canvas.jsx';
import { withPositions } from '../editor/doc.js';
import NodeDetail from './NodeDetail.jsx';
import Timeline from './Timeline.jsx';

const EVENTS = ['execution_started', 'node_started', 'node_succeeded', 'node_retrying', 'node_failed', 'node_skipped', 'node_waiting', 'responded', 'execution_finished', 'child_started', 'called_by'];
const DONE = new Set(['succeeded', 'failed', 'cancelled', 'timed_out']);
const EMPTY = { nodes: new Set(), edges: new Set() };

export default function Run(props) {
  return (
    <ReactFlowProvider>
      <RunScreen {...props} />
    </ReactFlowProvider>
  );
}

function RunScreen({ me, params: { id } }) {
  const canOperate = atLeast(me, 'operator');
  const [exec, setExec] = useState(null);
  const [doc, setDoc] = useState(null);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const [selection, setSelection] = useState(EMPTY);
  const [live, setLive] = useState(false);
  const [logsTick, setLogsTick] = useState(0);
  const inflight = useRef(false);
  const again = useRef(false);
  const docOf = useRef(null);

  const current = useRef(id);
  current.current = id;

  const refresh = useCallback(async () => {
    if (inflight.current) {
      again.current = true;
      return;
    }
    inflight.current = true;
    try {
      do {
        again.current = false;
        // The screen may have moved to another execution (a re-run) meanwhile.
        const e = await get(`/v1/executions/${current.current}`);
        if (e.id !== current.current) {
          again.current = true;
          continue;
        }
        setExec(e);
        setLogsTick((t) => t + 1);
        const key = `${e.workflow_id}@${e.version}`;
        if (docOf.current !== key) {
          docOf.current = key;
          const v = await get(`/v1/workflows/${e.workflow_id}/versions/${e.version}`);
          setDoc(withPositions(v.document));
        }
        setError(null);
      } while (again.current);
    } catch (err) {
      setError(err.message);
    } finally {
      inflight.current = false;
    }
  }, []);

  useEffect(() => {
    setExec(null);
    setDoc(null);
    docOf.current = null;
    setSelection(EMPTY);
    refresh();
  }, [id, refresh]);

  const finished = exec ? DONE.has(exec.status) : false;
  useEffect(() => {
    if (finished) return undefined;
    const source = new EventSource(`/v1/executions/${encodeURIComponent(id)}/events`);
    const on = () => refresh();
    source.onopen = () => setLive(true);
    source.onmessage = on;
    for (const name of EVENTS) source.addEventListener(name, on);
    source.onerror = () => setLive(false);
    // Events are the way; a slow poll covers a stream that broke.
    const poll = setInterval(on, 5000);
    return () => {
      source.close();
      clearInterval(poll);
      setLive(false);
    };
  }, [id, finished, refresh]);

  const statuses = useMemo(() => {
    if (!exec) return {};
    const s = {};
    for (const n of exec.nodes) s[n.node] = n.status;
    return s;
  }, [exec]);

  // Loop iterations' steps (`each[2].charge`), counted by body node and status.
  const bodySteps = useMemo(() => {
    if (!exec) return null;
    const out = {};
    for (const n of exec.nodes) {
      const m = /^([^[.]+)\[\d+\]\.([^[.]+)$/.exec(n.node);
      if (!m) continue;
      const [, loop, body] = m;
      out[loop] = out[loop] || {};
      out[loop][body] = out[loop][body] || {};
      out[loop][body][n.status] = (out[loop][body][n.status] || 0) + 1;
    }
    return out;
  }, [exec]);

  const act = async (what, f) => {
    setNotice(null);
    try {
      const r = await f();
      setNotice({ ok: true, text: what });
      refresh();
      return r;
    } catch (e) {
      setNotice({ ok: false, text: e.message });
      return null;
    }
  };

  if (error && !exec) {
    return (
      <section>
        <h1>Execution</h1>
        <p className="error" role="alert">
          {error}
        </p>
      </section>
    );
  }
  if (!exec || !doc) return <p className="loading">Loading…</p>;

  const selectedId = selection.nodes.size === 1 ? [...selection.nodes][0] : null;
  const state = selectedId ? exec.nodes.find((n) => n.node === selectedId) : null;

  return (
    <div className="fm-editor fm-run">
      <div className="fm-toolbar" role="toolbar" aria-label="Execution">
        <h1>
          Execution of <Link to={`/workflows/${exec.workflow_id}`}>{doc.name}</Link> v{exec.version}
        </h1>
        <span className={`fm-exec-status status-${exec.status}`} aria-label="Execution status" data-status={exec.status}>
          {exec.status}
        </span>
        {exec.test && <span className="muted">test run</span>}
        {exec.rerun_of && (
          <span className="muted">
            re-run of <Link to={`/executions/${exec.rerun_of.execution_id}`}>{short(exec.rerun_of.execution_id)}</Link> from {exec.rerun_of.from_node}
          </span>
        )}
        {exec.parent && (
          <span className="muted">
            called by <Link to={`/executions/${exec.parent.execution_id}`}>{short(exec.parent.execution_id)}</Link>
          </span>
        )}
        <span className="fm-spacer" />
        <span className="muted" aria-live="polite">
          {finished ? 'finished' : live ? 'live' : 'connecting…'}
        </span>
        {canOperate && !finished && (
          <button type="button" className="danger" aria-label="Cancel execution" disabled={exec.cancel_requested} onClick={() => act('Cancel asked for.', () => post(`/v1/executions/${id}/cancel`))}>
            {exec.cancel_requested ? 'Cancelling…' : 'Cancel'}
          </button>
        )}
      </div>
      {notice && (
        <p className={notice.ok ? 'fm-notice ok' : 'fm-notice error'} role={notice.ok ? 'status' : 'alert'}>
          {notice.text}
        </p>
      )}
      {error && <p className="fm-notice error">{error}</p>}
      {exec.error && (
        <p className="fm-notice error" aria-label="Execution error">
          {exec.error}
        </p>
      )}
      <div className="fm-body-grid fm-run-grid">
        <div className="fm-canvas-col">
          <Canvas doc={doc} selection={selection} onSelect={setSelection} statuses={statuses} bodySteps={bodySteps} readOnly ariaLabel="Execution canvas" />
          <Timeline exec={exec} onPick={(n) => setSelection({ nodes: new Set([n]), edges: new Set() })} selected={selectedId} />
        </div>
        <div className="fm-side">
          {selectedId ? (
            <NodeDetail
              key={selectedId}
              exec={exec}
              doc={doc}
              nodeId={selectedId}
              state={state}
              logsTick={logsTick}
              canOperate={canOperate}
              onRerun={async (body) => {
                const r = await act('Re-run started.', () => post(`/v1/executions/${id}/rerun`, body));
                if (r && r.execution_id) navigate(`/executions/${r.execution_id}`);
              }}
              onResume={(body) => act(`Resumed ${body.node}.`, () => post(`/v1/executions/${id}/resume`, body))}
            />
          ) : (
            <RunOverview exec={exec} />
          )}
        </div>
      </div>
    </div>
  );
}

const short = (s) => String(s).slice(0, 8) + '…';
const time = (ms) => (ms ? new Date(ms).toLocaleString() : '—');

function RunOverview({ exec }) {
  return (
    <aside className="fm-config" aria-label="Execution overview">
      <h2>Execution</h2>
      <dl className="fm-dl">
        <dt>id</dt>
        <dd>{exec.id}</dd>
        <dt>status</dt>
        <dd className={`status-${exec.status}`}>{exec.status}</dd>
        <dt>created</dt>
        <dd>{time(exec.created_at)}</dd>
        <dt>finished</dt>
        <dd>{time(exec.finished_at)}</dd>
      </dl>
      <h3>Trigger</h3>
      <pre className="fm-pre">{JSON.stringify(exec.trigger, null, 2)}</pre>
      {exec.output !== null && exec.output !== undefined && (
        <>
          <h3>Output</h3>
          <pre className="fm-pre">{JSON.stringify(exec.output, null, 2)}</pre>
        </>
      )}
      <p className="muted">Select a node for its input, output, printed lines and attempts.</p>
    </aside>
  );
}
