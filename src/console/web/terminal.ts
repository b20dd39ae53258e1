/// <reference lib="dom" />
/**
 * A shell in the workspace: @xterm/xterm over the runtime WebSocket, the
 * same wire the SDK speaks (binary frames `[terminal id, bytes…]`, JSON
 * resize messages). The terminal's id is kept per workspace in the tab's
 * sessionStorage, so a reload or a dropped socket reconnects to the same
 * shell and first replays its scrollback.
 */
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { message, runtime, type RuntimeAccess } from './api.ts';

const enc = new TextEncoder();

function b64bytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function TerminalTab(props: { id: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState('connecting');
  const [err, setErr] = useState('');

  useEffect(() => {
    const term = new Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000, convertEol: false, fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace' });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current!);
    fit.fit();
    let ws: WebSocket | null = null;
    let closed = false;
    let termId: number | null = null;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let attempts = 0;
    const storeKey = `hearth.terminal.${props.id}`;

    const open = async (rt: RuntimeAccess): Promise<number> => {
      const saved = sessionStorage.getItem(storeKey);
      if (saved !== null) {
        try {
          const sb = await rt.call('GET', `/terminals/${saved}/scrollback`);
          if (sb.alive !== false) {
            term.reset();
            term.write(b64bytes(String(sb.scrollback ?? '')));
            return Number(saved);
          }
        } catch {
          // gone: make a new one
        }
      }
      let t;
      try {
        t = await rt.call('POST', '/terminals', { cmd: ['/bin/bash', '-l'], cols: term.cols, rows: term.rows });
      } catch {
        t = await rt.call('POST', '/terminals', { cmd: ['/bin/sh'], cols: term.cols, rows: term.rows });
      }
      sessionStorage.setItem(storeKey, String(t.id));
      return Number(t.id);
    };

    const connect = async () => {
      if (closed) return;
      setState(attempts ? 'reconnecting' : 'connecting');
      try {
        const rt = await runtime(props.id, attempts > 0);
        termId = await open(rt);
        const url = `${rt.baseUrl.replace(/^http/, 'ws').replace(/\/$/, '')}/ws?token=${encodeURIComponent(rt.token)}`;
        const sock = new WebSocket(url);
        sock.binaryType = 'arraybuffer';
        ws = sock;
        sock.onopen = () => {
          attempts = 0;
          setState('connected');
          setErr('');
          sock.send(JSON.stringify({ channel: 'terminal', type: 'resize', id: termId, cols: term.cols, rows: term.rows }));
          term.focus();
        };
        sock.onmessage = (ev) => {
          if (!(ev.data instanceof ArrayBuffer)) return;
          const frame = new Uint8Array(ev.data);
          if (frame.length >= 2 && frame[0] === termId) term.write(frame.subarray(1));
        };
        sock.onclose = () => {
          if (ws !== sock) return;
          ws = null;
          if (closed) return;
          setState('disconnected');
          attempts++;
          retry = setTimeout(() => void connect(), Math.min(5000, 500 * attempts));
        };
      } catch (e) {
        setErr(message(e));
        setState('disconnected');
        attempts++;
        if (!closed) retry = setTimeout(() => void connect(), Math.min(10_000, 1000 * attempts));
      }
    };

    const input = term.onData((data) => {
      if (!ws || ws.readyState !== WebSocket.OPEN || termId === null) return;
      const bytes = enc.encode(data);
      const frame = new Uint8Array(bytes.length + 1);
      frame[0] = termId;
      frame.set(bytes, 1);
      ws.send(frame);
    });
    const resized = term.onResize(({ cols, rows }) => {
      if (ws?.readyState === WebSocket.OPEN && termId !== null) ws.send(JSON.stringify({ channel: 'terminal', type: 'resize', id: termId, cols, rows }));
    });
    const onWindow = () => fit.fit();
    const observer = new ResizeObserver(onWindow);
    observer.observe(host.current!);
    void connect();
    return () => {
      closed = true;
      clearTimeout(retry);
      observer.disconnect();
      input.dispose();
      resized.dispose();
      ws?.close();
      term.dispose();
    };
  }, [props.id]);

  return h('div', { class: 'terminal-tab' },
    h('div', { class: 'toolbar' }, h('span', { class: `badge conn-${state}`, 'data-state': state }, state),
      h('button', { type: 'button', onClick: () => { sessionStorage.removeItem(`hearth.terminal.${props.id}`); location.reload(); } }, 'New shell'),
      err ? h('span', { class: 'error', role: 'alert' }, err) : null),
    h('div', { class: 'terminal', ref: host, 'aria-label': 'Terminal' }));
}
