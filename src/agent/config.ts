/** Agent configuration from the environment (set by hearthd in the workspace spec). */
import { AGENT_PORT } from '../core/agent-protocol.ts';
import { resolve } from 'node:path';

export interface AgentConfig {
  secret: string;
  port: number;
  host: string;
  workspaceId: string | undefined;
  /** The image's WorkingDir: the agent starts there, so exec without a cwd runs there (as `docker exec` does). */
  workdir: string | undefined;
  /** Started by a warm pool (HEARTH_AGENT_POOLED=1): it may be claimed once. */
  pooled: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function configFromEnv(env: NodeJS.ProcessEnv): AgentConfig {
  const secret = env.HEARTH_AGENT_SECRET;
  if (!secret) throw new ConfigError('HEARTH_AGENT_SECRET is required');
  const portText = env.HEARTH_AGENT_PORT ?? String(AGENT_PORT);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`HEARTH_AGENT_PORT is not a port: ${portText}`);
  return {
    secret,
    port,
    host: env.HEARTH_AGENT_HOST || '0.0.0.0',
    workspaceId: env.HEARTH_WORKSPACE_ID || undefined,
    workdir: env.HEARTH_WORKDIR || undefined,
    pooled: env.HEARTH_AGENT_POOLED === '1',
  };
}

/**
 * Enter the image's WorkingDir (the agent spawns in its own cwd, so exec
 * without a cwd runs there, as `docker exec` does). One that does not exist
 * (yet) leaves the agent at `/`.
 */
export function enterWorkdir(dir: string | undefined, log: (msg: string, fields?: Record<string, unknown>) => void): void {
  const target = resolve('/', dir ?? '/');
  try {
    process.chdir(target);
  } catch (err) {
    log('image working directory not usable, staying at /', { dir: target, error: (err as Error).message });
    process.chdir('/');
  }
}

/** Remove the agent's own variables so no child process can inherit them. */
export function scrubAgentEnv(env: NodeJS.ProcessEnv): void {
  for (const k of Object.keys(env)) if (k.startsWith('HEARTH_')) delete env[k];
}
