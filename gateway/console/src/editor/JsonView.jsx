// The document as JSON text: edited here, applied to the canvas.
import { useState } from 'react';
import { jsonErrorAt } from './diff.js';

export default function JsonView({ doc, readOnly, onApply, onClose }) {
  const [text, setText] = useState(() => JSON.stringify(doc, null, 2));
  const [error, setError] = useState(null);
  const apply = () => {
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      const at = jsonErrorAt(text, e);
      setError(`line ${at.line}, column ${at.column}: ${at.message}`);
      return;
    }
    if (!parsed || typeof parsed !== 'object' || !Array.isArray(parsed.nodes)) {
      setError('a workflow document is an object with a list of `nodes`');
      return;
    }
    if (parsed.nodes.some((n) => !n || typeof n !== 'object' || typeof n.id !== 'string')) {
      setError('every node needs a string `id`');
      return;
    }
    setError(null);
    onApply(parsed);
  };
  return (
    <section className="fm-json" aria-label="JSON view">
      <header className="fm-panel-head">
        <h2>JSON</h2>
        {!readOnly && (
          <button type="button" className="primary" onClick={apply} aria-label="Apply JSON">
            Apply
          </button>
        )}
        <button type="button" onClick={onClose} aria-label="Close JSON view">
          Close
        </button>
      </header>
      <textarea
        className="mono"
        aria-label="Workflow document JSON"
        spellCheck={false}
        wrap="off"
        readOnly={readOnly}
        value={text}
        onChange={(e) => setText(e.target.value)}
      />
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
