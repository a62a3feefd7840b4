// The editor's keyboard: undo and redo, copy and paste of nodes.
import { useEffect } from 'react';
import { freshId } from './doc.js';

const typing = (t) => t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));

export function useEditorKeys({ readOnly, doc, selection, undo, redo, clipboard, change, setSelection, onDelete }) {
  useEffect(() => {
    if (readOnly) return undefined;
    const onKey = (e) => {
      if (typing(e.target)) return;
      const mod = e.ctrlKey || e.metaKey;
      const k = e.key.toLowerCase();
      if (mod && k === 'z') {
        e.preventDefault();
        if (e.shiftKey) redo();
        else undo();
      } else if (mod && k === 'y') {
        e.preventDefault();
        redo();
      } else if (mod && k === 'c' && selection.nodes.size) {
        const ids = selection.nodes;
        clipboard.current = {
          nodes: doc.nodes.filter((n) => ids.has(n.id)),
          edges: (doc.edges || []).filter((x) => ids.has(x.from) && ids.has(x.to)),
        };
      } else if (mod && k === 'v' && clipboard.current) {
        e.preventDefault();
        const taken = new Set(doc.nodes.map((n) => n.id));
        const rename = new Map();
        const nodes = clipboard.current.nodes.map((n) => {
          const stem = n.id.replace(/_\d+$/, '');
          const id = freshId(stem, taken);
          taken.add(id);
          rename.set(n.id, id);
          const ui = n.ui ? { x: n.ui.x + 40, y: n.ui.y + 40 } : undefined;
          return { ...structuredClone(n), id, ui };
        });
        const edges = clipboard.current.edges.map((x) => ({ ...x, from: rename.get(x.from), to: rename.get(x.to) }));
        change((d) => ({ ...d, nodes: [...d.nodes, ...nodes], edges: [...(d.edges || []), ...edges] }));
        setSelection({ nodes: new Set(nodes.map((n) => n.id)), edges: new Set() });
        // A second paste lands further along.
        clipboard.current = { nodes: nodes, edges };
      } else if ((e.key === 'Delete' || e.key === 'Backspace') && !e.target.closest?.('.react-flow')) {
        if (selection.nodes.size || selection.edges.size) onDelete([...selection.nodes], [...selection.edges]);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [readOnly, doc, selection, undo, redo, clipboard, change, setSelection, onDelete]);
}
