/**
 * Workloads on the control-plane side: the agent client shared by the
 * workload, log and metrics routes, and the workloads a workspace is
 * created with (`config.workloads`, and `config.cmd` as the workload whose
 * output is the `cmd` log, spec §4.1, §18).
 *
 * The workloads themselves live in the guest agent (src/agent/workloads):
 * it supervises them, persists their definitions on the workspace's own
 * disk and brings them back at boot, so they survive hearthd restarts and
 * work the same on every driver. hearthd only forwards.
 */
import { WORKLOADS_PREFIX, type AgentEndpoint } from '../core/agent-protocol.ts';
import type { Logger } from 'pino';
import { AlreadyExists, ValidationFailed } from '../core/errors.ts';
import type { WorkspaceConfig } from '../core/workspace-spec.ts';
import { AgentError } from '../core/agent-protocol/errors.ts';
import { ID_RE, parseCreate, parseEnv } from '../core/agent-protocol/workload-spec.ts';
import { AgentClient } from './agent-client.ts';
import type { Workspace } from './workspaces/row.ts';

type Json = Record<string, unknown>;
type Endpoints = { agentEndpoint(ws: { slotIndex: number }): AgentEndpoint };

/** Label of the workload that runs `config.cmd` (the agent's ROLE_LABEL). */
const ROLE_LABEL = 'hearth.role';

const clients = new WeakMap<object, AgentClient>();

/** One client (one keep-alive pool) per host driver. */
export function agentClientFor(host: Endpoints): AgentClient {
  let c = clients.get(host);
  if (!c) {
    c = new AgentClient(host);
    clients.set(host, c);
  }
  return c;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The create bodies for a workspace's initial workloads (pure). Each gets a
 * stable id (its own, its name when that is a valid id, else `init-<n>`),
 * so applying them twice creates nothing twice. The workspace's `env` comes
 * first in every workload's environment, the workload's own on top.
 */
export function initialWorkloadBodies(config: Pick<WorkspaceConfig, 'env'> & Json): Json[] {
  const out: Json[] = [];
  const wsEnv = Array.isArray(config.env) ? (config.env as string[]) : [];
  const list = config.workloads;
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) throw new ValidationFailed('config.workloads', 'config.workloads must be a list of workload definitions ({ cmd, name?, env?, … })');
    list.forEach((item, i) => {
      if (!isObject(item)) throw new ValidationFailed(`config.workloads[${i}]`, 'each workload must be an object with at least cmd');
      const name = typeof item.name === 'string' ? item.name : undefined;
      const id = typeof item.id === 'string' ? item.id : name && ID_RE.test(name) ? name : `init-${i + 1}`;
      const own = convert(`config.workloads[${i}]`, () => parseEnv(item.env));
      out.push({ ...item, id, env: [...wsEnv, ...own] });
    });
  }
  const cmd = config.cmd;
  if (cmd !== undefined && cmd !== null && cmd !== '') {
    if (typeof cmd !== 'string' && !(Array.isArray(cmd) && cmd.every((a) => typeof a === 'string'))) {
      throw new ValidationFailed('config.cmd', 'config.cmd must be a command string or an argv list');
    }
    out.push({ id: 'cmd', name: 'cmd', cmd: typeof cmd === 'string' ? [cmd] : cmd, env: wsEnv, labels: { [ROLE_LABEL]: 'cmd' } });
  }
  return out;
}

function convert<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof AgentError) {
      const field = typeof err.details?.field === 'string' ? `${where}.${err.details.field}` : where;
      throw new ValidationFailed(field, `${where}: ${err.message}`);
    }
    throw err;
  }
}

/**
 * Check `config.workloads` / `config.cmd` at workspace creation, so a bad
 * definition is a 400 on the create call rather than a silent failure later.
 * (What depends on the workspace — does the command exist — is checked when
 * they are applied.)
 */
export function validateInitialWorkloads(config: Pick<WorkspaceConfig, 'env'> & Json): void {
  const seen = new Set<string>();
  initialWorkloadBodies(config).forEach((body, i) => {
    const spec = convert(`config.workloads[${i}]`, () => parseCreate(body, () => String(body.id)));
    for (const key of new Set([spec.id, spec.name])) {
      if (seen.has(key)) throw new ValidationFailed(`config.workloads[${i}]`, `two initial workloads are named ${JSON.stringify(key)}`);
      seen.add(key);
    }
  });
}

export interface AppliedWorkloads {
  created: string[];
  existing: string[];
  failed: { id: string; error: string }[];
}

/**
 * Create the workspace's initial workloads in its (running) agent. Call it
 * once per workspace, right after its first provisioning. Existing
 * workloads with the same id are left alone (so a repeated call creates
 * nothing twice), but a repeated call would re-create ones the user has
 * deleted meanwhile — hence once. Never throws: failures are returned (and
 * logged); the workspace itself is fine without them.
 */
export async function applyInitialWorkloads(host: Endpoints, ws: Workspace, log?: Logger, imageDefaults: Json[] = []): Promise<AppliedWorkloads> {
  const result: AppliedWorkloads = { created: [], existing: [], failed: [] };
  let bodies: Json[];
  try {
    bodies = [...initialWorkloadBodies(ws.config), ...imageDefaults];
  } catch (err) {
    result.failed.push({ id: 'config.workloads', error: (err as Error).message });
    return result;
  }
  if (bodies.length === 0) return result;
  const client = agentClientFor(host);
  for (const body of bodies) {
    const id = String(body.id);
    try {
      await client.call(ws, 'POST', WORKLOADS_PREFIX, body);
      result.created.push(id);
    } catch (err) {
      if (err instanceof AlreadyExists) result.existing.push(id);
      else result.failed.push({ id, error: (err as Error).message });
    }
  }
  if (result.failed.length) log?.warn({ workspace: ws.id, failed: result.failed }, 'some initial workloads could not be created');
  else log?.info({ workspace: ws.id, created: result.created }, 'initial workloads created');
  return result;
}
