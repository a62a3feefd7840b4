import { useState } from 'react';
import { del, get, post } from '../../api.js';
import { ConfirmButton, CopyButton, ErrorText, RoleSelect, fmtTime, useLoad, onlyFor } from '../common.jsx';

function Keys({ me }) {
  const keys = useLoad(() => get('/v1/api-keys').then((r) => r.items), []);
  const [name, setName] = useState('');
  const [role, setRole] = useState('viewer');
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const create = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setCreated(null);
    try {
      setCreated(await post('/v1/api-keys', { name: name.trim(), role }));
      setName('');
      keys.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const revoke = async (k) => {
    setError(null);
    try {
      await del(`/v1/api-keys/${encodeURIComponent(k.id)}`);
      if (created && created.id === k.id) setCreated(null);
    } catch (err) {
      setError(err);
    }
    keys.reload();
  };

  return (
    <section>
      <h1>API keys</h1>
      <form className="panel inline-form" onSubmit={create} aria-label="Create an API key">
        <label>
          Name <input aria-label="Key name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Role <RoleSelect label="Key role" value={role} onChange={setRole} max={me.role} />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          Create key
        </button>
      </form>
      <ErrorText error={error} />
      {created && (
        <div className="panel once" role="status" aria-label="New API key">
          <p>
            <strong>{created.name}</strong> ({created.role}): copy the key now, it is not shown again.
          </p>
          <p>
            <input className="mono token" readOnly value={created.key} aria-label="New key token" size={60} onFocus={(e) => e.target.select()} />{' '}
            <CopyButton text={created.key} label="Copy key" />
          </p>
          <button type="button" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      )}
      <ErrorText error={keys.error} />
      <table aria-label="API keys">
        <thead>
          <tr>
            <th>Name</th>
            <th>Prefix</th>
            <th>Role</th>
            <th>Created</th>
            <th>By</th>
            <th>State</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {keys.data?.map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td>
              <td className="mono">{k.prefix}…</td>
              <td>{k.role}</td>
              <td>{fmtTime(k.created_at)}</td>
              <td className="mono">{k.created_by || '—'}</td>
              <td>{k.revoked_at ? <span className="muted">revoked {fmtTime(k.revoked_at)}</span> : 'active'}</td>
              <td>{!k.revoked_at && <ConfirmButton label="Revoke" what={`key ${k.name}`} onConfirm={() => revoke(k)} />}</td>
            </tr>
          ))}
          {keys.data && keys.data.length === 0 && (
            <tr>
              <td colSpan={7} className="muted">
                No API keys.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}

export default onlyFor('admin', Keys);
