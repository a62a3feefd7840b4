import { useState } from 'react';
import { Link } from '../router.jsx';
import { AuthFrame, Field, useAuthFlow } from './auth.jsx';

export default function Login({ query, onSignedIn }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [tenant, setTenant] = useState(query?.get('tenant') || '');
  const flow = useAuthFlow(onSignedIn);
  const submit = (e) => {
    e.preventDefault();
    flow.run(async () => {}, { email: email.trim(), password }, tenant);
  };
  return (
    <AuthFrame
      title="Sign in to flowmesh"
      {...flow}
      onChoose={flow.choose}
      footer={
        <p>
          No account? <Link to="/register">Register a tenant</Link>.
        </p>
      }
    >
      <form onSubmit={submit} aria-label="Sign in">
        <Field id="login-email" label="Email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />
        <Field id="login-password" label="Password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        <Field id="login-tenant" label="Tenant (optional)" placeholder="slug, when the account has several" value={tenant} onChange={(e) => setTenant(e.target.value)} />
        <button type="submit" className="primary" disabled={flow.busy}>
          Sign in
        </button>
      </form>
    </AuthFrame>
  );
}
