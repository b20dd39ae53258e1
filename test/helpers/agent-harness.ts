/**
 * Test harness for the guest agent: starts the REAL agent in-process on an
 * ephemeral loopback port and talks to it over HTTP, as hearthd does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startAgent, type RunningAgent } from '../../src/agent/server.ts';

export interface TestAgent {
  agent: RunningAgent;
  url: string;
  secret: string;
  /** JSON request with the agent's bearer secret; returns status + parsed body. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Raw fetch with auth. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** ws:// URL for `path` with the secret as `?token=`. */
  wsUrl(path?: string): string;
  close(): Promise<void>;
}

export async function startTestAgent(opts: { heartbeatMs?: number } = {}): Promise<TestAgent> {
  const secret = randomBytes(16).toString('hex');
  const agent = await startAgent({ port: 0, host: '127.0.0.1', secret, workspaceId: 'ws_test', log: () => {}, ...opts });
  const auth = { authorization: `Bearer ${secret}` };
  const rawFetch = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(agent.url + path, { ...init, headers: { ...auth, ...(init.headers as Record<string, string> | undefined) } });
  return {
    agent,
    url: agent.url,
    secret,
    fetch: rawFetch,
    async call(method, path, body, headers = {}) {
      const res = await rawFetch(path, {
        method,
        headers: { 'content-type': 'application/json', ...headers },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await res.text();
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {
        parsed = { raw: text };
      }
      return { status: res.status, body: parsed };
    },
    wsUrl: (path = '/ws') => `${agent.url.replace(/^http/, 'ws')}${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(secret)}`,
    close: () => agent.close(),
  };
}

export interface SseEvent {
  event: string;
  [k: string]: unknown;
}

/** Parse named SSE events exactly as the SDK's ExecResource.parseSSE does. */
export async function readSse(res: Response, onEvent?: (ev: SseEvent) => void | Promise<void>): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let current = '';
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('event: ')) current = line.slice(7).trim();
      else if (line.startsWith('data: ')) {
        const ev = { event: current || 'message', ...(JSON.parse(line.slice(6)) as object) } as SseEvent;
        events.push(ev);
        current = '';
        if (onEvent) await onEvent(ev);
      } else if (line === '') current = '';
    }
  }
  return events;
}

export const b64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

export async function withTempDir(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-agent-test-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Poll until `cond` holds or the deadline passes; throws with the last value seen. */
export async function waitUntil<T>(cond: () => Promise<T> | T, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await cond();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
}

/**
 * A WebSocket client that records every frame, so tests can wait for the
 * frame they expect with a deadline instead of sleeping.
 */
export class WsRecorder {
  readonly frames: { binary: boolean; data: Buffer }[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly ws: import('ws').WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.frames.push({ binary: isBinary, data: Buffer.from(data) });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(url: string, headers?: Record<string, string>): Promise<WsRecorder> {
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(url, headers ? { headers } : {});
    const rec = new WsRecorder(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return rec;
  }

  /** Concatenated output of terminal `id` from binary frames. */
  terminalOutput(id: number): string {
    return Buffer.concat(this.frames.filter((f) => f.binary && f.data[0] === id).map((f) => f.data.subarray(1))).toString('utf8');
  }

  json(): Record<string, unknown>[] {
    return this.frames.filter((f) => !f.binary).map((f) => JSON.parse(f.data.toString('utf8')) as Record<string, unknown>);
  }

  async waitFor<T>(cond: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const v = cond();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; frames: ${this.frames.map((f) => (f.binary ? `[bin ${f.data[0]}] ${JSON.stringify(f.data.subarray(1).toString())}` : f.data.toString())).join(' | ').slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  close(): void {
    this.ws.close();
  }
}
