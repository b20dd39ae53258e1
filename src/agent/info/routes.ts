/** Health, RuntimeInfo and discovery (spec §22.2). */
import { cpus, arch, homedir, platform, release } from 'node:os';
import type { Handler } from '../http/context.ts';
import { AGENT_ROUTES, AGENT_GENERATION, CAPABILITIES, DEFAULT_TARGET, PROTOCOL_VERSION, type HealthBody } from '../../core/agent-protocol.ts';
import type { Router } from '../router.ts';
import { defaultShell } from '../shell.ts';

export interface InfoContext {
  workspaceId: string | undefined;
  startedAt: number;
}

function runtimeInfo(): Record<string, unknown> {
  return {
    os: platform(),
    kernel: release(),
    arch: arch(),
    cpus: cpus().length,
    home: process.env.HOME ?? homedir(),
    shell: defaultShell(),
    protocol_version: PROTOCOL_VERSION,
    generation: AGENT_GENERATION,
    capabilities: [...CAPABILITIES],
    node_version: process.version,
  };
}

export function registerInfoRoutes(router: Router<Handler>, ctx: InfoContext): void {
  router.add('GET', AGENT_ROUTES.health, (): HealthBody => ({
    status: 'ok',
    success: true,
    generation: AGENT_GENERATION,
    workspace_id: ctx.workspaceId ?? null,
    uptime_ms: Date.now() - ctx.startedAt,
  }));

  router.add('GET', '/runtime', () => ({ success: true, ...runtimeInfo() }));

  router.add('GET', '/runtimes', () => ({
    success: true,
    version: PROTOCOL_VERSION,
    capabilities: [...CAPABILITIES],
    default_target: DEFAULT_TARGET,
    aliases: {},
    targets: [{
      id: DEFAULT_TARGET,
      local: true,
      available: true,
      version: PROTOCOL_VERSION,
      capabilities: [...CAPABILITIES],
      runtime: runtimeInfo(),
    }],
  }));
}
