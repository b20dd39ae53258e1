/// <reference lib="dom" />
/** Small shared pieces of the page: navigation, formatting, a button that shows its own errors. */
import { h, type ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { message } from './api.ts';

export const BASE = '/console';

let listeners: (() => void)[] = [];
export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  for (const l of listeners) l();
}
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.push(update);
    addEventListener('popstate', update);
    return () => {
      listeners = listeners.filter((l) => l !== update);
      removeEventListener('popstate', update);
    };
  }, []);
  return path;
}

/** An in-app link: a real href (open in a new tab works), history navigation on a plain click. */
export function Link(props: { href: string; children?: ComponentChildren; class?: string; 'aria-current'?: string }) {
  return h('a', {
    ...props,
    onClick: (ev: MouseEvent) => {
      if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
      ev.preventDefault();
      navigate(props.href);
    },
  }, props.children);
}

/** A button running an async action: disabled while it runs, its error shown beside it. */
export function Action(props: { label: string; run: () => Promise<unknown>; kind?: 'danger' | 'primary'; confirm?: string; disabled?: boolean; title?: string }) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  return h('span', { class: 'action' },
    h('button', {
      type: 'button', class: props.kind ?? '', disabled: busy || props.disabled, title: props.title,
      onClick: async () => {
        if (props.confirm && !confirm(props.confirm)) return;
        setBusy(true);
        setErr('');
        try {
          await props.run();
        } catch (e) {
          setErr(message(e));
        } finally {
          setBusy(false);
        }
      },
    }, busy ? `${props.label}…` : props.label),
    err ? h('span', { class: 'error', role: 'alert' }, err) : null);
}

export function ErrorLine(props: { error: string }) {
  return props.error ? h('p', { class: 'error', role: 'alert' }, props.error) : null;
}

/** Run `fn` now and every `ms` while mounted (the list's live status). */
export function useInterval(fn: () => void, ms: number, deps: unknown[] = []): void {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    saved.current();
    const t = setInterval(() => saved.current(), ms);
    return () => clearInterval(t);
  }, deps);
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** "12m 5s" left until `iso`, "expired", or "–" without a TTL. */
export function timeLeft(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const s = Math.round((Date.parse(iso) - now) / 1000);
  if (!Number.isFinite(s)) return '–';
  if (s <= 0) return 'expired';
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${hr}h`;
  if (hr > 0) return `${hr}h ${m}m`;
  return m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

export function StatusBadge(props: { status: string }) {
  return h('span', { class: `badge status-${props.status}` }, props.status);
}

export function Dialog(props: { title: string; onClose: () => void; children?: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return h('dialog', { ref, 'aria-label': props.title, onClose: props.onClose, onCancel: props.onClose },
    h('h2', null, props.title), props.children);
}
