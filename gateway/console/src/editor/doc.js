// The workflow document and the canvas: conversions, layout, ids, and
// where the engine's problems point.
import dagre from '@dagrejs/dagre';

export const NODE_W = 180;
export const NODE_H = 64;

/** Kinds whose config holds a body of nodes run as a loop. */
export const LOOP_KINDS = new Set(['for_each', 'while']);

/** The named outputs a node leaves from; [] for a single unnamed one. */
export function outputsOf(node) {
  if (!node) return [];
  const config = node.config || {};
  if (node.kind === 'if_else') return ['true', 'false'];
  if (node.kind === 'switch') {
    const cases = Array.isArray(config.cases) ? config.cases : config.cases && typeof config.cases === 'object' ? Object.keys(config.cases) : [];
    const names = cases.map((c) => (typeof c === 'string' ? c : c && (c.name ?? c.output ?? c.case))).filter(Boolean);
    return [...names.map(String), 'default'];
  }
  if (node.on_error === 'route' || (node.on_error && node.on_error.route !== undefined) || node.on_error?.mode === 'route') {
    return ['success', 'error'];
  }
  return [];
}

/** The handle an edge leaves from, given the source node. */
export function handleOf(node, when) {
  const outs = outputsOf(node);
  if (!outs.length) return null;
  if (when && outs.includes(when)) return when;
  if (!when && outs.includes('success')) return 'success';
  return when || outs[0];
}

export const edgeId = (e) => `${e.from}->${e.to}${e.when ? ':' + e.when : ''}`;

/** Lays the nodes out left to right with dagre; answers id -> {x, y}. */
export function layout(nodes, edges) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 40, ranksep: 80, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: NODE_W, height: heightOf(n) });
  for (const e of edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to);
  dagre.layout(g);
  const out = {};
  for (const n of nodes) {
    const p = g.node(n.id);
    out[n.id] = { x: Math.round(p.x - NODE_W / 2), y: Math.round(p.y - heightOf(n) / 2) };
  }
  return out;
}

/** A loop node shows its body inside it: taller. */
export function heightOf(node) {
  const body = bodyOf(node);
  return body ? NODE_H + 22 * Math.min(body.nodes.length, 8) + 10 : NODE_H;
}

export function bodyOf(node) {
  if (!LOOP_KINDS.has(node.kind)) return null;
  const body = node.config && node.config.body;
  if (!body || !Array.isArray(body.nodes)) return { nodes: [], edges: [] };
  return { nodes: body.nodes, edges: Array.isArray(body.edges) ? body.edges : [] };
}

/** Gives every node a position: auto-layout when any lacks one (or `force`). */
export function withPositions(doc, force = false) {
  const missing = doc.nodes.some((n) => !n.ui || !Number.isFinite(n.ui.x) || !Number.isFinite(n.ui.y));
  if (!missing && !force) return doc;
  const pos = layout(doc.nodes, doc.edges || []);
  return { ...doc, nodes: doc.nodes.map((n) => ({ ...n, ui: pos[n.id] })) };
}

/** A fresh readable id: the kind's name and the first free number. */
export function freshId(base, taken) {
  const stem = String(base).replace(/[^A-Za-z0-9_]/g, '_') || 'node';
  for (let i = 1; ; i++) {
    const id = `${stem}_${i}`;
    if (!taken.has(id)) return id;
  }
}

/** Ids of the nodes upstream of `id` (its ancestors along edges). */
export function upstreamOf(doc, id) {
  const into = new Map();
  for (const e of doc.edges || []) {
    if (!into.has(e.to)) into.set(e.to, []);
    into.get(e.to).push(e.from);
  }
  const seen = new Set();
  const stack = [...(into.get(id) || [])];
  while (stack.length) {
    const n = stack.pop();
    if (seen.has(n) || n === id) continue;
    seen.add(n);
    stack.push(...(into.get(n) || []));
  }
  return [...seen];
}

/** Renames a node, and every edge that names it. */
export function renameNode(doc, from, to) {
  return {
    ...doc,
    nodes: doc.nodes.map((n) => (n.id === from ? { ...n, id: to } : n)),
    edges: (doc.edges || []).map((e) => ({ ...e, from: e.from === from ? to : e.from, to: e.to === from ? to : e.to })),
  };
}

/** Removes nodes (by id) and edges (by edge id), and the edges of removed nodes. */
export function removeItems(doc, nodeIds, edgeIds) {
  const gone = new Set(nodeIds);
  const goneEdges = new Set(edgeIds);
  return {
    ...doc,
    nodes: doc.nodes.filter((n) => !gone.has(n.id)),
    edges: (doc.edges || []).filter((e) => !gone.has(e.from) && !gone.has(e.to) && !goneEdges.has(edgeId(e))),
  };
}

/** Adds an edge unless the same one is there. */
export function addEdge(doc, edge) {
  const e = { from: edge.from, to: edge.to, ...(edge.when ? { when: edge.when } : {}) };
  if (e.from === e.to) return doc;
  if ((doc.edges || []).some((x) => edgeId(x) === edgeId(e))) return doc;
  return { ...doc, edges: [...(doc.edges || []), e] };
}

/**
 * Splits a problem's JSON path (`nodes[3].config.url` or `/nodes/3/config/url`)
 * into segments.
 */
export function pathSegments(path) {
  if (!path) return [];
  if (path.startsWith('/')) return path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const out = [];
  const re = /([^.[\]]+)|\[(\d+)\]|\["([^"]*)"\]/g;
  let m;
  while ((m = re.exec(path))) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/**
 * Where a problem points: `{node, field}` (node id, and the config field
 * path after `config`, dotted) or `{}` for the document as a whole.
 */
export function locate(doc, path) {
  const seg = pathSegments(path);
  if (seg[0] !== 'nodes' || seg.length < 2) return { field: seg.join('.') };
  const node = doc.nodes[Number(seg[1])];
  if (!node) return { field: seg.join('.') };
  const rest = seg.slice(2);
  if (rest[0] === 'config') return { node: node.id, field: rest.slice(1).join('.'), top: 'config' };
  return { node: node.id, field: rest.join('.'), top: rest[0] };
}

/** The problems of a 422, each with where it points. */
export function problemsOf(doc, err) {
  const details = Array.isArray(err.details) ? err.details : err.details && Array.isArray(err.details.problems) ? err.details.problems : [];
  if (!details.length) return [{ path: '', message: err.message }];
  return details.map((d) => ({ ...d, ...locate(doc, d.path || '') }));
}

/** The document as it is sent: positions rounded to whole pixels. */
export function cleanDoc(doc) {
  return {
    ...doc,
    nodes: doc.nodes.map((n) => (n.ui ? { ...n, ui: { x: Math.round(n.ui.x), y: Math.round(n.ui.y) } } : n)),
  };
}
