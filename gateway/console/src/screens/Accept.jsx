import { useState } from 'react';
import { post } from '../api.js';
import { Link } from '../router.jsx';
import { AuthFrame, Field, useAuthFlow } from './auth.jsx';

export default function Accept({ query, onSignedIn }) {
  const token = query?.get('token') || '';
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const flow = useAuthFlow(onSignedIn);
  const submit = (e) => {
    e.preventDefault();
    const c = { email: email.trim(), password };
    flow.run(() => post('/v1/auth/accept', { token, password }), c);
  };
  if (!token) {
    return (
      <AuthFrame title="Accept an invitation">
        <p className="error" role="alert">
          This link has no invitation token. Open the link you were sent, or <Link to="/login">sign in</Link>.
        </p>
      </AuthFrame>
    );
  }
  return (
    <AuthFrame title="Accept an invitation" {...flow} onChoose={flow.choose}>
      <p>Enter the email the invitation was sent to and a password: yours if the email already has an account, else a new one (at least 10 characters).</p>
      <form onSubmit={submit} aria-label="Accept the invitation">
        <Field id="acc-email" label="Email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />
        <Field id="acc-password" label="Password" type="password" autoComplete="new-password" required minLength={10} value={password} onChange={(e) => setPassword(e.target.value)} />
        <button type="submit" className="primary" disabled={flow.busy}>
          Accept and sign in
        </button>
      </form>
    </AuthFrame>
  );
}
