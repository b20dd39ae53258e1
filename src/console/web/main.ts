/// <reference lib="dom" />
/**
 * The console's entry: who is signed in, and which page the path names.
 *   /console/                      workspaces
 *   /console/w/<id>[/<tab>]        one workspace
 *   /console/namespaces, /console/keys
 *   /console/link/<token>          a one-time sign-in link
 */
import '@xterm/xterm/css/xterm.css';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { h, render, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, message, request, setCsrf, whenSignedOut, type Json } from './api.ts';
import { BASE, Link, navigate, usePath } from './ui.ts';
import { WorkspaceList } from './list.ts';
import { WorkspacePage } from './workspace.ts';
import { NamespacesPage, KeysPage } from './admin.ts';

interface Me {
  client_id: string;
  admin: boolean;
  namespace: string | null;
}

function SignIn(props: { onSignedIn: (me: Json) => void }) {
  const [id, setId] = useState('');
  const [secret, setSecret] = useState('');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setErr('');
    try {
      props.onSignedIn(await request('POST', `${BASE}/session`, { client_id: id, client_secret: secret }));
    } catch (e) {
      setErr(e instanceof ApiError && e.status === 401 ? `Sign-in refused: ${e.message}.` : message(e));
    } finally {
      setBusy(false);
    }
  };
  return h('main', { class: 'signin' },
    h('form', { onSubmit: submit, 'aria-label': 'Sign in' },
      h('h1', null, 'Hearth'),
      h('p', { class: 'muted' }, 'Sign in with an API key, or run ', h('code', null, 'hearth console-link'), ' on the server.'),
      h('label', null, 'Client ID', h('input', { name: 'client_id', autocomplete: 'username', value: id, onInput: (e: Event) => setId((e.target as HTMLInputElement).value), required: true })),
      h('label', null, 'Client secret', h('input', { name: 'client_secret', type: 'password', autocomplete: 'current-password', value: secret, onInput: (e: Event) => setSecret((e.target as HTMLInputElement).value), required: true })),
      err ? h('p', { class: 'error', role: 'alert' }, err) : null,
      h('button', { type: 'submit', class: 'primary', disabled: busy }, busy ? 'Signing in…' : 'Sign in')));
}

function LinkSignIn(props: { token: string; onSignedIn: (me: Json) => void }) {
  const [err, setErr] = useState('');
  useEffect(() => {
    request('POST', `${BASE}/link`, { token: props.token })
      .then((me) => { navigate(`${BASE}/`, true); props.onSignedIn(me); })
      .catch((e) => setErr(message(e)));
  }, [props.token]);
  return h('main', { class: 'signin' }, h('div', null, h('h1', null, 'Hearth'),
    err ? [h('p', { class: 'error', role: 'alert' }, err), h(Link, { href: `${BASE}/` }, 'Sign in with an API key')] : h('p', null, 'Signing in…')));
}

function Shell(props: { me: Me; onSignOut: () => void; children?: ComponentChildren; path: string }) {
  const nav = (href: string, label: string) => h(Link, { href, ...(props.path === href || (href !== `${BASE}/` && props.path.startsWith(href)) ? { 'aria-current': 'page' } : {}) }, label);
  return h('div', { class: 'shell' },
    h('header', null,
      h(Link, { href: `${BASE}/`, class: 'brand' }, 'Hearth'),
      h('nav', { 'aria-label': 'Main' }, nav(`${BASE}/`, 'Workspaces'), nav(`${BASE}/namespaces`, 'Namespaces'), props.me.admin ? nav(`${BASE}/keys`, 'Keys & tokens') : null),
      h('span', { class: 'who', title: props.me.namespace ? `namespace ${props.me.namespace}` : 'account key' }, props.me.client_id),
      h('button', { type: 'button', onClick: props.onSignOut }, 'Sign out')),
    h('main', null, props.children));
}

function App() {
  const path = usePath();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [fatal, setFatal] = useState('');
  useEffect(() => {
    whenSignedOut(() => setMe(null));
    // A sign-in link makes its own session: asking now would race it and could answer "nobody" last.
    if (/^\/console\/link\//.test(location.pathname)) return;
    request('GET', `${BASE}/session`).then((s) => {
      if (s.signed_in === false) return setMe(null);
      setCsrf(String(s.csrf));
      setMe(s as unknown as Me);
    }).catch((e) => (e instanceof ApiError && e.status === 401 ? setMe(null) : setFatal(message(e))));
  }, []);
  const signedIn = (s: Json) => {
    setCsrf(String(s.csrf));
    setMe(s as unknown as Me);
  };
  const signOut = async () => {
    await request('DELETE', `${BASE}/session`).catch(() => undefined);
    setCsrf('');
    setMe(null);
    navigate(`${BASE}/`);
  };

  const link = /^\/console\/link\/([^/]+)$/.exec(path);
  if (link) return h(LinkSignIn, { token: decodeURIComponent(link[1]!), onSignedIn: signedIn });
  if (fatal) return h('main', { class: 'signin' }, h('p', { class: 'error', role: 'alert' }, fatal));
  if (me === undefined) return h('main', { class: 'signin' }, h('p', { class: 'muted' }, 'Loading…'));
  if (me === null) return h(SignIn, { onSignedIn: signedIn });

  let page;
  const ws = /^\/console\/w\/([^/]+)(?:\/([a-z-]+))?\/?$/.exec(path);
  if (ws) page = h(WorkspacePage, { id: decodeURIComponent(ws[1]!), tab: ws[2] ?? 'overview', key: ws[1] });
  else if (path.startsWith(`${BASE}/namespaces`)) page = h(NamespacesPage, { me });
  else if (path.startsWith(`${BASE}/keys`)) page = h(KeysPage, null);
  else page = h(WorkspaceList, null);
  return h(Shell, { me, onSignOut: signOut, path }, page);
}

render(h(App, null), document.getElementById('app')!);
