import { useState } from 'react';
import { post } from '../api.js';
import { Link } from '../router.jsx';
import { AuthFrame, Field, useAuthFlow } from './auth.jsx';

export default function Register({ onSignedIn }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [tenant, setTenant] = useState('');
  const flow = useAuthFlow(onSignedIn);
  const submit = (e) => {
    e.preventDefault();
    const c = { email: email.trim(), password };
    flow.run(() => post('/v1/auth/register', { ...c, tenant: tenant.trim() }), c, tenant.trim());
  };
  return (
    <AuthFrame
      title="Register a tenant"
      {...flow}
      onChoose={flow.choose}
      footer={
        <p>
          Have an account? <Link to="/login">Sign in</Link>.
        </p>
      }
    >
      <form onSubmit={submit} aria-label="Register">
        <Field id="reg-email" label="Email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />
        <Field id="reg-password" label="Password" type="password" autoComplete="new-password" required minLength={10} value={password} onChange={(e) => setPassword(e.target.value)} aria-describedby="reg-password-hint" />
        <p id="reg-password-hint" className="hint">At least 10 characters.</p>
        <Field id="reg-tenant" label="Tenant slug" required maxLength={100} value={tenant} onChange={(e) => setTenant(e.target.value)} placeholder="acme" />
        <button type="submit" className="primary" disabled={flow.busy}>
          Register
        </button>
      </form>
    </AuthFrame>
  );
}
