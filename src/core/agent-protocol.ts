/**
 * The parts of the agent protocol both sides name: where the guest agent
 * listens, the prefixes of its internal API, its generation and
 * capabilities. The agent (src/agent) serves them; hearthd (the host layer,
 * the control plane, the SSH gateway) calls them. One definition, so the two
 * sides cannot drift apart. The error codes and body shape, the workload
 * definition and the SSE framing live beside this file in agent-protocol/.
 */

/** The guest agent's port on the workspace's own address: only the host may reach it. */
export const AGENT_PORT = 9990;

/** Where hearthd reaches one workspace's agent: its address on the workspace network and AGENT_PORT. */
export interface AgentEndpoint {
  ip: string;
  port: number;
}

/**
 * The runtime routes hearthd itself calls (the rest of the runtime surface
 * only passes through the gateway). Patterns as the agent's router reads
 * them; callers fill them with agentPath.
 */
export const AGENT_ROUTES = {
  /** Readiness and generation (HealthBody). */
  health: '/health',
  /** The agent's WebSocket hub: terminal frames `[id][bytes]` and JSON channels. */
  ws: '/ws',
  /** Start a command and follow it as SSE (ExecStreamRequest in, named events out). */
  execStream: '/exec/stream',
  /** One exec task; DELETE with `?signal=` signals its process group. */
  execTask: '/exec/:taskId',
  /** A task's stdin (raw bytes; `?eof=true` closes it). */
  execInput: '/exec/:taskId/input',
  /** Open a PTY (TerminalCreateRequest in, TerminalCreated out). */
  terminals: '/terminals',
  /** One terminal; DELETE closes it. */
  terminal: '/terminals/:id',
} as const;

/** A route pattern with its `:name` segments filled in (URI-encoded). */
export function agentPath(pattern: string, params: Record<string, string | number>): string {
  return pattern.replace(/:(\w+)/g, (_m, name: string) => {
    const v = params[name];
    if (v === undefined) throw new Error(`agentPath: no value for :${name} in ${pattern}`);
    return encodeURIComponent(String(v));
  });
}

/** What GET /health answers. */
export interface HealthBody {
  status: 'ok';
  success: true;
  /** AGENT_GENERATION of the agent that answered: a re-adopted workspace may run an older one. */
  generation: number;
  workspace_id: string | null;
  uptime_ms: number;
}

/** The body of POST /exec/stream as hearthd sends it (the agent accepts more: exec/request.ts). */
export interface ExecStreamRequest {
  cmd: string[];
  exec_mode?: string;
  env?: Record<string, string>;
  cwd?: string;
  ttl_seconds?: number;
  keep_logs?: boolean;
}

/** The body of POST /terminals as hearthd sends it. */
export interface TerminalCreateRequest {
  cmd?: string[];
  cols: number;
  rows: number;
  env?: Record<string, string>;
}

/** What POST /terminals answers, as far as hearthd reads it: the id its /ws frames carry. */
export interface TerminalCreated {
  success: true;
  /** Decimal, as text; the /ws frames carry it as their first byte. */
  id: string;
}

/** The agent's internal workload API (hearthd serves /workspace/:id/workloads… from it). */
export const WORKLOADS_PREFIX = '/_hearth/workloads';
/** The agent's log API (boot and workload logs, §18). */
export const LOGS_PREFIX = '/_hearth/logs';
/** A pooled agent takes its workspace's secret here, authenticated with the pool's (agent/claim). */
export const CLAIM_ROUTE = '/_hearth/claim';
/** The first generation that serves CLAIM_ROUTE (a warm pool only ever starts the current agent). */
export const CLAIM_GENERATION = 3;
/** The agent's guest metrics (§14). */
export const METRICS_PREFIX = '/_hearth/metrics';

/**
 * The first agent generation (AGENT_GENERATION below, reported on /health) that
 * serves the three prefixes above: a re-adopted workspace may run an older agent.
 */
export const WORKLOADS_GENERATION = 2;

/**
 * The agent's wire identity. hearthd reads `generation` from /health before
 * using a feature: a re-adopted workspace keeps its old agent drive, so the
 * host must adapt to an older guest (microsandbox's VERSIONING.md). Bump
 * AGENT_GENERATION only when the route surface or a body shape changes in a
 * way an older hearthd could not handle.
 */
export const AGENT_GENERATION = 3;
/*
 * Generations:
 *   1  exec, files, search, transfer, terminals, watchers, /ws, /proxy.
 *   2  + the internal workload, log and metrics API under /_hearth/ (hearthd
 *      serves /workspace/:id/workloads…, /logs…, /stats… from it).
 *   3  + POST /_hearth/claim: a pooled agent takes its workspace's secret.
 */

/** Reported as RuntimeInfo.protocol_version and RuntimeDiscovery.version. */
export const PROTOCOL_VERSION = `hearth-agent/${AGENT_GENERATION}`;

/**
 * What this agent implements, reported by GET /runtime and GET /runtimes.
 * A capability is listed only when its routes exist and are tested.
 */
export const CAPABILITIES = [
  'exec',
  'exec.stream',
  'exec.input',
  'files',
  'files.stream',
  'files.move',
  'files.copy',
  'search',
  'transfer',
  'terminals',
  'watchers',
  'ws',
  'proxy',
  'workloads',
  'logs',
  'metrics',
] as const;

export type Capability = (typeof CAPABILITIES)[number];

/** The one runtime target this agent serves (RuntimeDiscovery.default_target). */
export const DEFAULT_TARGET = 'default';
