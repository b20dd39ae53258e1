/**
 * Reply shapes of the contract (§3 WorkspaceData and friends). Routes call
 * these; nothing else builds a workspace object for the wire.
 */
import { publicStatus } from '../core/lifecycle.ts';
import { formatDuration } from '../core/duration.ts';
import type { Workspace } from '../control/workspace-row.ts';
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
