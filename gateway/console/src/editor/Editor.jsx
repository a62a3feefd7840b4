// The workflow editor: a canvas of the document's nodes, a palette of
// kinds, a form per node, saving, publishing, versions and runs.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ReactFlowProvider, useReactFlow } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import './editor.css';
import { api, atLeast, get, post } from '../api.js';
import { Link } from '../router.jsx';
import Canvas from './Canvas.jsx';
import Palette from './Palette.jsx';
import ConfigPanel from './ConfigPanel.jsx';
import Versions from './Versions.jsx';
import JsonView from './JsonView.jsx';
import RunPanel from './RunPanel.jsx';
import Problems from './Problems.jsx';
import { useDocHistory } from './history.js';
import { addEdge, cleanDoc, freshId, problemsOf, removeItems, renameNode, withPositions } from './doc.js';
import { useEditorKeys } from './keys.js';

const NO_SELECTION = { nodes: new Set(), edges: new Set() };

export default function Editor(props) {
  return (
    <ReactFlowProvider>
      <EditorScreen {...props} />
    </ReactFlowProvider>
  );
}

function EditorScreen({ me, params: { id } }) {
  const canEdit = atLeast(me, 'editor');
  const canRun = atLeast(me, 'operator');
  const readOnly = !canEdit;
  const history = useDocHistory();
  const { doc, change, undo, redo, reset } = history;
  const [wf, setWf] = useState(null);
  const [etag, setEtag] = useState(null);
  const [kinds, setKinds] = useState([]);
  const [loadError, setLoadError] = useState(null);
  const [selection, setSelection] = useState(NO_SELECTION);
  const [problems, setProblems] = useState([]);
  const [notice, setNotice] = useState(null);
  const [side, setSide] = useState(null); // 'json' | 'versions' | 'run' | null
  const [busy, setBusy] = useState(false);
  const saved = useRef(null);
  const flow = useReactFlow();
  const canvasBox = useRef(null);

  const load = useCallback(async () => {
    setLoadError(null);
    try {
      const [r, k] = await Promise.all([api('GET', `/v1/workflows/${id}`), get('/v1/node-kinds')]);
      const positioned = withPositions(r.data.document);
      saved.current = positioned;
      reset(positioned);
      setWf(r.data);
      setEtag(r.headers.get('ETag') || `"${r.data.version}"`);
      setKinds(k.items || k);
      setProblems([]);
      setSelection(NO_SELECTION);
    } catch (e) {
      setLoadError(e.message);
    }
  }, [id, reset]);

  useEffect(() => {
    load();
  }, [load]);

  // The JSON view shows the document as it is now: a new text on each change.
  const revisions = useRef(0);
  const revision = useMemo(() => (doc ? ++revisions.current : 0), [doc]);
  const kindByName = useMemo(() => new Map(kinds.map((k) => [k.kind, k])), [kinds]);
  const dirty = doc !== null && doc !== saved.current;

  const addNode = useCallback(
    (kindName, pos) => {
      const kind = kindByName.get(kindName);
      if (!kind) return;
      let at = pos;
      if (!at) {
        const box = canvasBox.current?.getBoundingClientRect();
        at = box ? flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 2 }) : { x: 0, y: 0 };
      }
      const present = history.current.current.nodes;
      const taken = new Set(present.map((n) => n.id));
      const nid = freshId(kind.kind, taken);
      // Added by keyboard at the centre: below whatever is there already.
      let ui = { x: Math.round(at.x - 90), y: Math.round(at.y - 32) };
      if (!pos) {
        while (present.some((n) => n.ui && Math.abs(n.ui.x - ui.x) < 180 && Math.abs(n.ui.y - ui.y) < 70)) ui = { x: ui.x, y: ui.y + 90 };
      }
      change((d) => ({ ...d, nodes: [...d.nodes, { id: nid, type: kind.type, kind: kind.kind, config: {}, ui }] }));
      setSelection({ nodes: new Set([nid]), edges: new Set() });
    },
    [kindByName, change, flow, history],
  );

  // A drag's end: one step of the history.
  const onMove = useCallback(
    (moves) => {
      const to = new Map(moves);
      change((d) => ({ ...d, nodes: d.nodes.map((n) => (to.has(n.id) ? { ...n, ui: { x: Math.round(to.get(n.id).x), y: Math.round(to.get(n.id).y) } } : n)) }));
    },
    [change],
  );

  const onConnect = useCallback(
    ({ from, to, handle, when }) => {
      const w = when !== undefined ? when : handle && handle !== 'success' ? handle : undefined;
      change((d) => addEdge(d, { from, to, when: w }));
    },
    [change],
  );

  const onDelete = useCallback(
    (nodeIds, edgeIds) => {
      change((d) => removeItems(d, nodeIds, edgeIds));
      setSelection(NO_SELECTION);
    },
    [change],
  );

  const clipboard = useRef(null);
  useEditorKeys({ readOnly, doc, selection, undo, redo, clipboard, change, setSelection, onDelete });

  const save = async () => {
    setBusy(true);
    setNotice(null);
    try {
      const sent = doc;
      const r = await api('PUT', `/v1/workflows/${id}`, { body: cleanDoc(sent), headers: etag ? { 'If-Match': etag } : {} });
      saved.current = sent;
      setWf((w) => ({ ...w, ...r.data }));
      setEtag(r.headers.get('ETag') || `"${r.data.version}"`);
      setProblems([]);
      setNotice({ ok: true, text: `Saved as version ${r.data.version} (a draft).` });
      return true;
    } catch (e) {
      if (e.status === 412) setNotice({ ok: false, reload: true, text: 'Another version was saved since this one was loaded: reload to see it (your changes stay here until then; copy them from the JSON view).' });
      else if (e.status === 422) {
        const ps = problemsOf(doc, e);
        setProblems(ps);
        setNotice({ ok: false, text: `Not saved: ${ps.length} problem${ps.length === 1 ? '' : 's'} (listed below and on the nodes).` });
      } else setNotice({ ok: false, text: e.message });
      return false;
    } finally {
      setBusy(false);
    }
  };

  const publish = async () => {
    if (dirty && !(await save())) return;
    setBusy(true);
    try {
      const s = await post(`/v1/workflows/${id}/publish`);
      setWf((w) => ({ ...w, ...s }));
      setNotice({ ok: true, text: `Version ${s.published_version} is published.` });
    } catch (e) {
      if (e.status === 422) setProblems(problemsOf(doc, e));
      setNotice({ ok: false, text: e.message });
    } finally {
      setBusy(false);
    }
  };

  if (loadError) {
    return (
      <section>
        <h1>Workflow</h1>
        <p className="error" role="alert">
          {loadError}
        </p>
        <button type="button" onClick={load}>
          Try again
        </button>
      </section>
    );
  }
  if (!doc || !wf) return <p className="loading">Loading…</p>;

  const selectedId = selection.nodes.size === 1 ? [...selection.nodes][0] : null;
  const selected = selectedId ? doc.nodes.find((n) => n.id === selectedId) : null;
  const problemNodes = new Set(problems.map((p) => p.node).filter(Boolean));

  return (
    <div className={'fm-editor' + (readOnly ? ' read-only' : '')}>
      <div className="fm-toolbar" role="toolbar" aria-label="Editor">
        <h1 title={wf.id}>{doc.name}</h1>
        <span className="muted">
          v{wf.version}
          {wf.published_version ? ` · published v${wf.published_version}` : ' · not published'}
          {dirty ? ' · unsaved changes' : ''}
          {readOnly ? ' · read-only' : ''}
        </span>
        <span className="fm-spacer" />
        {!readOnly && (
          <>
            <button type="button" onClick={undo} disabled={!history.canUndo} aria-label="Undo" title="Ctrl+Z">
              Undo
            </button>
            <button type="button" onClick={redo} disabled={!history.canRedo} aria-label="Redo" title="Ctrl+Shift+Z">
              Redo
            </button>
            <button
              type="button"
              aria-label="Auto-layout"
              onClick={() => {
                change((d) => withPositions(d, true));
                setTimeout(() => flow.fitView({ padding: 0.2 }), 50);
              }}
            >
              Auto-layout
            </button>
          </>
        )}
        <button type="button" aria-pressed={side === 'json'} onClick={() => setSide(side === 'json' ? null : 'json')} aria-label="JSON view">
          JSON
        </button>
        <button type="button" aria-pressed={side === 'versions'} onClick={() => setSide(side === 'versions' ? null : 'versions')} aria-label="Versions">
          Versions
        </button>
        {canRun && (
          <button type="button" aria-pressed={side === 'run'} onClick={() => setSide(side === 'run' ? null : 'run')} aria-label="Run panel">
            Run…
          </button>
        )}
        {!readOnly && (
          <>
            <button type="button" onClick={save} disabled={busy} aria-label="Save draft">
              Save draft
            </button>
            <button type="button" className="primary" onClick={publish} disabled={busy} aria-label="Publish">
              Publish
            </button>
          </>
        )}
      </div>
      {notice && (
        <p className={notice.ok ? 'fm-notice ok' : 'fm-notice error'} role={notice.ok ? 'status' : 'alert'}>
          {notice.text}{' '}
          {notice.reload && (
            <button type="button" className="small" onClick={load} aria-label="Reload workflow">
              Reload
            </button>
          )}
        </p>
      )}
      <div className="fm-body-grid">
        {!readOnly && <Palette kinds={kinds} onAdd={addNode} />}
        <div className="fm-canvas-col" ref={canvasBox}>
          <Canvas
            doc={doc}
            selection={selection}
            onSelect={setSelection}
            problemNodes={problemNodes}
            readOnly={readOnly}
            onMove={onMove}
            onConnect={onConnect}
            onDelete={onDelete}
            onDropKind={addNode}
          />
          {problems.length > 0 && <Problems
              problems={problems}
              onPick={(nid, field) => {
                if (!nid) return;
                setSide(null);
                setSelection({ nodes: new Set([nid]), edges: new Set() });
                const top = (field || '').split('.')[0];
                if (top) setTimeout(() => document.querySelector(`.fm-config [data-field="${CSS.escape(top)}"]`)?.scrollIntoView({ block: 'center' }), 50);
              }}
            />}
        </div>
        <div className="fm-side">
          {side === 'json' && <JsonView key={revision} doc={doc} readOnly={readOnly} onApply={(d) => change(withPositions(d))} onClose={() => setSide(null)} />}
          {side === 'versions' && <Versions workflowId={id} latest={wf.version} onClose={() => setSide(null)} />}
          {side === 'run' && <RunPanel workflowId={id} version={wf.version} published={wf.published_version} dirty={dirty} onClose={() => setSide(null)} />}
          {!side && selected && (
            <ConfigPanel
              doc={doc}
              node={selected}
              kind={kindByName.get(selected.kind)}
              readOnly={readOnly}
              problems={problems.filter((p) => p.node === selected.id)}
              onChangeNode={(n) => change((d) => ({ ...d, nodes: d.nodes.map((x) => (x.id === selected.id ? n : x)) }))}
              onRename={(to) => {
                change((d) => renameNode(d, selected.id, to));
                setProblems((ps) => ps.map((p) => (p.node === selected.id ? { ...p, node: to } : p)));
                setSelection({ nodes: new Set([to]), edges: new Set() });
              }}
              onConnect={onConnect}
              onDelete={() => onDelete([selected.id], [])}
              onExample={() => {
                const k = kindByName.get(selected.kind);
                if (k) change((d) => ({ ...d, nodes: d.nodes.map((x) => (x.id === selected.id ? { ...x, config: structuredClone(k.example ?? {}) } : x)) }));
              }}
            />
          )}
          {!side && !selected && <Overview doc={doc} readOnly={readOnly} />}
        </div>
      </div>
    </div>
  );
}

function Overview({ doc, readOnly }) {
  const calls = doc.nodes.filter((n) => n.kind === 'call_workflow' && n.config && typeof n.config.workflow === 'string');
  return (
    <aside className="fm-config" aria-label="Workflow overview">
      <h2>{doc.name}</h2>
      {doc.description && <p>{doc.description}</p>}
      <p className="muted">
        {doc.nodes.length} nodes, {(doc.edges || []).length} edges.
      </p>
      {readOnly ? (
        <p className="muted">Select a node to see its configuration.</p>
      ) : (
        <p className="muted">
          Drag a kind from the palette onto the canvas (or focus it and press Enter), connect nodes by dragging from a node's right handle to another's left, or select a node
          and use “Connect to…”. Ctrl+Z undoes, Ctrl+Shift+Z redoes, Delete removes, Ctrl+C / Ctrl+V copy nodes.
        </p>
      )}
      {calls.length > 0 && (
        <>
          <h3>Calls</h3>
          <ul>
            {calls.map((n) => (
              <li key={n.id}>
                {n.id}: <Link to={`/workflows/${encodeURIComponent(n.config.workflow)}`}>workflow {n.config.workflow}</Link>
              </li>
            ))}
          </ul>
        </>
      )}
    </aside>
  );
}
