// The canvas: the document's nodes and edges drawn by React Flow. The
// document stays the one source of truth; React Flow's changes are
// applied to it.
import { useCallback, useMemo, useRef, useState } from 'react';
import { Background, Controls, MarkerType, MiniMap, ReactFlow, useReactFlow, useStore } from '@xyflow/react';
import FlowNode from './FlowNode.jsx';
import { DRAG_TYPE } from './Palette.jsx';
import { edgeId, handleOf } from './doc.js';

const nodeTypes = { fm: FlowNode };
const MINIMAP_STYLE = { width: 150, height: 100 };
const FIT = { padding: 0.2, maxZoom: 1.2 };
// Zoomed far out the dots would be a dense grid, costly to paint on every
// frame of a drag and no help to the eye: none then.
const zoomedIn = (s) => s.transform[2] >= 0.5;
function Dots() {
  return useStore(zoomedIn) ? <Background gap={16} /> : null;
}

const minimapColour = (n) => STATUS_COLOURS[n.data.status] || '#c9d2e3';
const STATUS_COLOURS = { succeeded: '#1e8e3e', failed: '#c5221f', running: '#b06000', retrying: '#b06000', waiting: '#6b4fbb', skipped: '#9aa0a6', cancelled: '#9aa0a6' };

/**
 * Props: doc, selection {nodes: Set, edges: Set}, onSelect, statuses (node id ->
 * status, for a run), problemNodes (Set), readOnly, and for editing:
 * onMove([[id, pos]]) when a drag ends, onConnect(edge), onDelete(nodeIds, edgeIds), onDropKind(kind, pos).
 */
export default function Canvas({ doc, selection, onSelect, statuses, bodySteps, problemNodes, readOnly, onMove, onConnect, onDelete, onDropKind, onNodeClick, ariaLabel }) {
  const { screenToFlowPosition } = useReactFlow();
  const measured = useRef(new Map());
  const [measuredTick, setMeasuredTick] = useState(0);
  // A drag's positions stay here, frame by frame; the document gets the
  // final one when the drag ends (one change, one render of the editor).
  const [dragging, setDragging] = useState(null);
  const nodeCache = useRef(new Map());
  const edgeCache = useRef(new Map());

  const nodes = useMemo(() => {
    const cache = nodeCache.current;
    const next = new Map();
    const out = doc.nodes.map((n) => {
      const sel = selection.nodes.has(n.id);
      const prob = problemNodes ? problemNodes.has(n.id) : false;
      const status = statuses ? statuses[n.id] : undefined;
      const steps = bodySteps ? bodySteps[n.id] : undefined;
      const m = measured.current.get(n.id);
      const moving = dragging ? dragging.get(n.id) : undefined;
      const hit = cache.get(n.id);
      if (hit && hit.n === n && hit.sel === sel && hit.prob === prob && hit.status === status && hit.m === m && hit.ro === readOnly && hit.moving === moving && hit.steps === steps) {
        next.set(n.id, hit);
        return hit.rf;
      }
      const rf = {
        id: n.id,
        type: 'fm',
        position: moving || n.ui || { x: 0, y: 0 },
        data: { node: n, problem: prob, status, steps, readOnly },
        selected: sel,
        ...(m ? { measured: m } : {}),
      };
      next.set(n.id, { n, sel, prob, status, m, ro: readOnly, moving, steps, rf });
      return rf;
    });
    nodeCache.current = next;
    return out;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [doc.nodes, selection, problemNodes, statuses, bodySteps, readOnly, measuredTick, dragging]);

  const byId = useMemo(() => new Map(doc.nodes.map((n) => [n.id, n])), [doc.nodes]);

  const edges = useMemo(() => {
    const cache = edgeCache.current;
    const next = new Map();
    const out = (doc.edges || []).map((e) => {
      const id = edgeId(e);
      const sel = selection.edges.has(id);
      const src = byId.get(e.from);
      const handle = handleOf(src, e.when);
      const taken = statuses ? statuses[e.to] && statuses[e.to] !== 'skipped' && statuses[e.from] === 'succeeded' : false;
      const hit = cache.get(id);
      if (hit && hit.e === e && hit.sel === sel && hit.handle === handle && hit.taken === taken) {
        next.set(id, hit);
        return hit.rf;
      }
      const rf = {
        id,
        source: e.from,
        target: e.to,
        sourceHandle: handle,
        label: e.when,
        selected: sel,
        animated: taken && statuses[e.to] === 'running',
        markerEnd: { type: MarkerType.ArrowClosed },
        ariaLabel: `Edge from ${e.from}${e.when ? ' on ' + e.when : ''} to ${e.to}`,
        className: taken ? 'taken' : undefined,
      };
      next.set(id, { e, sel, handle, taken, rf });
      return rf;
    });
    edgeCache.current = next;
    return out;
  }, [doc.edges, byId, selection, statuses]);

  const onNodesChange = useCallback(
    (changes) => {
      let sel = null;
      let dims = false;
      let moved = null;
      const ended = [];
      for (const c of changes) {
        if (c.type === 'position' && c.position && onMove) {
          if (c.dragging) {
            moved = moved || new Map(dragging || []);
            moved.set(c.id, c.position);
          } else ended.push([c.id, c.position]);
        } else if (c.type === 'position' && !c.position && c.dragging === false && dragging && dragging.has(c.id)) {
          ended.push([c.id, dragging.get(c.id)]);
        } else if (c.type === 'dimensions' && c.dimensions) {
          const old = measured.current.get(c.id);
          if (!old || old.width !== c.dimensions.width || old.height !== c.dimensions.height) {
            measured.current.set(c.id, { width: c.dimensions.width, height: c.dimensions.height });
            dims = true;
          }
        } else if (c.type === 'select') {
          sel = sel || new Set(selection.nodes);
          if (c.selected) sel.add(c.id);
          else sel.delete(c.id);
        }
      }
      if (moved) setDragging(moved);
      if (ended.length) {
        onMove(ended);
        setDragging(null);
      }
      if (dims) setMeasuredTick((t) => t + 1);
      if (sel) onSelect({ nodes: sel, edges: selection.edges });
    },
    [onMove, onSelect, selection, dragging],
  );

  const onEdgesChange = useCallback(
    (changes) => {
      let sel = null;
      for (const c of changes) {
        if (c.type === 'select') {
          sel = sel || new Set(selection.edges);
          if (c.selected) sel.add(c.id);
          else sel.delete(c.id);
        }
      }
      if (sel) onSelect({ nodes: selection.nodes, edges: sel });
    },
    [onSelect, selection],
  );

  const onDrop = useCallback(
    (e) => {
      const kind = e.dataTransfer.getData(DRAG_TYPE);
      if (!kind || !onDropKind) return;
      e.preventDefault();
      onDropKind(kind, screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    },
    [onDropKind, screenToFlowPosition],
  );

  // The same elements every render: a drag's frames leave them alone.
  const chrome = useMemo(
    () => (
      <>
        <Dots />
        <MiniMap pannable zoomable style={MINIMAP_STYLE} ariaLabel="Mini map" nodeColor={minimapColour} />
        <Controls aria-label="Zoom controls" />
      </>
    ),
    [],
  );

  return (
    <div className="fm-canvas" aria-label={ariaLabel || 'Workflow canvas'} role="region">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={readOnly ? undefined : (c) => onConnect({ from: c.source, to: c.target, handle: c.sourceHandle })}
        onDelete={readOnly ? undefined : ({ nodes: ns, edges: es }) => onDelete(ns.map((n) => n.id), es.map((x) => x.id))}
        onNodeClick={onNodeClick}
        onDragOver={(e) => {
          if (!readOnly) {
            e.preventDefault();
            e.dataTransfer.dropEffect = 'copy';
          }
        }}
        onDrop={onDrop}
        nodesDraggable={!readOnly}
        nodesConnectable={!readOnly}
        deleteKeyCode={readOnly ? null : ['Delete', 'Backspace']}
        fitView
        fitViewOptions={FIT}
        minZoom={0.1}
      >
        {chrome}
      </ReactFlow>
    </div>
  );
}
