/**
 * The SSH gateway's client of one workspace's guest agent, over the
 * runtime data plane the agent already speaks (§22.5, §22.6, §22.9):
 *
 *   - exec: `POST /exec/stream` (SSE: task_id, base64 stdout/stderr, exit),
 *     stdin through `POST /exec/:id/input` (`?eof=true` closes it), signals
 *     through `DELETE /exec/:id?signal=`;
 *   - terminals: `POST /terminals`, then input/output/resize/exit over the
 *     agent's `/ws` socket (binary frames `[id][bytes]`), one socket per
 *     workspace shared by all its SSH sessions.
 *
 * Reaching and authenticating to the agent, its error answers and its SSE
 * framing are the shared client's and the protocol's (host/agent-client.ts,
 * core/agent-protocol/sse.ts); what is SSH-specific — stdin ordering, the
 * terminal frames of the shared `/ws` — is this layer on top.
 */
import http from 'node:http';
import { WebSocket } from 'ws';
import { AGENT_ROUTES, agentPath, type ExecStreamRequest, type TerminalCreateRequest, type TerminalCreated } from '../core/agent-protocol.ts';
import { SseParser } from '../core/agent-protocol/sse.ts';
import { agentRequest, agentRequestError, agentWebSocket, readAgentBody, type AgentTarget } from '../host/agent-client.ts';

export type { AgentTarget };

export interface ExecHandlers {
  stdout(data: Buffer): void;
  stderr(data: Buffer): void;
  exit(code: number, signal: string | null): void;
  error(err: Error): void;
}

/** A running exec task: stdin writes are queued and sent in order, coalesced while one is in flight. */
export class ExecSession {
  taskId: string | null = null;
  private queue: Buffer[] = [];
  private eofWanted = false;
  private sending = false;
  private ready: Promise<void>;
  private markReady!: () => void;
  private closed = false;

  constructor(private readonly client: AgentClient, private readonly req: http.ClientRequest) {
    this.ready = new Promise((r) => { this.markReady = r; });
  }

  /** @internal called by the SSE parser */
  started(taskId: string): void {
    this.taskId = taskId;
    this.markReady();
  }

  write(data: Buffer): void {
    if (this.closed || this.eofWanted) return;
    this.queue.push(data);
    void this.pump();
  }

  end(): void {
    if (this.eofWanted) return;
    this.eofWanted = true;
    void this.pump();
  }

  /** Ask the agent to signal the process group (SSH `signal` requests, session close). */
  async kill(signal = 'KILL'): Promise<void> {
    await this.ready;
    if (!this.taskId) return;
    await this.client.request('DELETE', `${agentPath(AGENT_ROUTES.execTask, { taskId: this.taskId })}?signal=${encodeURIComponent(signal)}`).catch(() => undefined);
  }

  /** Stop following the stream (the task, if still running, is killed). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.req.destroy();
  }

  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      await this.ready;
      while (!this.closed && (this.queue.length || this.eofWanted)) {
        const data = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
        this.queue = [];
        const eof = this.eofWanted && true;
        await this.client.request('POST', `${agentPath(AGENT_ROUTES.execInput, { taskId: this.taskId! })}${eof ? '?eof=true' : ''}`, data, 'application/octet-stream');
        if (eof && this.queue.length === 0) break;
      }
    } catch {
      // The task ended (stdin closed): later input has nowhere to go.
    } finally {
      this.sending = false;
    }
  }
}

export interface TerminalListener {
  data(data: Buffer): void;
  exit(code: number): void;
}

/** The agent's `/ws` for one workspace: demultiplexes terminal frames by id. */
export class AgentSocket {
  private ws: WebSocket | null = null;
  private opening: Promise<WebSocket> | null = null;
  private readonly listeners = new Map<number, TerminalListener>();
  /** Frames for ids nobody listens to yet (output racing the POST /terminals answer). */
  private readonly pending = new Map<number, { chunks: Buffer[]; exit?: number; at: number }>();

  constructor(private readonly target: AgentTarget) {}

  open(): Promise<WebSocket> {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return Promise.resolve(this.ws);
    if (this.opening) return this.opening;
    this.opening = new Promise<WebSocket>((resolve, reject) => {
      const ws = agentWebSocket(this.target);
      ws.on('open', () => { this.ws = ws; this.opening = null; resolve(ws); });
      ws.on('error', (err) => { this.opening = null; reject(err); });
      ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
      ws.on('close', () => {
        if (this.ws === ws) this.ws = null;
        // The socket is gone: every terminal session on it ends.
        for (const [id, l] of this.listeners) { this.listeners.delete(id); l.exit(255); }
      });
    });
    return this.opening;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      if (data.length < 2) return;
      const id = data[0]!;
      const payload = data.subarray(1);
      const l = this.listeners.get(id);
      if (l) l.data(payload);
      else this.stash(id).chunks.push(Buffer.from(payload));
      return;
    }
    let msg: Record<string, unknown>;
    try { msg = JSON.parse(data.toString('utf8')); } catch { return; }
    if ((msg.channel ?? 'terminal') !== 'terminal' || msg.type !== 'exit') return;
    const id = Number(msg.id);
    const code = Number(msg.code ?? 0);
    const l = this.listeners.get(id);
    if (l) { this.listeners.delete(id); l.exit(code); } else this.stash(id).exit = code;
  }

  private stash(id: number): { chunks: Buffer[]; exit?: number; at: number } {
    let p = this.pending.get(id);
    if (!p || Date.now() - p.at > 10_000) this.pending.set(id, (p = { chunks: [], at: Date.now() }));
    return p;
  }

  listen(id: number, l: TerminalListener): void {
    this.listeners.set(id, l);
    const p = this.pending.get(id);
    this.pending.delete(id);
    if (p) {
      for (const c of p.chunks) l.data(c);
      if (p.exit !== undefined) { this.listeners.delete(id); l.exit(p.exit); }
    }
  }

  unlisten(id: number): void {
    this.listeners.delete(id);
  }

  input(id: number, data: Buffer): void {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || data.length === 0) return;
    const frame = Buffer.allocUnsafe(data.length + 1);
    frame[0] = id;
    data.copy(frame, 1);
    this.ws.send(frame, { binary: true });
  }

  resize(id: number, cols: number, rows: number): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ channel: 'terminal', type: 'resize', id: String(id), cols, rows }));
  }

  get idle(): boolean {
    return this.listeners.size === 0;
  }

  close(): void {
    this.ws?.terminate();
    this.ws = null;
  }
}

export class AgentClient {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  readonly socket: AgentSocket;

  constructor(readonly target: AgentTarget) {
    this.socket = new AgentSocket(target);
  }

  /** One JSON request; rejects with AgentRequestError on a failure body. */
  async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Record<string, unknown>> {
    const res = await agentRequest(this.target, { method, path, body, contentType, alwaysContentType: true, agent: this.httpAgent, timeoutMs: 30_000 }).response;
    const { status, json } = await readAgentBody(res);
    const obj = (json && typeof json === 'object' ? json : {}) as Record<string, unknown>;
    if (status >= 400 || obj.success === false) throw agentRequestError(status, obj, `agent answered ${res.statusCode}`);
    return obj;
  }

  /** Start a command with stdin kept open; output and exit arrive through `h`. */
  exec(body: ExecStreamRequest, h: ExecHandlers): ExecSession {
    const { req, response } = agentRequest(this.target, {
      method: 'POST', path: AGENT_ROUTES.execStream, body: { exec_mode: 'direct', ttl_seconds: 60, keep_logs: false, ...body } satisfies ExecStreamRequest,
      accept: 'text/event-stream', agent: this.httpAgent, timeoutMs: null,
    });
    const session = new ExecSession(this, req);
    let exited = false;
    response.then((res) => {
      if ((res.statusCode ?? 500) >= 400) {
        void readAgentBody(res).then(
          ({ status, json }) => h.error(agentRequestError(status, json, `agent answered ${res.statusCode}`)),
          (err: Error) => h.error(err),
        );
        return;
      }
      res.setEncoding('utf8');
      const parser = new SseParser();
      res.on('data', (text: string) => {
        for (const { event, data: d } of parser.feed(text)) {
          const name = typeof d.event === 'string' ? d.event : event;
          if (name === 'task_id') session.started(String(d.task_id));
          else if (name === 'stdout' && typeof d.data === 'string') h.stdout(Buffer.from(d.data, 'base64'));
          else if (name === 'stderr' && typeof d.data === 'string') h.stderr(Buffer.from(d.data, 'base64'));
          else if (name === 'exit' && !exited) {
            exited = true;
            h.exit(Number(d.exit_code ?? 255), typeof d.signal === 'string' ? d.signal : null);
          }
        }
      });
      res.on('end', () => { if (!exited) { exited = true; h.exit(255, null); } });
      res.on('error', () => { if (!exited) { exited = true; h.exit(255, null); } });
    }, (err: Error) => { if (!exited) { exited = true; h.error(err); } });
    return session;
  }

  async createTerminal(body: TerminalCreateRequest): Promise<number> {
    const res = (await this.request('POST', AGENT_ROUTES.terminals, body)) as Partial<TerminalCreated>;
    return Number(res.id);
  }

  async closeTerminal(id: number): Promise<void> {
    await this.request('DELETE', agentPath(AGENT_ROUTES.terminal, { id })).catch(() => undefined);
  }

  close(): void {
    this.socket.close();
    this.httpAgent.destroy();
  }
}
