/// <reference lib="dom" />
/** Browse the workspace's files; view and edit small text files; upload and download. */
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { message, runtime, type Json } from './api.ts';
import { Action, ErrorLine, bytes } from './ui.ts';

/** Files up to this size open in the editor; larger ones download. */
const EDIT_MAX = 512 * 1024;

const join = (dir: string, name: string) => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);
const parent = (p: string) => p.replace(/\/[^/]+\/?$/, '') || '/';

function toBase64(buf: ArrayBuffer): string {
  const b = new Uint8Array(buf);
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

export function FilesTab(props: { id: string }) {
  const [dir, setDir] = useState('/root');
  const [entries, setEntries] = useState<Json[] | null>(null);
  /** The directory the table shows (the path box may be mid-edit). */
  const [listed, setListed] = useState('');
  const [err, setErr] = useState('');
  const [open, setOpen] = useState<{ path: string; content: string; dirty: boolean } | null>(null);
  const upload = useRef<HTMLInputElement>(null);

  // Only the latest listing may land: a slow answer for an older path must not replace it.
  const seq = useRef(0);
  const list = async (path = dir) => {
    setErr('');
    const mine = ++seq.current;
    try {
      const rt = await runtime(props.id);
      const r = await rt.call('GET', `/files?path=${encodeURIComponent(path)}`);
      if (mine !== seq.current) return;
      const rows = ((r.entries ?? []) as Json[]).slice().sort((a, b) => (a.type === 'directory' ? 0 : 1) - (b.type === 'directory' ? 0 : 1) || String(a.name).localeCompare(String(b.name)));
      setEntries(rows);
      setDir(String(r.path ?? path));
      setListed(String(r.path ?? path));
    } catch (e) {
      if (mine !== seq.current) return;
      setErr(message(e));
      if (path !== '/' && entries === null) void list('/');
    }
  };
  useEffect(() => { void list(); }, [props.id]);

  const view = async (path: string, size: number) => {
    if (size > EDIT_MAX) return download(path);
    const rt = await runtime(props.id);
    const r = await rt.call('GET', `/files/read?path=${encodeURIComponent(path)}`);
    setOpen({ path, content: String(r.content ?? ''), dirty: false });
  };
  const download = async (path: string) => {
    const rt = await runtime(props.id);
    const r = await rt.call('GET', `/files/read?path=${encodeURIComponent(path)}&encoding=base64`);
    const raw = atob(String(r.content ?? ''));
    const buf = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) buf[i] = raw.charCodeAt(i);
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([buf]));
    a.download = path.split('/').pop() || 'download';
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };
  const save = async () => {
    if (!open) return;
    const rt = await runtime(props.id);
    await rt.call('POST', '/files/write', { path: open.path, content: open.content });
    setOpen({ ...open, dirty: false });
    await list();
  };
  const onUpload = async () => {
    const files = [...(upload.current?.files ?? [])];
    const rt = await runtime(props.id);
    for (const f of files) await rt.call('POST', '/files/write', { path: join(dir, f.name), content: toBase64(await f.arrayBuffer()), encoding: 'base64' });
    if (upload.current) upload.current.value = '';
    await list();
  };

  return h('div', { class: 'files' },
    h('form', { class: 'toolbar', onSubmit: (e: Event) => { e.preventDefault(); void list(dir); } },
      h('button', { type: 'button', onClick: () => void list(parent(dir)), disabled: dir === '/' }, 'Up'),
      h('input', { 'aria-label': 'Path', class: 'path', value: dir, onInput: (e: Event) => setDir((e.target as HTMLInputElement).value) }),
      h('button', { type: 'submit' }, 'Go'),
      h('label', { class: 'upload' }, 'Upload', h('input', { type: 'file', multiple: true, ref: upload, 'aria-label': 'Upload files', onChange: () => onUpload().catch((e) => setErr(message(e))) }))),
    h(ErrorLine, { error: err }),
    h('div', { class: 'files-body' },
      entries === null ? h('p', { class: 'muted' }, 'Loading…') : h('table', { class: 'file-list', 'data-listed': listed },
        h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Size'), h('th', null, ''))),
        h('tbody', null, entries.map((e) => h('tr', { key: e.path, 'data-name': e.name },
          h('td', null, h('button', {
            type: 'button', class: 'linklike',
            onClick: () => (e.type === 'directory' ? list(String(e.path)) : view(String(e.path), Number(e.size ?? 0))).catch((x) => setErr(message(x))),
          }, e.type === 'directory' ? `${e.name}/` : e.name)),
          h('td', null, e.type === 'directory' ? '' : bytes(e.size)),
          h('td', null, e.type === 'file' ? h('button', { type: 'button', onClick: () => download(String(e.path)).catch((x) => setErr(message(x))) }, 'Download') : null)))),
        entries.length === 0 ? h('tbody', null, h('tr', null, h('td', { colSpan: 3, class: 'muted' }, 'Empty directory.'))) : null),
      open ? h('div', { class: 'editor' },
        h('div', { class: 'toolbar' }, h('strong', null, open.path), open.dirty ? h('span', { class: 'muted' }, ' (modified)') : null,
          h(Action, { label: 'Save', kind: 'primary', run: save, disabled: !open.dirty }),
          h('button', { type: 'button', onClick: () => setOpen(null) }, 'Close')),
        h('textarea', { 'aria-label': `Contents of ${open.path}`, spellcheck: false, value: open.content, onInput: (e: Event) => setOpen({ ...open, content: (e.target as HTMLTextAreaElement).value, dirty: true }) })) : null));
}
