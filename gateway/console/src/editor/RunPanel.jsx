// Starts a test run of the loaded version, or a run of the published one.
import { useState } from 'react';
import { post } from '../api.js';
import { navigate } from '../router.jsx';
import { jsonErrorAt } from './diff.js';

export default function RunPanel({ workflowId, version, published, dirty, onClose }) {
  const [text, setText] = useState('{\n  \n}');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const start = async (which) => {
    let input;
    try {
      input = text.trim() ? JSON.parse(text) : {};
    } catch (e) {
      const at = jsonErrorAt(text, e);
      setError(`input: line ${at.line}, column ${at.column}: ${at.message}`);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const started =
        which === 'test'
          ? await post(`/v1/workflows/${workflowId}/versions/${version}/executions`, { input })
          : await post(`/v1/workflows/${workflowId}/executions`, input);
      navigate(`/executions/${started.execution_id}`);
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  };
  return (
    <section className="fm-runpanel" aria-label="Run">
      <header className="fm-panel-head">
        <h2>Run</h2>
        <button type="button" onClick={onClose} aria-label="Close run panel">
          Close
        </button>
      </header>
      <label htmlFor="fm-run-input">Input (JSON, becomes trigger.body)</label>
      <textarea id="fm-run-input" className="mono" rows={8} value={text} onChange={(e) => setText(e.target.value)} />
      {dirty && <p className="muted">Unsaved changes are not part of a run: save first.</p>}
      <div className="fm-row">
        <button type="button" className="primary" disabled={busy} onClick={() => start('test')} aria-label="Test run this version">
          Test run v{version}
        </button>
        <button type="button" disabled={busy || !published} onClick={() => start('published')} aria-label="Run published version">
          Run published{published ? ` (v${published})` : ''}
        </button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
