// The document being edited, with undo and redo.
import { useCallback, useRef, useState } from 'react';

const LIMIT = 200;

export function useDocHistory() {
  const [doc, setDoc] = useState(null);
  const current = useRef(null);
  const past = useRef([]);
  const future = useRef([]);
  const [, setTick] = useState(0);

  const set = (next) => {
    current.current = next;
    setDoc(next);
    setTick((t) => t + 1);
  };

  /** Changes the document; `record: false` keeps it out of the history (a drag's frames). */
  const change = useCallback((f, { record = true } = {}) => {
    const prev = current.current;
    const next = typeof f === 'function' ? f(prev) : f;
    if (next === prev || !next) return;
    if (record) {
      past.current.push(prev);
      if (past.current.length > LIMIT) past.current.shift();
      future.current = [];
    }
    set(next);
  }, []);

  /** Marks the present as a point to undo back to (before a drag). */
  const checkpoint = useCallback(() => {
    past.current.push(current.current);
    if (past.current.length > LIMIT) past.current.shift();
    future.current = [];
    setTick((t) => t + 1);
  }, []);

  const undo = useCallback(() => {
    if (!past.current.length) return;
    future.current.push(current.current);
    set(past.current.pop());
  }, []);

  const redo = useCallback(() => {
    if (!future.current.length) return;
    past.current.push(current.current);
    set(future.current.pop());
  }, []);

  /** Starts over from a document (a load): no history. */
  const reset = useCallback((d) => {
    past.current = [];
    future.current = [];
    set(d);
  }, []);

  return { doc, change, checkpoint, undo, redo, reset, canUndo: past.current.length > 0, canRedo: future.current.length > 0, current };
}
