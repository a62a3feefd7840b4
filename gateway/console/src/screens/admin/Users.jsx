import { useState } from 'react';
import { atLeast, del, get, post } from '../../api.js';
import { ConfirmButton, CopyButton, ErrorText, RoleSelect, fmtTime, useLoad, onlyFor } from '../common.jsx';

function InviteForm({ me, onInvited }) {
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('viewer');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const inv = await post('/v1/invitations', { email: email.trim(), role });
      setEmail('');
      onInvited(inv);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="panel inline-form" onSubmit={submit} aria-label="Invite a user">
      <label>
        Email <input type="email" aria-label="Invitee email" required value={email} onChange={(e) => setEmail(e.target.value)} />
      </label>
      <label>
        Role <RoleSelect label="Invitee role" value={role} onChange={setRole} max={me.role} />
      </label>
      <button type="submit" className="primary" disabled={busy}>
        Invite
      </button>
      <ErrorText error={error} />
    </form>
  );
}

function Users({ me }) {
  const users = useLoad(() => get('/v1/users').then((r) => r.items), []);
  const [invited, setInvited] = useState([]);
  const [error, setError] = useState(null);

  const remove = async (u) => {
    setError(null);
    try {
      await del(`/v1/users/${encodeURIComponent(u.id)}`);
    } catch (err) {
      setError(err);
    }
    users.reload();
  };
  const link = (inv) => `${location.origin}/accept?token=${encodeURIComponent(inv.token)}`;

  return (
    <section>
      <h1>Users</h1>
      <InviteForm me={me} onInvited={(inv) => setInvited((l) => [inv, ...l])} />
      {invited.length > 0 && (
        <div className="panel once" aria-label="Invitations made">
          <h2>Invitations</h2>
          <p className="muted">Send each link to the person invited; it is shown only now.</p>
          <ul className="invitations">
            {invited.map((inv) => (
              <li key={inv.id}>
                <strong>{inv.email}</strong> as {inv.role}, until {fmtTime(inv.expires_at)}
                <br />
                <input className="mono token" readOnly size={70} value={link(inv)} aria-label={`Invitation link for ${inv.email}`} onFocus={(e) => e.target.select()} />{' '}
                <CopyButton text={link(inv)} label={`Copy invitation link for ${inv.email}`} />
              </li>
            ))}
          </ul>
        </div>
      )}
      <ErrorText error={error} />
      <ErrorText error={users.error} />
      <h2>Members</h2>
      <p className="muted">To change a member's role, remove them and invite them again with the new role.</p>
      <table aria-label="Members">
        <thead>
          <tr>
            <th>Email</th>
            <th>Role</th>
            <th>Joined</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {users.data?.map((u) => {
            const self = me.actor === `user:${u.id}`;
            return (
              <tr key={u.id}>
                <td>
                  {u.email}
                  {self && <span className="muted"> (you)</span>}
                </td>
                <td>{u.role}</td>
                <td>{fmtTime(u.created_at)}</td>
                <td>{!self && (u.role !== 'owner' || atLeast(me, 'owner')) && <ConfirmButton label="Remove" what={u.email} onConfirm={() => remove(u)} />}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

export default onlyFor('admin', Users);
