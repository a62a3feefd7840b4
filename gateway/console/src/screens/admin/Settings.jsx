import { useEffect, useState } from 'react';
import { get, put } from '../../api.js';
import { ErrorText, useLoad, onlyFor } from '../common.jsx';

/** A duration as the engine writes it back ("30days") in the form it is typed in ("30d"). */
const short = (d) => String(d ?? '').replace(/^(\d+)\s*(ms|s|m|h|d)\w*$/, (_, n, u) => n + u).replace(/^(\d+)\s*min\w*$/, '$1m');

function DataSettings() {
  const current = useLoad(() => get('/v1/settings'), []);
  const [retention, setRetention] = useState('');
  const [cap, setCap] = useState('');
  const [error, setError] = useState(null);
  const [note, setNote] = useState('');
  const [touched, setTouched] = useState(false);
  useEffect(() => {
    if (!current.data || touched) return;
    setRetention(short(current.data.retention));
    setCap(String(current.data.max_output_bytes ?? ''));
  }, [current.data, touched]);
  const save = async (body) => {
    setError(null);
    setNote('');
    try {
      const s = await put('/v1/settings', body);
      setRetention(short(s.retention));
      setCap(String(s.max_output_bytes ?? ''));
      setNote('Saved.');
    } catch (err) {
      setError(err);
    }
  };
  const submit = (e) => {
    e.preventDefault();
    save({ retention: short(retention.trim()), max_output_bytes: Number(cap) });
  };
  return (
    <form className="panel settings" onSubmit={submit} aria-label="Data settings">
      <h2>Data</h2>
      <ErrorText error={current.error} />
      <div className="field">
        <label htmlFor="set-retention">Retention of finished executions</label>
        <input id="set-retention" required value={retention} onChange={(e) => (setTouched(true), setRetention(e.target.value))} aria-describedby="set-retention-d" />
        <p className="hint" id="set-retention-d">
          Such as 30d, 12h or 90m; at most 3650d.
        </p>
      </div>
      <div className="field">
        <label htmlFor="set-cap">Output cap (bytes per node)</label>
        <input id="set-cap" type="number" min={1024} required value={cap} onChange={(e) => (setTouched(true), setCap(e.target.value))} aria-describedby="set-cap-d" />
        <p className="hint" id="set-cap-d">
          Largest output of one node; at least 1024.
        </p>
      </div>
      <ErrorText error={error} />
      <p role="status" className="ok">
        {note}
      </p>
      <div className="actions">
        <button type="submit" className="primary">
          Save data settings
        </button>
        <button type="button" onClick={() => save({ retention: null, max_output_bytes: null })}>
          Reset to defaults
        </button>
      </div>
    </form>
  );
}

function ModelSettings() {
  const current = useLoad(() => get('/v1/settings/llm'), []);
  const secrets = useLoad(() => get('/v1/secrets').then((r) => r.items), []);
  const [form, setForm] = useState({ base_url: '', model: '', api_key_secret: '' });
  const [error, setError] = useState(null);
  const [note, setNote] = useState('');
  useEffect(() => {
    if (current.data) setForm({ base_url: current.data.base_url || '', model: current.data.model || '', api_key_secret: current.data.api_key_secret || '' });
  }, [current.data]);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setNote('');
    const body = {};
    for (const [k, v] of Object.entries(form)) body[k] = v.trim() ? v.trim() : null;
    try {
      const s = await put('/v1/settings/llm', body);
      setForm({ base_url: s.base_url || '', model: s.model || '', api_key_secret: s.api_key_secret || '' });
      setNote('Saved.');
    } catch (err) {
      setError(err);
    }
  };
  const set = (k) => (e) => setForm((f) => ({ ...f, [k]: e.target.value }));
  return (
    <form className="panel settings" onSubmit={submit} aria-label="Language model settings">
      <h2>Language model</h2>
      <p className="muted">An OpenAI-compatible endpoint for the llm nodes and for generating workflows. Empty fields take the instance's.</p>
      <ErrorText error={current.error} />
      <div className="field">
        <label htmlFor="llm-url">Endpoint URL</label>
        <input id="llm-url" type="url" placeholder="https://api.openai.com/v1" value={form.base_url} onChange={set('base_url')} />
      </div>
      <div className="field">
        <label htmlFor="llm-model">Model</label>
        <input id="llm-model" maxLength={200} value={form.model} onChange={set('model')} />
      </div>
      <div className="field">
        <label htmlFor="llm-secret">API key secret</label>
        <select id="llm-secret" value={form.api_key_secret} onChange={set('api_key_secret')}>
          <option value="">None (the instance's)</option>
          {form.api_key_secret && !(secrets.data || []).some((s) => s.name === form.api_key_secret) && <option value={form.api_key_secret}>{form.api_key_secret}</option>}
          {(secrets.data || []).map((s) => (
            <option key={s.name} value={s.name}>
              {s.name}
            </option>
          ))}
        </select>
      </div>
      <ErrorText error={error} />
      <p role="status" className="ok">
        {note}
      </p>
      <div className="actions">
        <button type="submit" className="primary">
          Save model settings
        </button>
      </div>
    </form>
  );
}

function Settings() {
  return (
    <section>
      <h1>Settings</h1>
      <div className="two-col">
        <DataSettings />
        <ModelSettings />
      </div>
    </section>
  );
}

export default onlyFor('admin', Settings);
