/**
 * The one place that knows how hearthd reaches and authenticates to a
 * workspace's guest agent: HTTP or WebSocket to its address on the workspace
 * network (core/agent-protocol.ts, AgentEndpoint) with the workspace's agent
 * secret as a Bearer token, and what an answer means — a body in the
 * protocol's error shape (core/agent-protocol/errors.ts) is an
 * AgentRequestError, no answer at all is AgentUnreachable.
 *
 * Every caller sits on it: LocalHost's readiness probe (health below), the
 * control plane's workload, log and metrics client (control/agent-client.ts,
 * which maps these errors to domain errors and keeps a pool per workspace
 * life) and the SSH gateway's exec, terminal and /ws client
 * (ssh/agent-client.ts). Pools, retries and the meaning of an error for the
 * caller stay with the caller; the wire stays here.
 */
import http from 'node:http';
import { WebSocket } from 'ws';
import { AGENT_ROUTES, type AgentEndpoint } from '../core/agent-protocol.ts';

/** One agent and the secret it accepts. */
export interface AgentTarget extends AgentEndpoint {
  secret: string;
}

/** The agent answered with an error: its status and, when the body had the protocol's shape, its code, message and details. */
export class AgentRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string = '',
    readonly details: Record<string, unknown> = {},
    /** Whether the body carried a message of its own (else `message` is the fallback given to agentRequestError). */
    readonly ownMessage = false,
  ) {
    super(message);
    this.name = 'AgentRequestError';
  }
}

/** No answer: refused, reset, timed out before or while answering. */
export class AgentUnreachable extends Error {
  constructor(
    message: string,
    /** A pooled socket the agent had closed meanwhile: the request never reached it, so sending it again is safe (Node's documented retry case). */
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'AgentUnreachable';
  }
}

/**
 * An error answer → AgentRequestError. The protocol's body is
 * `{ success:false, error, code, message, details? }`; anything else keeps
 * the status and the fallback message.
 */
export function agentRequestError(status: number, body: unknown, fallback = `workspace agent answered HTTP ${status}`): AgentRequestError {
  const b = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  const code = typeof b.code === 'string' ? b.code : typeof b.error === 'string' ? b.error : '';
  const own = typeof b.message === 'string' && b.message !== '';
  const details = (b.details && typeof b.details === 'object' ? b.details : {}) as Record<string, unknown>;
  return new AgentRequestError(own ? (b.message as string) : fallback, status, code, details, own);
}

/** The headers every call carries: the agent refuses anything without its secret. */
export function agentHeaders(target: AgentTarget, extra: Record<string, string | number> = {}): Record<string, string | number> {
  return { authorization: `Bearer ${target.secret}`, ...extra };
}

export interface AgentRequestOptions {
  method: string;
  path: string;
  /** JSON-encoded unless a Buffer (then sent as `contentType`). */
  body?: unknown;
  /** The body's type; sent with a body, or always when `alwaysContentType` (the SSH gateway's calls). */
  contentType?: string;
  alwaysContentType?: boolean;
  accept?: string;
  /** The caller's keep-alive pool, or false for a connection of its own (a long stream must not hold a pooled socket). */
  agent: http.Agent | false;
  /** Bound on reaching the agent; none when absent. */
  connectTimeoutMs?: number;
  /** Bound on the whole call until the body ends; null: none (streams). */
  timeoutMs: number | null;
}

export interface AgentRequest {
  /** The request itself: destroying it ends the call (and a stream). */
  req: http.ClientRequest;
  /** The agent's answer, any status; rejects with AgentUnreachable when none came. */
  response: Promise<http.IncomingMessage>;
}

/** Send one request to the agent. The answer is not read: see readAgentBody, or consume it as a stream. */
export function agentRequest(target: AgentTarget, o: AgentRequestOptions): AgentRequest {
  const payload = o.body === undefined ? undefined : Buffer.isBuffer(o.body) ? o.body : Buffer.from(JSON.stringify(o.body));
  const contentType = o.contentType ?? 'application/json';
  const req = http.request({
    host: target.ip, port: target.port, method: o.method, path: o.path, agent: o.agent,
    headers: agentHeaders(target, {
      ...(o.accept ? { accept: o.accept } : {}),
      ...(payload || o.alwaysContentType ? { 'content-type': contentType } : {}),
      ...(payload ? { 'content-length': payload.length } : {}),
    }),
  });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    let settled = false;
    const connectTimer = o.connectTimeoutMs === undefined ? null : setTimeout(() => req.destroy(new Error(`no connection within ${o.connectTimeoutMs} ms`)), o.connectTimeoutMs);
    const clearConnect = (): void => { if (connectTimer) clearTimeout(connectTimer); };
    if (connectTimer) {
      req.once('socket', (sock) => {
        if (!sock.connecting) clearConnect();
        else sock.once('connect', clearConnect);
      });
    }
    const callTimer = o.timeoutMs === null ? null : setTimeout(() => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    // Kept for the request's whole life: a socket error after the answer began must not go unhandled.
    req.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearConnect();
      if (callTimer) clearTimeout(callTimer);
      reject(new AgentUnreachable(err.message, req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET'));
    });
    req.once('response', (res) => {
      settled = true;
      clearConnect();
      // The call timer keeps running while the body is read; it ends with the body.
      if (callTimer) res.once('end', () => clearTimeout(callTimer)).once('close', () => clearTimeout(callTimer));
      resolve(res);
    });
  });
  req.end(payload);
  return { req, response };
}

/** Read a whole answer: its status and its JSON (null when empty, `{ message }` with the start of the text when not JSON). */
export async function readAgentBody(res: http.IncomingMessage): Promise<{ status: number; json: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of res) chunks.push(c as Buffer);
  } catch (err) {
    throw new AgentUnreachable((err as Error).message);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let json: unknown = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = { message: text.slice(0, 500) }; }
  return { status: res.statusCode ?? 502, json };
}

/** Whether the agent answers /health: true, or why not (for the readiness error). */
export async function agentHealth(target: AgentTarget, agent: http.Agent, timeoutMs = 1000): Promise<true | string> {
  try {
    const res = await agentRequest(target, { method: 'GET', path: AGENT_ROUTES.health, agent, timeoutMs }).response;
    res.resume();
    return res.statusCode === 200 ? true : `HTTP ${res.statusCode}`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Open a WebSocket to the agent (its `/ws` hub by default); the caller owns it from here. */
export function agentWebSocket(target: AgentTarget, path: string = AGENT_ROUTES.ws): WebSocket {
  return new WebSocket(`ws://${target.ip}:${target.port}${path}`, {
    headers: agentHeaders(target) as Record<string, string>, perMessageDeflate: false, handshakeTimeout: 10_000,
  });
}
