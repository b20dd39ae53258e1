/**
 * The agent's wire identity. hearthd reads `generation` from /health before
 * using a feature: a re-adopted workspace keeps its old agent drive, so the
 * host must adapt to an older guest (microsandbox's VERSIONING.md). Bump
 * AGENT_GENERATION only when the route surface or a body shape changes in a
 * way an older hearthd could not handle.
 */
export const AGENT_GENERATION = 2;
/*
 * Generations:
 *   1  exec, files, search, transfer, terminals, watchers, /ws, /proxy.
 *   2  + the internal workload, log and metrics API under /_hearth/ (hearthd
 *      serves /workspace/:id/workloads…, /logs…, /stats… from it).
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
