/**
 * Reply shapes of the contract (§3 WorkspaceData and friends). Routes call
 * these; nothing else builds a workspace object for the wire.
 */
import { publicStatus } from '../core/lifecycle.ts';
import { formatDuration } from '../core/duration.ts';
import type { Workspace } from '../control/workspaces/row.ts';
import type { AgentEndpoint } from '../core/agent-protocol.ts';

export function workspaceView(ws: Workspace, endpoint: AgentEndpoint | null): Record<string, unknown> {
  const { ttl_seconds, ...config } = ws.config;
  const running = ws.state === 'running';
  const internalIp = endpoint?.ip ?? null;
  return {
    id: ws.id,
    name: ws.name,
    slug: ws.slug,
    status: publicStatus(ws.state),
    mode: ws.mode,
    image: ws.image,
    logo: typeof ws.config.logo === 'string' ? ws.config.logo : null,
    auto_stop_seconds: typeof ws.config.auto_stop_seconds === 'number' ? ws.config.auto_stop_seconds : null,
    namespace: ws.namespace,
    driver: ws.driver,
    ready: running && (ws.provisioning === null || ws.provisioning.state === 'ready'),
    provisioning: ws.provisioning,
    info: {
      status: publicStatus(ws.state),
      is_running: running,
      user_requested_stop: ws.userRequestedStop,
      internal_ip: internalIp,
    },
    ip: internalIp,
    lifecycle: {
      ttl: ws.config.ttl,
      ttl_seconds,
      ttl_human: ttl_seconds ? formatDuration(ttl_seconds) : null,
      ttl_action: ws.config.ttl_action,
      remove_on_exit: ws.config.remove_on_exit,
      restart_policy: ws.config.restart_policy,
      ttl_expires_at: ws.ttlExpiresAt,
    },
    resources: { cpus: ws.config.cpus, memory_mb: ws.config.memory_mb, disk_size_mb: ws.config.disk_size_mb },
    config,
    created_at: ws.createdAt,
    updated_at: ws.updatedAt,
  };
}

/** What a redacted value reads as. */
export const REDACTED = '[redacted]';

/**
 * A reply for a caller without the runtime grant: every `env` in it (a
 * workspace's `config.env`, `config.workloads[].env`, a workload's `env`)
 * keeps its variable names and loses its values, which read `[redacted]`.
 * Env is where workspaces keep secrets; reading them is the runtime grant's
 * (as reading logs is). Every other field passes unchanged. Pure: returns a
 * copy, never touches its input.
 */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = k === 'env' ? redactEnv(v) : redactSecrets(v);
  return out;
}

/** The contract's three env forms (§29.4): `["K=V"]`, `{ K: "V" }`, `[{ key, value }]`. */
function redactEnv(env: unknown): unknown {
  if (Array.isArray(env)) {
    return env.map((e) => {
      if (typeof e === 'string') {
        const eq = e.indexOf('=');
        return eq < 0 ? e : `${e.slice(0, eq)}=${REDACTED}`;
      }
      if (typeof e === 'object' && e !== null && !Array.isArray(e)) return { ...e, value: REDACTED };
      return REDACTED;
    });
  }
  if (typeof env === 'object' && env !== null) return Object.fromEntries(Object.keys(env).map((k) => [k, REDACTED]));
  return env === undefined || env === null ? env : REDACTED;
}
