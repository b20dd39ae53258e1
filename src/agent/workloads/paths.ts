/**
 * Where the agent keeps workload definitions and logs. Inside a workspace
 * (the agent runs from the agent drive at /.hearth) they live on the
 * workspace's own writable layer; anywhere else (tests, a bundle run on a
 * developer's machine) the caller must say, else startAgent uses a
 * temporary directory — the host's /var/lib/hearth belongs to hearthd.
 */
import { fileURLToPath } from 'node:url';

export const WORKSPACE_STATE_DIR = '/var/lib/hearth';
export const WORKSPACE_LOG_DIR = '/var/log/hearth';
export const WORKLOADS_FILE = 'workloads.json';

/** The dirs for an agent started from `entryUrl` (main.ts passes its import.meta.url). */
export function agentDataDirs(entryUrl: string): { stateDir: string; logDir: string } | Record<string, never> {
  let file: string;
  try {
    file = fileURLToPath(entryUrl);
  } catch {
    return {};
  }
  return file.startsWith('/.hearth/') ? { stateDir: WORKSPACE_STATE_DIR, logDir: WORKSPACE_LOG_DIR } : {};
}
