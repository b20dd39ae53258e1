/**
 * Guest agent entry point: `node /.hearth/agent.mjs` under tini, inside the
 * workspace. Reads its configuration, removes it from the environment (the
 * secret must never reach a user process), and serves until SIGTERM.
 */
import { ConfigError, configFromEnv, enterWorkdir, scrubAgentEnv } from './config.ts';
import { startAgent } from './server.ts';
import { agentDataDirs } from './workloads/paths.ts';

function log(msg: string, fields?: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), src: 'hearth-agent', msg, ...fields })}\n`);
}

async function main(): Promise<void> {
  let config;
  try {
    config = configFromEnv(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      log(err.message);
      process.exit(2);
    }
    throw err;
  }
  scrubAgentEnv(process.env);
  enterWorkdir(config.workdir, log);

  // The agent must keep serving: a bug in one request handler is logged, not fatal.
  process.on('uncaughtException', (err) => log('uncaught exception', { error: String(err?.stack ?? err) }));
  process.on('unhandledRejection', (err) => log('unhandled rejection', { error: String((err as Error)?.stack ?? err) }));

  // Inside a workspace, workloads and logs live on its writable layer (workloads/paths.ts).
  const agent = await startAgent({ ...config, log, ...agentDataDirs(import.meta.url) });
  log('listening', { url: agent.url, workspace_id: config.workspaceId, pid: process.pid });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log('stopping', { signal });
    void agent.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
