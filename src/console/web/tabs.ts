/// <reference lib="dom" />
/** The smaller workspace tabs: workloads and their logs, network rules, public access, SSH, snapshots, metadata, activity. */
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, message, stream, type Json } from './api.ts';
import { Action, ErrorLine, useInterval } from './ui.ts';

const wsPath = (id: string) => `/workspace/${encodeURIComponent(id)}`;

/** Load `path` now and every `ms`; returns the answer, the error and a reload. */
function usePolled(path: string, ms = 3000): [Json | null, string, () => Promise<void>] {
  const [data, setData] = useState<Json | null>(null);
  const [err, setErr] = useState('');
  const load = () => api('GET', path).then((r) => { setData(r); setErr(''); }).catch((e) => setErr(message(e)));
  useInterval(() => void load(), ms, [path]);
  return [data, err, load];
}

export function WorkloadsTab(props: { id: string; running: boolean }) {
  const [data, err, reload] = usePolled(`${wsPath(props.id)}/workloads`);
  const [watching, setWatching] = useState<string | null>(null);
  const [lines, setLines] = useState<string[]>([]);
  const logBox = useRef<HTMLPreElement>(null);
  useEffect(() => {
    if (!watching || !props.running) return;
    setLines([]);
    return stream(`${wsPath(props.id)}/workloads/${encodeURIComponent(watching)}/logs/stream?tail_lines=200`, (e) => {
      const text = typeof e.line === 'string' ? e.line : typeof e.data === 'string' ? e.data : typeof e.message === 'string' ? e.message : null;
      if (text !== null) setLines((prev) => [...prev, text].slice(-2000));
    });
  }, [watching, props.running]);
  useEffect(() => { logBox.current?.scrollTo(0, logBox.current.scrollHeight); }, [lines]);
  const list = (data?.workloads ?? data?.data ?? []) as Json[];
  return h('div', null, h(ErrorLine, { error: err }),
    list.length === 0 ? h('p', { class: 'muted' }, 'No workloads. Create them with the SDK (workloads.create) or in config.workloads.') : h('table', null,
      h('thead', null, h('tr', null, ['Name', 'Status', 'Command', ''].map((t) => h('th', null, t)))),
      h('tbody', null, list.map((w) => {
        const wid = String(w.id ?? w.name);
        return h('tr', { key: wid },
          h('td', null, w.name ?? wid), h('td', null, w.status ?? w.state ?? '–'), h('td', null, h('code', null, Array.isArray(w.cmd) ? w.cmd.join(' ') : String(w.cmd ?? w.command ?? ''))),
          h('td', null, h('button', { type: 'button', onClick: () => setWatching(wid) }, 'Logs'),
            h(Action, { label: 'Restart', run: async () => { await api('POST', `${wsPath(props.id)}/workloads/${encodeURIComponent(wid)}/restart`, {}); await reload(); } })));
      }))),
    watching ? h('div', null, h('h3', null, `Logs of ${watching}`), h('pre', { class: 'logs', ref: logBox, 'aria-live': 'polite' }, lines.join('\n'))) : null);
}

export function NetworkTab(props: { id: string }) {
  const [data, err, reload] = usePolled(`${wsPath(props.id)}/network`, 10_000);
  const [draft, setDraft] = useState<string | null>(null);
  const current = data ? JSON.stringify({ allow_internet: data.allow_internet ?? data.network?.allow_internet, ingress: data.ingress ?? data.network?.ingress, egress: data.egress ?? data.network?.egress, ingress_ports: data.ingress_ports ?? data.network?.ingress_ports }, null, 2) : '';
  return h('div', null, h(ErrorLine, { error: err }),
    h('p', { class: 'muted' }, 'The workspace firewall: internet access, and the addresses and ports allowed in and out. Edit as JSON and apply.'),
    h('textarea', { class: 'json', 'aria-label': 'Network rules', spellcheck: false, value: draft ?? current, onInput: (e: Event) => setDraft((e.target as HTMLTextAreaElement).value) }),
    h('div', { class: 'buttons' }, h(Action, {
      label: 'Apply', kind: 'primary', disabled: draft === null,
      run: async () => {
        let body: Json;
        try {
          body = JSON.parse(draft ?? '{}') as Json;
        } catch {
          throw new Error('the rules are not valid JSON');
        }
        await api('PATCH', `${wsPath(props.id)}/network`, body);
        setDraft(null);
        await reload();
      },
    }), draft !== null ? h('button', { type: 'button', onClick: () => setDraft(null) }, 'Discard') : null));
}

export function PublicAccessTab(props: { id: string }) {
  const [data, err, reload] = usePolled(`${wsPath(props.id)}/public-access`);
  const [port, setPort] = useState('3000');
  const [slug, setSlug] = useState('');
  const [formErr, setFormErr] = useState('');
  const ports = (data?.ports ?? []) as Json[];
  const expose = async (ev: Event) => {
    ev.preventDefault();
    setFormErr('');
    try {
      await api('POST', `${wsPath(props.id)}/public-access`, { port: Number(port), ...(slug ? { slug } : {}) });
      await reload();
    } catch (e) {
      setFormErr(message(e));
    }
  };
  return h('div', null, h(ErrorLine, { error: err }),
    h('form', { class: 'toolbar', onSubmit: expose, 'aria-label': 'Expose a port' },
      h('label', null, 'Port ', h('input', { type: 'number', min: '1', max: '65535', value: port, onInput: (e: Event) => setPort((e.target as HTMLInputElement).value), required: true })),
      h('label', null, 'Slug ', h('input', { value: slug, placeholder: 'optional', onInput: (e: Event) => setSlug((e.target as HTMLInputElement).value) })),
      h('button', { type: 'submit', class: 'primary' }, 'Expose')),
    h(ErrorLine, { error: formErr }),
    ports.length === 0 ? h('p', { class: 'muted' }, 'No port is exposed.') : h('table', { class: 'ports' },
      h('thead', null, h('tr', null, ['Port', 'URL', ''].map((t) => h('th', null, t)))),
      h('tbody', null, ports.map((p) => h('tr', { key: p.port, 'data-port': String(p.port) },
        h('td', null, String(p.port)),
        h('td', null, h('a', { href: p.url, target: '_blank', rel: 'noopener noreferrer', class: 'public-url' }, p.url)),
        h('td', null, h(Action, { label: 'Revoke', kind: 'danger', run: async () => { await api('DELETE', `${wsPath(props.id)}/public-access/${p.port}`); await reload(); } })))))));
}

export function SshTab(props: { id: string }) {
  const [data, err, reload] = usePolled(`${wsPath(props.id)}/ssh`, 10_000);
  const [key, setKey] = useState('');
  const [secret, setSecret] = useState('');
  const s = data ?? {};
  return h('div', null, h(ErrorLine, { error: err }),
    s.supported === false ? h('p', { class: 'muted' }, 'The SSH gateway is off on this hearthd.') : null,
    h('p', null, 'SSH is ', h('strong', null, s.ssh_enabled ? 'enabled' : 'disabled'), s.auth_methods?.length ? ` (${s.auth_methods.join(', ')})` : ''),
    h('div', { class: 'buttons' },
      s.ssh_enabled
        ? h(Action, { label: 'Disable SSH', run: async () => { await api('POST', `${wsPath(props.id)}/ssh/disable`, {}); await reload(); } })
        : h(Action, { label: 'Enable SSH', kind: 'primary', run: async () => { const r = await api('POST', `${wsPath(props.id)}/ssh/enable`, {}); if (r.password) setSecret(String(r.password)); await reload(); } }),
      h(Action, { label: 'New password', run: async () => { const r = await api('POST', `${wsPath(props.id)}/ssh/password`, {}); setSecret(String(r.password ?? '')); await reload(); } })),
    secret ? h('p', null, 'Password (shown once): ', h('code', null, secret)) : null,
    s.connection?.command ? h('div', null, h('h3', null, 'Connect'), h('pre', { class: 'copy' }, s.connection.command),
      h('button', { type: 'button', onClick: () => navigator.clipboard?.writeText(String(s.connection.command)).catch(() => undefined) }, 'Copy')) : null,
    h('h3', null, 'Public key'),
    h('textarea', { 'aria-label': 'SSH public key', placeholder: 'ssh-ed25519 AAAA… you@laptop', value: key, onInput: (e: Event) => setKey((e.target as HTMLTextAreaElement).value) }),
    h(Action, { label: 'Set key', disabled: !key.trim(), run: async () => { await api('POST', `${wsPath(props.id)}/ssh/key`, { public_key: key }); setKey(''); await reload(); } }));
}

export function SnapshotsTab(props: { id: string; onChange: () => void }) {
  const [data, err, reload] = usePolled(`${wsPath(props.id)}/snapshots`, 5000);
  const list = (data?.snapshots ?? data?.data ?? []) as Json[];
  return h('div', null, h(ErrorLine, { error: err }),
    h(Action, { label: 'Take a snapshot', kind: 'primary', run: async () => { await api('POST', `${wsPath(props.id)}/snapshot`, {}); await reload(); } }),
    list.length === 0 ? h('p', { class: 'muted' }, 'No snapshots.') : h('table', null,
      h('thead', null, h('tr', null, ['Snapshot', 'Created', 'Size', ''].map((t) => h('th', null, t)))),
      h('tbody', null, list.map((s) => h('tr', { key: s.id },
        h('td', null, s.name ?? s.id), h('td', null, s.created_at ?? '–'), h('td', null, s.size_bytes ? `${Math.round(Number(s.size_bytes) / 1048576)} MB` : '–'),
        h('td', null,
          h(Action, { label: 'Restore', confirm: 'Restore this snapshot? The workspace returns to it.', run: async () => { await api('POST', `${wsPath(props.id)}/restore`, { snapshot_id: s.id }); props.onChange(); } }),
          h(Action, { label: 'Delete', kind: 'danger', run: async () => { await api('DELETE', `${wsPath(props.id)}/snapshots/${encodeURIComponent(String(s.id))}`); await reload(); } })))))));
}

export function MetadataTab(props: { id: string }) {
  const [data, err, reload] = usePolled(`${wsPath(props.id)}/metadata`, 10_000);
  const [draft, setDraft] = useState<string | null>(null);
  return h('div', null, h(ErrorLine, { error: err }),
    h('textarea', { class: 'json', 'aria-label': 'Metadata', spellcheck: false, value: draft ?? JSON.stringify(data?.metadata ?? {}, null, 2), onInput: (e: Event) => setDraft((e.target as HTMLTextAreaElement).value) }),
    h(Action, {
      label: 'Save metadata', kind: 'primary', disabled: draft === null,
      run: async () => {
        let metadata: unknown;
        try {
          metadata = JSON.parse(draft ?? '{}');
        } catch {
          throw new Error('metadata is not valid JSON');
        }
        await api('PUT', `${wsPath(props.id)}/metadata`, { metadata });
        setDraft(null);
        await reload();
      },
    }));
}

export function ActivityTab(props: { ws: Json }) {
  const ns = props.ws.namespace as string | null;
  const [data, setData] = useState<Json[] | null>(null);
  const [err, setErr] = useState('');
  useInterval(() => {
    if (!ns) return;
    api('GET', `/namespaces/${encodeURIComponent(ns)}/activity?limit=200`).then((r) => setData(((r.data ?? []) as Json[]).filter((a) => !a.workspace_id || a.workspace_id === props.ws.id))).catch((e) => setErr(message(e)));
  }, 5000, [ns]);
  if (!ns) return h('p', { class: 'muted' }, 'Activity is recorded per namespace; this workspace is in none. Its lifecycle: created ', String(props.ws.created_at), ', last change ', String(props.ws.updated_at), '.');
  return h('div', null, h(ErrorLine, { error: err }), !data ? h('p', { class: 'muted' }, 'Loading…') : h('table', null,
    h('thead', null, h('tr', null, ['When', 'What', 'Details'].map((t) => h('th', null, t)))),
    h('tbody', null, data.map((a, i) => h('tr', { key: i }, h('td', null, a.created_at ?? a.at ?? '–'), h('td', null, a.action ?? a.type ?? '–'), h('td', null, h('code', null, JSON.stringify(a.details ?? a.data ?? {}))))))));
}
