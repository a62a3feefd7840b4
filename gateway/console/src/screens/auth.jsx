// What the sign-in, registration and invitation screens share.
import { useState } from 'react';
import { signIn } from '../api.js';
import { ErrorText } from './common.jsx';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Signs in; `wanted` names a tenant by id, slug or name (optional). When
 * the account belongs to several tenants and `wanted` names none of them,
 * throws an error whose `tenants` lists them for the user to choose.
 */
export async function signInTo({ email, password }, wanted) {
  const w = (wanted || '').trim();
  try {
    return await signIn({ email, password, tenant: UUID.test(w) ? w : undefined });
  } catch (e) {
    const tenants = e.status === 409 && e.details && Array.isArray(e.details.tenants) ? e.details.tenants : null;
    if (!tenants) throw e;
    const low = w.toLowerCase();
    const hit = low && tenants.find((t) => t.slug === low || String(t.name || '').toLowerCase() === low || t.id === w);
    if (hit) return signIn({ email, password, tenant: hit.id });
    const choose = new Error(w ? `No tenant "${w}" for this account: choose one.` : 'This account belongs to several tenants: choose one.');
    choose.tenants = tenants;
    throw choose;
  }
}

/** The tenants to choose from after a 409, as buttons. */
export function TenantChoice({ tenants, onChoose, busy }) {
  return (
    <fieldset className="tenant-choice">
      <legend>Choose a tenant</legend>
      <ul>
        {tenants.map((t) => (
          <li key={t.id}>
            <button type="button" disabled={busy} onClick={() => onChoose(t)} aria-label={`Sign in to ${t.slug}`}>
              {t.name && t.name !== t.slug ? `${t.name} (${t.slug})` : t.slug}
            </button>{' '}
            <span className="muted">{t.role}</span>
          </li>
        ))}
      </ul>
    </fieldset>
  );
}

/** A labelled input of the auth forms. */
export function Field({ id, label, ...rest }) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} {...rest} />
    </div>
  );
}

/** The frame of a signed-out screen, with an error and tenant choice below the form. */
export function AuthFrame({ title, children, error, tenants, onChoose, busy, footer }) {
  return (
    <section className="auth">
      <h1>{title}</h1>
      {children}
      <ErrorText error={error} />
      {tenants && <TenantChoice tenants={tenants} onChoose={onChoose} busy={busy} />}
      {footer}
    </section>
  );
}

/** State and handlers for a signed-out form ending in a sign-in. */
export function useAuthFlow(onSignedIn) {
  const [error, setError] = useState(null);
  const [tenants, setTenants] = useState(null);
  const [busy, setBusy] = useState(false);
  const [creds, setCreds] = useState(null);
  const run = async (steps, c, wanted) => {
    setBusy(true);
    setError(null);
    setTenants(null);
    try {
      await steps();
      setCreds(c);
      const me = await signInTo(c, wanted);
      onSignedIn(me);
    } catch (e) {
      setError(e);
      if (e.tenants) setTenants(e.tenants);
    } finally {
      setBusy(false);
    }
  };
  const choose = (t) => run(async () => {}, creds, t.id);
  return { error, tenants, busy, run, choose };
}
