// Pieces the console's screens share: error text, formatting, loading.
import { useCallback, useEffect, useRef, useState } from 'react';
import { atLeast } from '../api.js';

/** An error as plain text: the API's message, then each problem it lists. */
export function errorText(e) {
  if (!e) return '';
  let text = e.message || String(e);
  if (e.status) text = `${e.status}: ${text}`;
  const d = e.details;
  const problems = Array.isArray(d) ? d : d && Array.isArray(d.problems) ? d.problems : d && Array.isArray(d.errors) ? d.errors : null;
  if (problems && problems.length) {
    text += '\n' + problems.map((p) => (typeof p === 'string' ? p : `${p.path ? p.path + ': ' : ''}${p.message || JSON.stringify(p)}`)).join('\n');
  }
  return text;
}

/** An error shown as text (never markup), announced to screen readers. */
export function ErrorText({ error }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {errorText(error)}
    </p>
  );
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  if (isNaN(d)) return '—';
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function fmtPercent(x) {
  if (x === null || x === undefined || !isFinite(x)) return '—';
  return `${(x * 100).toFixed(x === 1 || x === 0 ? 0 : 1)}%`;
}

export const fmtNumber = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString());

/** A `datetime-local` value as milliseconds since the epoch (local time), or undefined. */
export function localToMs(value) {
  if (!value) return undefined;
  const ms = new Date(value).getTime();
  return isNaN(ms) ? undefined : ms;
}

/**
 * Loads with `fn` (async, answers the data) when `deps` change; answers
 * {data, error, loading, reload}. A reload keeps the data shown meanwhile.
 */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const seq = useRef(0);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(fn, deps);
  const reload = useCallback(() => {
    const n = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    run().then(
      (data) => n === seq.current && setState({ data, error: null, loading: false }),
      (error) => n === seq.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
  }, [run]);
  useEffect(() => {
    reload();
  }, [reload]);
  return { ...state, reload };
}

/** A button copying `text` to the clipboard, saying when it did. */
export function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('Copied');
    } catch {
      setDone('Copy failed: select the text and copy it');
    }
  };
  return (
    <>
      <button type="button" onClick={copy} aria-label={label}>
        Copy
      </button>
      <span className="muted" role="status">
        {done}
      </span>
    </>
  );
}

/** A status word, coloured by the stylesheet. */
export function Status({ status }) {
  if (!status) return <span className="muted">—</span>;
  return <span className={`status status-${status}`}>{status.replace('_', ' ')}</span>;
}

/** Calls `f` at most once per `ms` after the last call. */
export function debounce(f, ms) {
  let t = null;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => f(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

export const ROLE_CHOICES = ['viewer', 'operator', 'editor', 'admin', 'owner'];

/** A select of roles no higher than `max` (the caller's own). */
export function RoleSelect({ value, onChange, max = 'owner', label = 'Role', id }) {
  const allowed = ROLE_CHOICES.slice(0, ROLE_CHOICES.indexOf(max) + 1);
  return (
    <select id={id} aria-label={label} value={value} onChange={(e) => onChange(e.target.value)}>
      {allowed.map((r) => (
        <option key={r} value={r}>
          {r}
        </option>
      ))}
    </select>
  );
}

/**
 * A button that asks before acting: the first press shows "Confirm" and
 * "Cancel" in its place (focus moves to Confirm).
 */
export function ConfirmButton({ label, what, onConfirm, disabled }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking) {
    return (
      <button type="button" className="danger" disabled={disabled} onClick={() => setAsking(true)} aria-label={`${label} ${what}`}>
        {label}
      </button>
    );
  }
  const go = async () => {
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      setBusy(false);
      setAsking(false);
    }
  };
  return (
    <span className="confirm" role="group" aria-label={`Confirm: ${label.toLowerCase()} ${what}`} onKeyDown={(e) => e.key === 'Escape' && setAsking(false)}>
      <span>{label} {what}?</span>{' '}
      <button type="button" className="danger" autoFocus disabled={busy} onClick={go} aria-label={`Confirm ${label.toLowerCase()} ${what}`}>
        Confirm
      </button>{' '}
      <button type="button" onClick={() => setAsking(false)} aria-label="Cancel">
        Cancel
      </button>
    </span>
  );
}

const ROLE_PLURAL = { operator: 'operators', editor: 'editors', admin: 'admins', owner: 'owners' };

/** Wraps a screen so that only `role` and above see it; others are told so. */
export function onlyFor(role, Screen) {
  return function Guarded(props) {
    if (!atLeast(props.me, role)) {
      return (
        <section>
          <h1>Not available</h1>
          <p>This page is for {ROLE_PLURAL[role]} and above; you are signed in as {props.me?.role}.</p>
        </section>
      );
    }
    return <Screen {...props} />;
  };
}

/** `value`, once it has stayed the same for `ms`. */
export function useDebounced(value, ms = 250) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return settled;
}

/** Previous and next over a listing's cursors (`cursors`: those of the pages before this one, and this one's). */
export function Pager({ cursors, setCursors, next }) {
  return (
    <div className="pager">
      <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))} aria-label="Previous page">
        Previous
      </button>
      <span className="muted">Page {cursors.length + 1}</span>
      <button type="button" disabled={!next} onClick={() => setCursors((c) => [...c, next])} aria-label="Next page">
        Next
      </button>
    </div>
  );
}
