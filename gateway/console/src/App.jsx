import { lazy, Suspense, useEffect, useState } from 'react';
import { atLeast, onSessionLost, signOut, whoAmI } from './api.js';
import { Link, match, navigate, useLocation } from './router.jsx';
import Login from './screens/Login.jsx';
import Register from './screens/Register.jsx';
import Accept from './screens/Accept.jsx';
import Dashboard from './screens/Dashboard.jsx';

// Screens past the first are loaded when opened: the first screen stays small.
const Editor = lazy(() => import('./editor/Editor.jsx'));
const Run = lazy(() => import('./run/Run.jsx'));
const Executions = lazy(() => import('./screens/Executions.jsx'));
const Create = lazy(() => import('./screens/Create.jsx'));
const Keys = lazy(() => import('./screens/admin/Keys.jsx'));
const Users = lazy(() => import('./screens/admin/Users.jsx'));
const Secrets = lazy(() => import('./screens/admin/Secrets.jsx'));
const Settings = lazy(() => import('./screens/admin/Settings.jsx'));
const Usage = lazy(() => import('./screens/admin/Usage.jsx'));
const Audit = lazy(() => import('./screens/admin/Audit.jsx'));

/** Screens reached without a session. */
const OPEN = [
  ['/login', Login],
  ['/register', Register],
  ['/accept', Accept],
];

/** Screens of a signed-in user: pattern, component, the role the nav shows it to. */
const SIGNED_IN = [
  ['/', Dashboard, 'viewer'],
  ['/workflows/:id', Editor, 'viewer'],
  ['/executions', Executions, 'viewer'],
  ['/executions/:id', Run, 'viewer'],
  ['/create', Create, 'editor'],
  ['/admin/keys', Keys, 'admin'],
  ['/admin/users', Users, 'admin'],
  ['/admin/secrets', Secrets, 'admin'],
  ['/admin/settings', Settings, 'admin'],
  ['/admin/usage', Usage, 'viewer'],
  ['/admin/audit', Audit, 'admin'],
];

const NAV = [
  ['/', 'Workflows', 'viewer'],
  ['/executions', 'Executions', 'viewer'],
  ['/create', 'Create', 'editor'],
  ['/admin/usage', 'Usage', 'viewer'],
  ['/admin/keys', 'API keys', 'admin'],
  ['/admin/users', 'Users', 'admin'],
  ['/admin/secrets', 'Secrets', 'admin'],
  ['/admin/settings', 'Settings', 'admin'],
  ['/admin/audit', 'Audit log', 'admin'],
];

export default function App() {
  const { path, query } = useLocation();
  // undefined: not known yet; null: signed out.
  const [me, setMe] = useState(undefined);

  useEffect(() => {
    whoAmI().then(setMe, () => setMe(null));
    return onSessionLost(() => setMe(null));
  }, []);

  if (me === undefined) return <p className="loading">Loading…</p>;

  for (const [pattern, Screen] of OPEN) {
    if (match(pattern, path)) return <Screen query={query} onSignedIn={(who) => { setMe(who); navigate('/', { replace: true }); }} me={me} />;
  }
  if (!me) {
    navigate('/login', { replace: true });
    return null;
  }

  let screen = <NotFound />;
  for (const [pattern, Screen] of SIGNED_IN) {
    const params = match(pattern, path);
    if (params) {
      screen = <Screen me={me} params={params} query={query} />;
      break;
    }
  }

  const out = async () => {
    await signOut().catch(() => {});
    setMe(null);
    navigate('/login', { replace: true });
  };

  return (
    <div className="shell">
      <header className="topbar">
        <Link to="/" className="brand">flowmesh</Link>
        <nav aria-label="Main">
          {NAV.filter(([, , role]) => atLeast(me, role)).map(([to, label]) => (
            <Link key={to} to={to} aria-current={path === to ? 'page' : undefined}>{label}</Link>
          ))}
        </nav>
        <span className="who" title={me.actor}>
          {me.tenant.slug} · {me.role}
        </span>
        <button type="button" onClick={out}>Sign out</button>
      </header>
      <main>
        <Suspense fallback={<p className="loading">Loading…</p>}>{screen}</Suspense>
      </main>
    </div>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing here. <Link to="/">Back to the workflows</Link>.
      </p>
    </section>
  );
}
