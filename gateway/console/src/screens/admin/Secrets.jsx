import { useState } from 'react';
import { del, get, put } from '../../api.js';
import { ConfirmButton, ErrorText, fmtTime, useLoad, onlyFor } from '../common.jsx';

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** A value typed to set a secret; never shown back. */
function ValueForm({ name, onDone, onCancel, label }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await put(`/v1/secrets/${encodeURIComponent(name)}`, { value });
      setValue('');
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label={`${label} ${name}`}>
      <label>
        New value{' '}
        <input type="password" autoComplete="off" required maxLength={65536} value={value} onChange={(e) => setValue(e.target.value)} aria-label={`New value of ${name}`} autoFocus />
      </label>
      <button type="submit" className="primary" disabled={busy}>
        {label}
      </button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      <ErrorText error={error} />
    </form>
  );
}

function Secrets() {
  const secrets = useLoad(() => get('/v1/secrets').then((r) => r.items), []);
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [replacing, setReplacing] = useState(null);
  const [error, setError] = useState(null);
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);

  const add = async (e) => {
    e.preventDefault();
    setError(null);
    setNote('');
    if (!NAME.test(name)) {
      setError(new Error('A secret name has 1 to 128 letters, digits, "_", "-" or "."'));
      return;
    }
    setBusy(true);
    try {
      const r = await put(`/v1/secrets/${encodeURIComponent(name)}`, { value });
      setNote(r.created ? `Secret ${r.name} set.` : `Secret ${r.name} replaced.`);
      setName('');
      setValue('');
      secrets.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const remove = async (s) => {
    setError(null);
    setNote('');
    try {
      await del(`/v1/secrets/${encodeURIComponent(s.name)}`);
      setNote(`Secret ${s.name} deleted.`);
    } catch (err) {
      setError(err);
    }
    secrets.reload();
  };

  return (
    <section>
      <h1>Secrets</h1>
      <p className="muted">Values are write-only: workflows read them as <code>secrets.NAME</code>; the console never shows them.</p>
      <form className="panel inline-form" onSubmit={add} aria-label="Set a secret">
        <label>
          Name <input aria-label="Secret name" required maxLength={128} value={name} onChange={(e) => setName(e.target.value)} placeholder="SLACK_TOKEN" />
        </label>
        <label>
          Value <input aria-label="Secret value" type="password" autoComplete="off" required maxLength={65536} value={value} onChange={(e) => setValue(e.target.value)} />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          Set secret
        </button>
      </form>
      <ErrorText error={error} />
      <p role="status" className="ok">
        {note}
      </p>
      <ErrorText error={secrets.error} />
      <table aria-label="Secrets">
        <thead>
          <tr>
            <th>Name</th>
            <th>Created</th>
            <th>Updated</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {secrets.data?.map((s) => (
            <tr key={s.name}>
              <td className="mono">{s.name}</td>
              <td>{fmtTime(s.created_at)}</td>
              <td>{fmtTime(s.updated_at)}</td>
              <td>
                {replacing === s.name ? (
                  <ValueForm
                    name={s.name}
                    label="Replace"
                    onCancel={() => setReplacing(null)}
                    onDone={() => {
                      setReplacing(null);
                      setNote(`Secret ${s.name} replaced.`);
                      secrets.reload();
                    }}
                  />
                ) : (
                  <>
                    <button type="button" onClick={() => setReplacing(s.name)} aria-label={`Replace ${s.name}`}>
                      Replace
                    </button>{' '}
                    <ConfirmButton label="Delete" what={`secret ${s.name}`} onConfirm={() => remove(s)} />
                  </>
                )}
              </td>
            </tr>
          ))}
          {secrets.data && secrets.data.length === 0 && (
            <tr>
              <td colSpan={4} className="muted">
                No secrets.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}

export default onlyFor('admin', Secrets);
