/**
 * The control plane's view of a workspace's guest agent, for the workload,
 * log and metrics routes. Reaching and authenticating to the agent is the
 * shared client's (host/agent-client.ts); this adds what the control plane
 * needs on top: only a running workspace is called, a keep-alive pool per
 * workspace life for short calls, a separate unpooled connection per stream
 * (a long stream must not hold a pooled socket), timeouts everywhere.
 *
 * The agent's error bodies (`{ success:false, code, message, details }`,
 * read by the shared client as AgentRequestError) become domain errors (core/errors.ts) that src/api/errors.ts maps to the
 * contract: not_found → NotFound, validation → ValidationFailed,
 * already_exists → AlreadyExists, other 409s → StateConflict; an
 * unreachable agent is Unavailable (503); a route an older agent lacks is
 * StateConflict with the hint to restart the workspace.
 */
import http from 'node:http';
import { AlreadyExists, NotFound, StateConflict, Unavailable, ValidationFailed } from '../core/errors.ts';
import { publicStatus } from '../core/lifecycle.ts';
import { WORKLOADS_GENERATION, type AgentEndpoint } from '../core/agent-protocol.ts';
import { AgentUnreachable, agentRequest, agentRequestError, readAgentBody, type AgentRequestError, type AgentTarget } from '../host/agent-client.ts';
import type { Workspace } from './workspaces/row.ts';

const CONNECT_TIMEOUT_MS = 3_000;
const DEFAULT_TIMEOUT_MS = 30_000;

export interface AgentCallOptions {
  /** Whole-call bound (stop of a slow workload waits for its stop_timeout). */
  timeoutMs?: number;
  query?: Record<string, string | number | boolean | undefined>;
}

type Endpoints = { agentEndpoint(ws: { slotIndex: number }): AgentEndpoint };
type Json = Record<string, unknown>;

/** Refuse early when the workspace cannot have a live agent, with what to do instead. */
export function requireRunning(ws: Workspace): void {
  if (ws.state === 'running' && ws.slotIndex !== null) return;
  const hints: Partial<Record<Workspace['state'], string>> = {
    stopped: 'start it with workspaces.start(id)',
    paused: 'resume it with workspaces.resume(id)',
    sleeping: 'it is asleep (idle policy): wake it with workspaces.start(id) or any request through its gateway or edge',
    provisioning: 'wait until it is ready (workspaces.waitUntilReady(id))',
    failed: 'retry with workspaces.retryCreation(id) or delete it',
  };
  throw new StateConflict(`workspace ${ws.id} is ${publicStatus(ws.state)}: its workloads, logs and metrics live in the running workspace`, hints[ws.state] ?? 'start the workspace first');
}

function withQuery(path: string, query?: AgentCallOptions['query']): string {
  if (!query) return path;
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

/** The agent's error answer (as the shared client reads it) → a domain error. */
function domainError(e: AgentRequestError, ws: Workspace): Error {
  const { status, code, message, details } = e;
  if (status === 404 && /^No route for /.test(message)) {
    return new StateConflict(`the agent in workspace ${ws.id} is too old for this feature (it needs agent generation ${WORKLOADS_GENERATION})`, 'restart the workspace (workspaces.restart(id)) to give it the current agent');
  }
  if (status === 404) return new NotFound(typeof details.kind === 'string' ? details.kind : 'resource', typeof details.id === 'string' ? details.id : message);
  if (code === 'already_exists') return new AlreadyExists(typeof details.kind === 'string' ? details.kind : 'resource', typeof details.id === 'string' ? details.id : message);
  if (status === 400 || status === 413 || status === 422) {
    return new ValidationFailed(typeof details.field === 'string' ? details.field : 'body', message, typeof details.hint === 'string' ? details.hint : undefined);
  }
  if (status === 409) return new StateConflict(message);
  if (status === 401) return new Unavailable(`the agent of workspace ${ws.id} refused hearthd's credentials`, 'restart the workspace');
  return new Error(`workspace agent: ${message} (HTTP ${status}${code ? `, ${code}` : ''})`);
}

/** The agent's error body → a domain error. */
export function agentError(status: number, body: unknown, ws: Workspace): Error {
  return domainError(agentRequestError(status, body), ws);
}

/** No answer from the agent → Unavailable (503), with what to do; anything else passes through. */
function unreachable(ws: Workspace, err: unknown): unknown {
  if (!(err instanceof AgentUnreachable)) return err;
  const e = new Unavailable(`the agent of workspace ${ws.id} is unreachable: ${err.message}`, 'the workspace may be starting or restarting; retry shortly');
  if (err.retryable) (e as Unavailable & { retryable?: boolean }).retryable = true;
  return e;
}

export class AgentClient {
  /**
   * Keep-alive pools per workspace and generation: a restarted workspace
   * (same IP, new agent) must never be sent a socket of its previous life,
   * which would die with a reset (the gateway does the same).
   */
  private readonly pools = new Map<string, { generation: number; agent: http.Agent }>();

  constructor(private readonly host: Endpoints) {}

  private pool(ws: Workspace): http.Agent {
    const cur = this.pools.get(ws.id);
    if (cur && cur.generation === ws.generation) return cur.agent;
    cur?.agent.destroy();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16, keepAliveMsecs: 10_000, timeout: 60_000 });
    this.pools.set(ws.id, { generation: ws.generation, agent });
    return agent;
  }

  private target(ws: Workspace): AgentTarget {
    requireRunning(ws);
    return { ...this.host.agentEndpoint({ slotIndex: ws.slotIndex! }), secret: ws.agentSecret };
  }

  private async open(ws: Workspace, method: string, path: string, body: unknown, agent: http.Agent | false, timeoutMs: number | null): Promise<http.IncomingMessage> {
    const target = this.target(ws);
    try {
      return await agentRequest(target, { method, path, body, agent, timeoutMs, connectTimeoutMs: CONNECT_TIMEOUT_MS, accept: 'application/json, text/event-stream' }).response;
    } catch (err) {
      throw unreachable(ws, err);
    }
  }

  /** One JSON call. Non-2xx answers throw the mapped domain error. */
  async call(ws: Workspace, method: string, path: string, body?: unknown, opts: AgentCallOptions = {}): Promise<Json> {
    const full = withQuery(path, opts.query);
    const attempt = async (): Promise<{ status: number; json: unknown }> => {
      const res = await this.open(ws, method, full, body, this.pool(ws), opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      try {
        return await readAgentBody(res);
      } catch (err) {
        throw unreachable(ws, err);
      }
    };
    let r: { status: number; json: unknown };
    try {
      r = await attempt();
    } catch (err) {
      if (!(err as { retryable?: boolean }).retryable) throw err;
      r = await attempt();
    }
    if (r.status < 200 || r.status >= 300) throw agentError(r.status, r.json, ws);
    return (r.json && typeof r.json === 'object' ? r.json : {}) as Json;
  }

  /**
   * Open a stream (SSE) from the agent. Resolves with the response once the
   * agent answered 200; an error answer throws the mapped domain error.
   */
  async stream(ws: Workspace, path: string, opts: AgentCallOptions = {}): Promise<http.IncomingMessage> {
    const res = await this.open(ws, 'GET', withQuery(path, opts.query), undefined, false, null);
    if (res.statusCode === 200) return res;
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    let json: unknown = null;
    try { json = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { /* not JSON */ }
    throw agentError(res.statusCode ?? 502, json, ws);
  }

  close(): void {
    for (const p of this.pools.values()) p.agent.destroy();
    this.pools.clear();
  }
}
