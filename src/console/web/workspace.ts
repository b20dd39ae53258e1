/// <reference lib="dom" />
/** One workspace at /console/w/<id>/<tab>: its actions and a tab per concern. */
import { h } from 'preact';
import { useState } from 'preact/hooks';
import { api, message, type Json } from './api.ts';
import { Action, BASE, ErrorLine, Link, StatusBadge, navigate, timeLeft, useInterval } from './ui.ts';
import { TerminalTab } from './terminal.ts';
import { FilesTab } from './files.ts';
import { MetricsTab } from './metrics.ts';
import { ActivityTab, MetadataTab, NetworkTab, PublicAccessTab, SnapshotsTab, SshTab, WorkloadsTab } from './tabs.ts';

export const TABS: [string, string][] = [
  ['overview', 'Overview'], ['terminal', 'Terminal'], ['files', 'Files'], ['workloads', 'Workloads'], ['metrics', 'Metrics'],
  ['network', 'Network'], ['public-access', 'Public access'], ['ssh', 'SSH'], ['snapshots', 'Snapshots'], ['metadata', 'Metadata'], ['activity', 'Activity'],
];

function Overview(props: { ws: Json }) {
  const w = props.ws;
  const row = (k: string, v: unknown) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v === null || v === undefined || v === '' ? '–' : String(v)));
  return h('table', { class: 'kv' }, h('tbody', null,
    row('ID', w.id), row('Name', w.name), row('Status', w.status), row('Image', w.image), row('Mode', w.mode), row('Driver', w.driver),
    row('Namespace', w.namespace), row('IP', w.ip), row('CPUs', w.resources?.cpus), row('Memory', `${w.resources?.memory_mb ?? '?'} MB`),
    row('Disk', w.resources?.disk_size_mb ? `${w.resources.disk_size_mb} MB` : null),
    row('TTL', w.lifecycle?.ttl_human ?? w.lifecycle?.ttl), row('TTL left', w.mode === 'permanent' ? 'permanent' : timeLeft(w.lifecycle?.ttl_expires_at)),
    row('Created', w.created_at), row('Updated', w.updated_at),
    w.provisioning?.error ? row('Provisioning error', JSON.stringify(w.provisioning.error)) : null));
}

export function WorkspacePage(props: { id: string; tab: string }) {
  const [ws, setWs] = useState<Json | null>(null);
  const [err, setErr] = useState('');
  const path = `/workspace/${encodeURIComponent(props.id)}`;
  const load = () => api('GET', path).then((r) => { setWs((r.workspace ?? r) as Json); setErr(''); }).catch((e) => setErr(message(e)));
  useInterval(load, 2000, [props.id]);

  if (!ws) return h('section', null, h(Link, { href: `${BASE}/` }, '← Workspaces'), err ? h(ErrorLine, { error: err }) : h('p', { class: 'muted' }, 'Loading…'));
  const status = String(ws.status);
  const running = status === 'running';
  const act = (verb: string, body: Json = {}) => async () => {
    await api('POST', `${path}/${verb}`, body);
    await load();
  };
  const tab = TABS.some(([k]) => k === props.tab) ? props.tab : 'overview';

  let content;
  if (tab === 'terminal') content = running ? h(TerminalTab, { id: ws.id }) : h('p', { class: 'muted' }, 'The terminal needs the workspace running.');
  else if (tab === 'files') content = running ? h(FilesTab, { id: ws.id }) : h('p', { class: 'muted' }, 'Files are browsable while the workspace runs.');
  else if (tab === 'metrics') content = h(MetricsTab, { id: ws.id, running });
  else if (tab === 'workloads') content = h(WorkloadsTab, { id: ws.id, running });
  else if (tab === 'network') content = h(NetworkTab, { id: ws.id });
  else if (tab === 'public-access') content = h(PublicAccessTab, { id: ws.id });
  else if (tab === 'ssh') content = h(SshTab, { id: ws.id });
  else if (tab === 'snapshots') content = h(SnapshotsTab, { id: ws.id, onChange: load });
  else if (tab === 'metadata') content = h(MetadataTab, { id: ws.id });
  else if (tab === 'activity') content = h(ActivityTab, { ws });
  else content = h(Overview, { ws });

  return h('section', { class: 'workspace', 'aria-labelledby': 'ws-name' },
    h(Link, { href: `${BASE}/` }, '← Workspaces'),
    h('div', { class: 'toolbar' },
      h('h1', { id: 'ws-name' }, ws.name || ws.id), h(StatusBadge, { status }),
      h('div', { class: 'actions' },
        !running && status !== 'paused' ? h(Action, { label: 'Start', run: act('start') }) : null,
        running ? h(Action, { label: 'Stop', run: act('stop') }) : null,
        running ? h(Action, { label: 'Restart', run: act('restart') }) : null,
        running ? h(Action, { label: 'Pause', run: act('pause') }) : null,
        status === 'paused' ? h(Action, { label: 'Resume', run: act('resume') }) : null,
        h(Action, { label: 'Snapshot', run: async () => { await api('POST', `${path}/snapshot`, {}); navigate(`${BASE}/w/${ws.id}/snapshots`); } }),
        ws.mode !== 'permanent' ? h(Action, { label: 'Make permanent', run: async () => { await api('POST', `${path}/lifecycle/permanent`, {}); await load(); } }) : null,
        h(Action, { label: 'Delete', kind: 'danger', confirm: `Delete ${ws.name || ws.id}? Its disk goes with it.`, run: async () => { await api('DELETE', path); navigate(`${BASE}/`); } }))),
    h(ErrorLine, { error: err }),
    h('nav', { class: 'tabs', 'aria-label': 'Workspace' }, TABS.map(([k, label]) => h(Link, { href: `${BASE}/w/${encodeURIComponent(ws.id)}${k === 'overview' ? '' : `/${k}`}`, ...(k === tab ? { 'aria-current': 'page' } : {}) }, label))),
    h('div', { class: 'tab-body' }, content));
}
