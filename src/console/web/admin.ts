/// <reference lib="dom" />
/** Namespaces (limits, quotas, usage over time) and keys and tokens (create with grants, revoke). */
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { api, message, type Json } from './api.ts';
import { Action, ErrorLine, useInterval } from './ui.ts';

function UsageChart(props: { slug: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [err, setErr] = useState('');
  useEffect(() => {
    let plot: uPlot | null = null;
    api('GET', `/namespaces/${encodeURIComponent(props.slug)}/usage?days=30`).then((r) => {
      const daily = (r.data?.daily ?? []) as Json[];
      const xs = daily.map((d) => Date.parse(String(d.start ?? d.date ?? d.at)) / 1000);
      const ys = daily.map((d) => Number(d.cpu_seconds ?? d.cpu_hours ?? d.credits ?? d.seconds ?? 0));
      plot = new uPlot({ width: Math.min(700, (host.current?.clientWidth ?? 600)), height: 140, series: [{}, { label: 'usage', stroke: '#e8590c', width: 2 }], scales: { x: { time: true } } }, [xs, ys], host.current!);
    }).catch((e) => setErr(message(e)));
    return () => plot?.destroy();
  }, [props.slug]);
  return h('div', null, h(ErrorLine, { error: err }), h('div', { ref: host, class: 'chart' }));
}

export function NamespacesPage(props: { me: { admin: boolean; namespace: string | null } }) {
  const [list, setList] = useState<Json[] | null>(null);
  const [err, setErr] = useState('');
  const [open, setOpen] = useState<string | null>(null);
  const [name, setName] = useState('');
  const load = () => api('GET', '/namespaces?limit=200').then((r) => setList((r.data ?? r.namespaces ?? []) as Json[])).catch((e) => setErr(message(e)));
  useInterval(load, 5000);
  return h('section', null,
    h('div', { class: 'toolbar' }, h('h1', null, 'Namespaces'),
      props.me.namespace === null ? h('form', { class: 'inline', onSubmit: (e: Event) => { e.preventDefault(); api('POST', '/namespaces', { name }).then(() => { setName(''); return load(); }).catch((x) => setErr(message(x))); } },
        h('input', { 'aria-label': 'New namespace name', placeholder: 'new namespace', value: name, onInput: (e: Event) => setName((e.target as HTMLInputElement).value), required: true }),
        h('button', { type: 'submit' }, 'Create')) : null),
    h(ErrorLine, { error: err }),
    !list ? h('p', { class: 'muted' }, 'Loading…') : h('table', null,
      h('thead', null, h('tr', null, ['Namespace', 'Status', 'Limits', 'Quotas', ''].map((t) => h('th', null, t)))),
      h('tbody', null, list.map((n) => [
        h('tr', { key: n.id },
          h('td', null, n.name ?? n.slug, h('div', { class: 'muted small' }, n.slug)),
          h('td', null, n.status ?? '–'),
          h('td', null, h('code', null, JSON.stringify(n.limits ?? n.resource_limits ?? {}))),
          h('td', null, h('code', null, JSON.stringify(n.quotas ?? n.quota ?? {}))),
          h('td', null, h('button', { type: 'button', onClick: () => setOpen(open === n.slug ? null : String(n.slug)) }, open === n.slug ? 'Hide usage' : 'Usage'),
            n.status === 'suspended'
              ? h(Action, { label: 'Activate', run: async () => { await api('POST', `/namespaces/${n.slug}/activate`, {}); await load(); } })
              : h(Action, { label: 'Suspend', run: async () => { await api('POST', `/namespaces/${n.slug}/suspend`, {}); await load(); } }))),
        open === n.slug ? h('tr', { key: `${n.id}-usage` }, h('td', { colSpan: 5 }, h(UsageChart, { slug: String(n.slug) }))) : null,
      ]))));
}

const GRANTS = ['create', 'destroy', 'runtime', 'expose', 'manage'] as const;

export function KeysPage() {
  const [keys, setKeys] = useState<Json[] | null>(null);
  const [err, setErr] = useState('');
  const [made, setMade] = useState<Json | null>(null);
  const [form, setForm] = useState({ name: '', namespace: '', admin: false });
  const [tok, setTok] = useState<{ scope: string; target: string; ttl: string; grants: Record<string, boolean> }>({ scope: 'namespace', target: '', ttl: '3600', grants: { create: true, destroy: false, runtime: true, expose: false, manage: true } });
  const [revoke, setRevoke] = useState('');
  const load = () => api('GET', '/keys').then((r) => setKeys((r.keys ?? r.data ?? []) as Json[])).catch((e) => setErr(message(e)));
  useInterval(load, 10_000);
  return h('section', null, h('h1', null, 'Keys & tokens'), h(ErrorLine, { error: err }),
    made ? h('div', { class: 'notice', role: 'status' }, h('strong', null, 'Shown once — copy it now: '), h('pre', { class: 'copy' }, JSON.stringify(made, null, 2)), h('button', { type: 'button', onClick: () => setMade(null) }, 'Done')) : null,
    h('h2', null, 'API keys'),
    h('form', { class: 'toolbar', onSubmit: (e: Event) => { e.preventDefault(); api('POST', '/keys', { name: form.name || 'console key', ...(form.namespace ? { namespace: form.namespace } : {}), admin: form.admin }).then((r) => { setMade({ clientId: r.clientId, clientSecret: r.clientSecret }); return load(); }).catch((x) => setErr(message(x))); } },
      h('input', { 'aria-label': 'Key name', placeholder: 'name', value: form.name, onInput: (e: Event) => setForm({ ...form, name: (e.target as HTMLInputElement).value }) }),
      h('input', { 'aria-label': 'Key namespace', placeholder: 'namespace (empty: account)', value: form.namespace, onInput: (e: Event) => setForm({ ...form, namespace: (e.target as HTMLInputElement).value }) }),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: form.admin, onChange: (e: Event) => setForm({ ...form, admin: (e.target as HTMLInputElement).checked }) }), 'admin'),
      h('button', { type: 'submit', class: 'primary' }, 'Create key')),
    !keys ? null : h('table', null,
      h('thead', null, h('tr', null, ['Client ID', 'Name', 'Namespace', 'Admin', 'Created', ''].map((t) => h('th', null, t)))),
      h('tbody', null, keys.map((k) => h('tr', { key: k.client_id },
        h('td', null, h('code', null, k.client_id)), h('td', null, k.name), h('td', null, k.namespace ?? '–'), h('td', null, k.is_admin ? 'yes' : ''), h('td', null, k.created_at),
        h('td', null, k.revoked_at ? 'revoked' : h(Action, { label: 'Revoke', kind: 'danger', confirm: `Revoke ${k.client_id}? Everything it signed stops working.`, run: async () => { await api('DELETE', `/keys/${encodeURIComponent(k.client_id)}`); await load(); } })))))),
    h('h2', null, 'Scoped tokens'),
    h('form', { class: 'grid-form', onSubmit: (e: Event) => {
      e.preventDefault();
      const body: Json = { scope: tok.scope, ttl: Number(tok.ttl), permissions: tok.grants };
      body[tok.scope === 'namespace' ? 'namespace' : 'workspaceId'] = tok.target;
      api('POST', '/tokens', body).then((r) => setMade({ token: r.token, expiresAt: r.expiresAt, permissions: r.permissions })).catch((x) => setErr(message(x)));
    } },
    h('label', null, 'Scope', h('select', { value: tok.scope, onChange: (e: Event) => setTok({ ...tok, scope: (e.target as HTMLSelectElement).value }) }, h('option', { value: 'namespace' }, 'namespace'), h('option', { value: 'workspace' }, 'workspace'))),
    h('label', null, tok.scope === 'namespace' ? 'Namespace' : 'Workspace ID', h('input', { value: tok.target, required: true, onInput: (e: Event) => setTok({ ...tok, target: (e.target as HTMLInputElement).value }) })),
    h('label', null, 'TTL (seconds)', h('input', { type: 'number', min: '60', value: tok.ttl, onInput: (e: Event) => setTok({ ...tok, ttl: (e.target as HTMLInputElement).value }) })),
    h('fieldset', null, h('legend', null, 'Grants'), GRANTS.map((g) => h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: tok.grants[g], onChange: (e: Event) => setTok({ ...tok, grants: { ...tok.grants, [g]: (e.target as HTMLInputElement).checked } }) }), g))),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Mint token'))),
    h('form', { class: 'toolbar', onSubmit: (e: Event) => { e.preventDefault(); api('POST', '/tokens/revoke', { token: revoke }).then((r) => { setRevoke(''); setMade({ revoked: r.revoked, reason: r.reason }); }).catch((x) => setErr(message(x))); } },
      h('input', { 'aria-label': 'Token to revoke', placeholder: 'paste a token to revoke it', value: revoke, onInput: (e: Event) => setRevoke((e.target as HTMLInputElement).value), required: true }),
      h('button', { type: 'submit', class: 'danger' }, 'Revoke token')));
}
