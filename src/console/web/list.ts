/// <reference lib="dom" />
/** The workspaces table: live (polled every 1.5 s), filtered, with a create dialog and bulk stop/delete. */
import { h } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { api, message, type Json } from './api.ts';
import { Action, BASE, Dialog, ErrorLine, Link, StatusBadge, navigate, timeLeft, useInterval } from './ui.ts';

export const LIST_POLL_MS = 1500;

function CreateDialog(props: { onClose: () => void }) {
  const [images, setImages] = useState<string[]>([]);
  const [form, setForm] = useState({ name: '', image: 'debian-12', mode: 'temporary', ttl: '1h', cpus: '1', memory_mb: '512', internet: true });
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  useInterval(() => {
    if (images.length) return;
    api('GET', '/workspace/images').then((r) => setImages(((r.images ?? r.data ?? []) as Json[]).map((i) => String(i.name ?? i.id ?? i.image)).filter(Boolean))).catch(() => undefined);
  }, 60_000);
  const set = (k: keyof typeof form) => (e: Event) => {
    const t = e.target as HTMLInputElement;
    setForm({ ...form, [k]: t.type === 'checkbox' ? t.checked : t.value });
  };
  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setErr('');
    try {
      const config: Json = { cpus: Number(form.cpus), memory_mb: Number(form.memory_mb) };
      if (form.mode === 'temporary' && form.ttl) config.ttl = form.ttl;
      const body: Json = { image: form.image, mode: form.mode, config };
      if (form.name) body.name = form.name;
      if (!form.internet) config.allow_internet = false;
      const ws = await api('POST', '/workspace', body);
      props.onClose();
      const id = ws.id ?? ws.workspace?.id;
      if (id) navigate(`${BASE}/w/${id}`);
    } catch (e) {
      setErr(message(e));
    } finally {
      setBusy(false);
    }
  };
  return h(Dialog, { title: 'Create a workspace', onClose: props.onClose },
    h('form', { onSubmit: submit, class: 'grid-form' },
      h('label', null, 'Name', h('input', { value: form.name, onInput: set('name'), placeholder: 'optional' })),
      h('label', null, 'Image', images.length
        ? h('select', { value: form.image, onChange: set('image') }, images.map((i) => h('option', { value: i }, i)))
        : h('input', { value: form.image, onInput: set('image'), required: true })),
      h('label', null, 'Mode', h('select', { value: form.mode, onChange: set('mode') }, h('option', { value: 'temporary' }, 'temporary'), h('option', { value: 'permanent' }, 'permanent'))),
      form.mode === 'temporary' ? h('label', null, 'TTL', h('input', { value: form.ttl, onInput: set('ttl'), placeholder: '30m, 2h, 1d' })) : null,
      h('label', null, 'CPUs', h('input', { type: 'number', min: '1', max: '64', value: form.cpus, onInput: set('cpus') })),
      h('label', null, 'Memory (MB)', h('input', { type: 'number', min: '64', step: '64', value: form.memory_mb, onInput: set('memory_mb') })),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: form.internet, onChange: set('internet') }), 'Internet access'),
      h(ErrorLine, { error: err }),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', onClick: props.onClose }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary', disabled: busy }, busy ? 'Creating…' : 'Create'))));
}

export function WorkspaceList() {
  const [rows, setRows] = useState<Json[] | null>(null);
  const [err, setErr] = useState('');
  const [query, setQuery] = useState('');
  const [status, setStatus] = useState('');
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [creating, setCreating] = useState(false);
  const [now, setNow] = useState(Date.now());

  const load = () => api('GET', '/workspace?limit=500').then((r) => {
    setRows((r.workspaces ?? r.data ?? []) as Json[]);
    setErr('');
    setNow(Date.now());
  }).catch((e) => setErr(message(e)));
  useInterval(load, LIST_POLL_MS);

  const shown = useMemo(() => (rows ?? []).filter((w) => {
    if (status && w.status !== status) return false;
    if (!query) return true;
    const q = query.toLowerCase();
    return [w.id, w.name, w.image, w.namespace, w.ip].some((v) => typeof v === 'string' && v.toLowerCase().includes(q));
  }), [rows, query, status]);
  const statuses = useMemo(() => [...new Set((rows ?? []).map((w) => String(w.status)))].sort(), [rows]);

  const toggle = (id: string) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const bulk = async (verb: 'stop' | 'delete') => {
    const ids = [...selected];
    const results = await Promise.allSettled(ids.map((id) => (verb === 'delete' ? api('DELETE', `/workspace/${id}`) : api('POST', `/workspace/${id}/stop`, {}))));
    const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    setSelected(new Set());
    await load();
    if (failed.length) throw new Error(`${failed.length} of ${ids.length} failed: ${message(failed[0]!.reason)}`);
  };

  return h('section', { 'aria-labelledby': 'ws-title' },
    h('div', { class: 'toolbar' },
      h('h1', { id: 'ws-title' }, 'Workspaces'),
      h('input', { type: 'search', placeholder: 'Search name, id, image, namespace, IP', 'aria-label': 'Search workspaces', value: query, onInput: (e: Event) => setQuery((e.target as HTMLInputElement).value) }),
      h('select', { 'aria-label': 'Filter by status', value: status, onChange: (e: Event) => setStatus((e.target as HTMLSelectElement).value) },
        h('option', { value: '' }, 'All statuses'), statuses.map((s) => h('option', { value: s }, s))),
      h('button', { type: 'button', class: 'primary', onClick: () => setCreating(true) }, 'Create workspace'),
      selected.size ? [
        h(Action, { label: `Stop ${selected.size}`, run: () => bulk('stop') }),
        h(Action, { label: `Delete ${selected.size}`, kind: 'danger', confirm: `Delete ${selected.size} workspaces? This cannot be undone.`, run: () => bulk('delete') }),
      ] : null),
    h(ErrorLine, { error: err }),
    rows === null ? h('p', { class: 'muted' }, 'Loading…') : h('div', { class: 'table-wrap' },
      h('table', { class: 'workspaces', 'data-count': String(shown.length) },
        h('thead', null, h('tr', null,
          h('th', null, h('input', { type: 'checkbox', 'aria-label': 'Select all', checked: shown.length > 0 && shown.every((w) => selected.has(w.id)), onChange: (e: Event) => setSelected((e.target as HTMLInputElement).checked ? new Set(shown.map((w) => String(w.id))) : new Set()) })),
          ['Name', 'Status', 'Image', 'Mode', 'TTL left', 'IP', 'Resources', 'Namespace'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, shown.map((w) => h('tr', { key: w.id, 'data-id': w.id },
          h('td', null, h('input', { type: 'checkbox', 'aria-label': `Select ${w.name ?? w.id}`, checked: selected.has(w.id), onChange: () => toggle(w.id) })),
          h('td', null, h(Link, { href: `${BASE}/w/${encodeURIComponent(w.id)}` }, w.name || w.id), h('div', { class: 'muted small' }, w.id)),
          h('td', null, h(StatusBadge, { status: String(w.status) })),
          h('td', null, w.image),
          h('td', null, w.mode),
          h('td', null, w.mode === 'permanent' ? '–' : timeLeft(w.lifecycle?.ttl_expires_at, now)),
          h('td', null, w.ip ?? '–'),
          h('td', null, `${w.resources?.cpus ?? '?'} CPU · ${w.resources?.memory_mb ?? '?'} MB`),
          h('td', null, w.namespace ?? '–')))))),
    rows !== null && shown.length === 0 ? h('p', { class: 'muted' }, rows.length ? 'No workspace matches.' : 'No workspaces yet.') : null,
    creating ? h(CreateDialog, { onClose: () => setCreating(false) }) : null);
}
