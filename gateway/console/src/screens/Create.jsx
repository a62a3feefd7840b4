import { useState } from 'react';
import { get, post } from '../api.js';
import { navigate } from '../router.jsx';
import { ErrorText, errorText, onlyFor, useLoad } from './common.jsx';

/** A template parameter's value as typed, in its JSON type; undefined when left empty. */
function parameterValue(p, raw) {
  if (p.type === 'boolean') return !!raw;
  if (raw === '' || raw === undefined) return undefined;
  if (p.type === 'number') return Number(raw);
  return raw;
}

function initialValues(t) {
  const v = {};
  for (const p of t.parameters) v[p.name] = p.default !== undefined ? (p.type === 'boolean' ? !!p.default : String(p.default)) : p.type === 'boolean' ? false : '';
  return v;
}

function TemplateForm({ template, onCancel }) {
  const [values, setValues] = useState(() => initialValues(template));
  const [name, setName] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const parameters = {};
    for (const p of template.parameters) {
      const v = parameterValue(p, values[p.name]);
      if (v !== undefined) parameters[p.name] = v;
    }
    try {
      const w = await post(`/v1/templates/${encodeURIComponent(template.id)}/instantiate`, { parameters, ...(name.trim() ? { name: name.trim() } : {}) });
      navigate(`/workflows/${w.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  const id = (p) => `tp-${template.id}-${p.name}`;
  return (
    <form className="panel template-form" onSubmit={submit} aria-label={`Parameters of ${template.name}`}>
      <h2>{template.name}</h2>
      <p>{template.description}</p>
      <div className="field">
        <label htmlFor={`tp-${template.id}-name`}>Workflow name (optional)</label>
        <input id={`tp-${template.id}-name`} value={name} maxLength={200} placeholder={template.name} onChange={(e) => setName(e.target.value)} />
      </div>
      {template.parameters.map((p) => (
        <div className="field" key={p.name}>
          {p.type === 'boolean' ? (
            <label className="check">
              <input type="checkbox" id={id(p)} checked={!!values[p.name]} onChange={(e) => setValues((v) => ({ ...v, [p.name]: e.target.checked }))} aria-describedby={`${id(p)}-d`} />
              {p.name}
            </label>
          ) : (
            <>
              <label htmlFor={id(p)}>
                {p.name}
                {p.required ? ' (required)' : ''}
              </label>
              <input
                id={id(p)}
                type={p.type === 'number' ? 'number' : p.type === 'url' ? 'url' : 'text'}
                step={p.type === 'number' ? 'any' : undefined}
                required={p.required}
                value={values[p.name]}
                onChange={(e) => setValues((v) => ({ ...v, [p.name]: e.target.value }))}
                aria-describedby={`${id(p)}-d`}
              />
            </>
          )}
          <p className="hint" id={`${id(p)}-d`}>
            {p.description}
          </p>
        </div>
      ))}
      <ErrorText error={error} />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          Create draft
        </button>
        <button type="button" onClick={onCancel}>
          Back to the templates
        </button>
      </div>
    </form>
  );
}

function Describe() {
  const [prompt, setPrompt] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const g = await post('/v1/workflows/generate', { prompt: prompt.trim() });
      navigate(`/workflows/${g.workflow.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <form className="panel" onSubmit={submit} aria-label="Describe a workflow">
      <h2>Describe a workflow</h2>
      <p className="muted">The language model drafts a workflow from your description; you review it in the editor before publishing.</p>
      <label htmlFor="describe">What should it do?</label>
      <textarea id="describe" rows={5} maxLength={4000} required value={prompt} onChange={(e) => setPrompt(e.target.value)} placeholder="When a signup webhook arrives, check the email domain and post to Slack if it is a company address" />
      {error && (
        <div role="alert" className="error">
          <p>{error.status === 422 ? 'No valid workflow came out of that description:' : 'The draft could not be made:'}</p>
          {error.details?.explanation && <p className="explanation">{error.details.explanation}</p>}
          <pre className="problems">{errorText(error)}</pre>
          {error.status === 422 && <p className="muted">Describe the trigger, the steps and the answer more precisely, then try again.</p>}
        </div>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy || !prompt.trim()}>
          {busy ? 'Generating…' : 'Generate draft'}
        </button>
      </div>
    </form>
  );
}

function Create() {
  const templates = useLoad(() => get('/v1/templates').then((r) => r.items), []);
  const [chosen, setChosen] = useState(null);
  const [category, setCategory] = useState('');
  const list = templates.data || [];
  const categories = [...new Set(list.map((t) => t.category))].sort();
  const shown = list.filter((t) => !category || t.category === category);
  return (
    <section className="create">
      <h1>Create a workflow</h1>
      <div className="create-grid">
        <div>
          {chosen ? (
            <TemplateForm template={chosen} onCancel={() => setChosen(null)} />
          ) : (
            <>
              <div className="heading">
                <h2>From a template</h2>
                <label>
                  Category{' '}
                  <select aria-label="Category" value={category} onChange={(e) => setCategory(e.target.value)}>
                    <option value="">All</option>
                    {categories.map((c) => (
                      <option key={c} value={c}>
                        {c}
                      </option>
                    ))}
                  </select>
                </label>
              </div>
              <ErrorText error={templates.error} />
              {templates.loading && !templates.data && <p className="loading">Loading…</p>}
              <ul className="gallery" aria-label="Templates">
                {shown.map((t) => (
                  <li key={t.id} className="card">
                    <h3>{t.name}</h3>
                    <p className="muted">{t.category}</p>
                    <p>{t.description}</p>
                    <button type="button" onClick={() => setChosen(t)} aria-label={`Use template ${t.name}`}>
                      Use this template
                    </button>
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
        <Describe />
      </div>
    </section>
  );
}

export default onlyFor('editor', Create);
