/**
 * Helpers for the runtime (data-plane) acceptance tests: the official SDK's
 * Runtime against a real hearth serve, a contract check on every runtime
 * response, a recorder for the runtime WebSocket, and the agent's memory
 * as seen from inside the workspace.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Runtime, type Oblien } from 'oblien';
import type { HearthInstance } from './hearth.ts';
import { waitUntil } from './wait.ts';

// Node 20 has no global WebSocket; the SDK's rt.ws() and rt.proxy().ws() use the global one (spec §22.9).
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

export async function runtimeFor(client: Oblien, h: HearthInstance, id: string): Promise<{ rt: Runtime; token: string }> {
  const { token } = await client.workspaces.apiAccess.enable(id) as { token: string };
  return { rt: new Runtime({ token, baseUrl: h.runtime }), token };
}

/**
 * Wraps the global fetch so every data-plane response is checked against
 * the contract (§1.4, §2.1): an error status carries a JSON body with
 * `success:false`, a code and a message — the SDK returns any other 4xx/5xx
 * body as if it had succeeded. Call `violations()` at the end.
 */
export function checkRuntimeContract(runtimeBase: string): { violations(): string[]; checked(): number; restore(): void } {
  const real = globalThis.fetch;
  const found: string[] = [];
  let n = 0;
  globalThis.fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const res = await real(input, init);
    const url = input instanceof Request ? input.url : String(input);
    // Proxied app responses (/proxy) are the app's own: not ours to check.
    if (!url.startsWith(runtimeBase) || new URL(url).pathname.startsWith('/proxy')) return res;
    n++;
    if (res.status >= 400) {
      const type = res.headers.get('content-type') ?? '';
      if (!type.includes('application/json')) {
        found.push(`${init?.method ?? 'GET'} ${url}: ${res.status} with content-type ${type}`);
      } else {
        const body = await res.clone().json() as Record<string, unknown>;
        if (body.success !== false || typeof body.code !== 'string' || typeof body.message !== 'string') {
          found.push(`${init?.method ?? 'GET'} ${url}: ${res.status} body ${JSON.stringify(body).slice(0, 200)}`);
        }
      }
    }
    return res;
  };
  return { violations: () => found, checked: () => n, restore: () => { globalThis.fetch = real; } };
}

export interface WatcherEvent {
  channel: 'watcher';
  type: string;
  watcher_id: string;
  path?: string;
  op?: string;
  root?: string;
  dirs?: number;
  message?: string;
}

/** rt.ws() with everything it delivers recorded, and waits over it. */
export class WsRecorder {
  readonly sock: ReturnType<Runtime['ws']>;
  readonly output = new Map<string, Buffer>();
  readonly exits: { id: string; code: number }[] = [];
  readonly watcher: WatcherEvent[] = [];
  readonly messages: Record<string, unknown>[] = [];
  closes: { code: number; reason: string }[] = [];
  opens = 0;

  constructor(rt: Runtime, opts: { reconnect?: boolean } = {}) {
    this.sock = rt.ws({ reconnect: opts.reconnect ?? false });
    this.sock
      .onTerminalOutput((id, data) => this.output.set(String(id), Buffer.concat([this.output.get(String(id)) ?? Buffer.alloc(0), Buffer.from(data)])))
      .onTerminalExit((id, code) => this.exits.push({ id: String(id), code }))
      .onWatcherEvent((ev) => this.watcher.push(ev as unknown as WatcherEvent))
      .onMessage((m) => this.messages.push(m as Record<string, unknown>))
      .onOpen(() => { this.opens++; })
      .onClose((code, reason) => this.closes.push({ code, reason }));
  }

  static async open(rt: Runtime, opts: { reconnect?: boolean } = {}): Promise<WsRecorder> {
    const r = new WsRecorder(rt, opts);
    r.sock.connect();
    await waitUntil('the runtime WebSocket to open', async () => r.opens > 0 || (r.closes.length > 0 ? Promise.reject(new Error(`closed: ${JSON.stringify(r.closes)}`)) : false), 10_000, 10);
    return r;
  }

  /** Everything terminal `id` printed, as text, terminal control sequences (colours, bracketed paste) removed. */
  text(id: string): string {
    // eslint-disable-next-line no-control-regex
    return (this.output.get(String(id)) ?? Buffer.alloc(0)).toString('utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07/g, '');
  }

  async waitText(id: string, pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
    const test = (s: string) => (typeof pattern === 'string' ? s.includes(pattern) : pattern.test(s));
    return waitUntil(`terminal ${id} to print ${pattern}`, async () => (test(this.text(id)) ? this.text(id) : false), timeoutMs, 10)
      .catch((e: Error) => { throw new Error(`${e.message}\n--- terminal ${id} output ---\n${this.text(id).slice(-2000)}`); });
  }

  async waitWatcher(pred: (e: WatcherEvent) => boolean, what: string, timeoutMs = 10_000): Promise<WatcherEvent> {
    return waitUntil(what, async () => this.watcher.find(pred) ?? false, timeoutMs, 10)
      .catch((e: Error) => { throw new Error(`${e.message}\n--- watcher events ---\n${JSON.stringify(this.watcher, null, 1).slice(-3000)}`); });
  }

  async waitClose(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    return waitUntil('the runtime WebSocket to close', async () => this.closes[0] ?? false, timeoutMs, 10);
  }

  close(): void {
    this.sock.close();
  }
}

/** The agent's process inside the workspace (tini is pid 1; the agent is node running /.hearth/agent.mjs). */
export async function agentPid(rt: Runtime): Promise<number> {
  const r = await rt.exec.run(['sh', '-c', 'for p in /proc/[0-9]*; do if tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "^/.hearth/lib/ld-linux.* /.hearth/agent.mjs"; then echo ${p#/proc/}; fi; done']);
  const pids = r.stdout!.trim().split('\n').filter(Boolean).map(Number);
  assert.equal(pids.length, 1, `exactly one agent process: ${r.stdout} ${r.stderr}`);
  return pids[0]!;
}

/** Peak (VmHWM) and current (VmRSS) resident memory of the agent, in MiB. */
export async function agentMemory(rt: Runtime, pid: number): Promise<{ peakMiB: number; rssMiB: number }> {
  const r = await rt.exec.run(['grep', '-E', '^(VmHWM|VmRSS):', `/proc/${pid}/status`]);
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(r.stdout!)?.[1]);
  return { peakMiB: Math.round(kb('VmHWM') / 102.4) / 10, rssMiB: Math.round(kb('VmRSS') / 102.4) / 10 };
}
