/**
 * A workload's definition (spec §13.1) parsed from a create or update body.
 * Pure: no I/O, and in core/ so the agent (which supervises workloads) and
 * hearthd (which checks `config.workloads` at workspace creation) share it.
 * What depends on the workspace (does the command exist, does the user
 * exist) is checked by the supervisor at create time.
 *
 * Tolerated as the contract says: `command` (string or array) for `cmd`;
 * `env` as `["K=V"]`, `{ K: "V" }` or `[{ key, value }]`; `restart_policy`
 * aliases `no` and `unless-stopped`; CLI values as strings ("3", "true");
 * unknown keys (`image`, `port`, `keep_logs`, …) are ignored.
 */
import { AgentError, validation } from './errors.ts';
import { boolParam, secondsParam, stringParam } from './params.ts';

export type RestartPolicy = 'never' | 'on-failure' | 'always';

export interface WorkloadSpec {
  id: string;
  name: string;
  cmd: string[];
  /** `K=V` entries in the order given; later duplicates replace earlier ones. */
  env: string[];
  working_dir: string | null;
  user: string | null;
  restart_policy: RestartPolicy;
  /** Restarts allowed after an explicit start; 0 = unlimited. */
  max_restarts: number;
  /** Seconds before the first restart (the back-off base). */
  restart_delay: number;
  /** Double the delay after each quick failure (capped, see policy.ts). */
  restart_backoff: boolean;
  /** Seconds between SIGTERM and SIGKILL on stop (extension). */
  stop_timeout: number;
  /** Where output is kept; null = `<logDir>/workload-<id>.log`. */
  log_path: string | null;
  /** Cap of the current log file in MiB; one rotated file of the same size is kept. */
  max_log_size_mb: number;
  /** Recorded, not acted on (see docs/parts/workloads-logs-metrics.md). */
  vm_on_exit: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Start at creation and at boot. */
  enabled: boolean;
}

export const DEFAULTS = {
  restart_policy: 'on-failure' as RestartPolicy,
  max_restarts: 0,
  restart_delay: 1,
  restart_backoff: true,
  stop_timeout: 10,
  max_log_size_mb: 10,
};

/** Words that are routes under /workloads, so never ids or names (spec §1.6). */
const RESERVED = new Set(['stats', 'stream']);
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_CMD_ARGS = 4096;
const MAX_ARG_CHARS = 128 * 1024;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseCmd(v: unknown, field = 'cmd'): string[] {
  if (typeof v === 'string') {
    if (v.trim().length === 0) throw validation(field, `${field} must not be empty`);
    return [v];
  }
  if (!Array.isArray(v) || v.length === 0) throw validation(field, `${field} is required: a non-empty array of strings (argv), e.g. ["node", "server.js"]`);
  if (v.length > MAX_CMD_ARGS) throw validation(field, `${field} has more than ${MAX_CMD_ARGS} arguments`);
  if (!v.every((a) => typeof a === 'string')) throw validation(field, `${field} must be an array of strings`);
  if ((v[0] as string).trim().length === 0) throw validation(field, `${field}[0] must not be empty`);
  for (const a of v as string[]) {
    if (a.includes('\0')) throw validation(field, `${field} must not contain NUL bytes`);
    if (a.length > MAX_ARG_CHARS) throw validation(field, `${field} has an argument longer than ${MAX_ARG_CHARS} characters`);
  }
  return [...(v as string[])];
}

/** The three env forms of the contract (§29.4) → `K=V` strings. */
export function parseEnv(v: unknown, field = 'env'): string[] {
  if (v === undefined || v === null) return [];
  const out = new Map<string, string>();
  const put = (k: string, val: unknown): void => {
    if (!ENV_NAME.test(k)) throw validation(field, `${field}: ${JSON.stringify(k)} is not a valid variable name`);
    if (val !== null && val !== undefined && typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') {
      throw validation(field, `${field}.${k} must be a string`);
    }
    const s = val === null || val === undefined ? '' : String(val);
    if (s.includes('\0')) throw validation(field, `${field}.${k} must not contain NUL bytes`);
    if (k.startsWith('HEARTH_')) throw validation(field, `${field}: HEARTH_* variables are reserved for the agent`);
    out.delete(k);
    out.set(k, s);
  };
  if (Array.isArray(v)) {
    for (const item of v) {
      if (typeof item === 'string') {
        const eq = item.indexOf('=');
        if (eq <= 0) throw validation(field, `${field} entry ${JSON.stringify(item)} must look like KEY=value`);
        put(item.slice(0, eq), item.slice(eq + 1));
      } else if (isObject(item) && typeof item.key === 'string') {
        put(item.key, item.value);
      } else {
        throw validation(field, `${field} entries must be "KEY=value" strings or { key, value } objects`);
      }
    }
  } else if (isObject(v)) {
    for (const [k, val] of Object.entries(v)) put(k, val);
  } else {
    throw validation(field, `${field} must be an object ({ "PORT": "3000" }) or a list of "KEY=value" strings`);
  }
  return [...out].map(([k, val]) => `${k}=${val}`);
}

export function parsePolicy(v: unknown): RestartPolicy | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw validation('restart_policy', 'restart_policy must be a string');
  switch (v.trim().toLowerCase()) {
    case 'never': case 'no': return 'never';
    case 'on-failure': case 'on_failure': case 'onfailure': return 'on-failure';
    case 'always': case 'unless-stopped': return 'always';
    default: throw validation('restart_policy', "restart_policy must be one of 'never', 'on-failure', 'always'");
  }
}

function parseId(v: unknown): string | undefined {
  const s = stringParam(v, 'id');
  if (s === undefined || s === '') return undefined;
  if (!ID_RE.test(s) || RESERVED.has(s)) throw validation('id', `id ${JSON.stringify(s)} must be 1–64 characters of letters, digits, "_", "." and "-" (and not "stats")`);
  return s;
}

function parseName(v: unknown): string | undefined {
  const s = stringParam(v, 'name');
  if (s === undefined) return undefined;
  const t = s.trim();
  if (t.length === 0 || t.length > 128) throw validation('name', 'name must be 1–128 characters');
  // Names are usable as :wid in URLs the SDK builds without encoding (spec §1.3).
  if (/[/\\?#%\s\p{Cc}]/u.test(t)) throw validation('name', 'name must not contain spaces, "/", "\\", "?", "#", "%" or control characters');
  if (RESERVED.has(t)) throw validation('name', `name ${JSON.stringify(t)} is reserved`);
  return t;
}

function parsePath(v: unknown, field: string): string | null | undefined {
  if (v === null) return null;
  const s = stringParam(v, field);
  if (s === undefined) return undefined;
  if (s === '') return null;
  if (!s.startsWith('/')) throw validation(field, `${field} must be an absolute path`);
  if (s.includes('\0')) throw validation(field, `${field} must not contain NUL bytes`);
  return s;
}

function parseUser(v: unknown): string | null | undefined {
  if (v === null) return null;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return String(v);
  const s = stringParam(v, 'user');
  if (s === undefined) return undefined;
  if (s.trim() === '') return null;
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(s.trim())) {
    throw validation('user', 'user must be a name or uid, optionally with ":group" (e.g. "node", "1000:1000")');
  }
  return s.trim();
}

function parseCount(v: unknown, field: string, max: number): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > max) throw validation(field, `${field} must be a whole number between 0 and ${max}`);
  return n;
}

function parseMb(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0.001 || n > 1024) throw validation('max_log_size_mb', 'max_log_size_mb must be a number between 0.001 and 1024');
  return n;
}

function parseStringMap(v: unknown, field: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw validation(field, `${field} must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') throw validation(field, `${field}.${k} must be a string`);
    out[k] = String(val);
  }
  return out;
}

function parseVmOnExit(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (v !== '' && v !== 'pause' && v !== 'stop' && v !== 'exit') throw validation('vm_on_exit', "vm_on_exit must be one of 'pause', 'stop', 'exit', ''");
  return v;
}

function checkTarget(v: unknown): void {
  if (v === undefined || v === null || v === '' || v === 'default') return;
  throw new AgentError('validation_error', `unknown runtime target ${JSON.stringify(v)}: this workspace has only "default"`, { field: 'target' });
}

/** Fields an update may change, parsed; absent keys stay undefined. */
function parseMutable(body: Json): Partial<WorkloadSpec> {
  const out: Partial<WorkloadSpec> = {};
  const cmdIn = body.cmd ?? body.command;
  if (cmdIn !== undefined && cmdIn !== null) out.cmd = parseCmd(cmdIn, body.cmd !== undefined ? 'cmd' : 'command');
  if (body.env !== undefined) out.env = parseEnv(body.env);
  const wd = parsePath(body.working_dir ?? body.cwd, 'working_dir');
  if (wd !== undefined) out.working_dir = wd;
  const user = parseUser(body.user);
  if (user !== undefined) out.user = user;
  const name = parseName(body.name);
  if (name !== undefined) out.name = name;
  const policy = parsePolicy(body.restart_policy);
  if (policy !== undefined) out.restart_policy = policy;
  const max = parseCount(body.max_restarts, 'max_restarts', 1_000_000);
  if (max !== undefined) out.max_restarts = max;
  const delay = secondsParam(body.restart_delay, 'restart_delay', 3600);
  if (delay !== undefined) out.restart_delay = delay;
  const backoff = boolParam(body.restart_backoff, 'restart_backoff');
  if (backoff !== undefined) out.restart_backoff = backoff;
  const stopTimeout = secondsParam(body.stop_timeout, 'stop_timeout', 300);
  if (stopTimeout !== undefined) out.stop_timeout = stopTimeout;
  const logPath = parsePath(body.log_path, 'log_path');
  if (logPath !== undefined) out.log_path = logPath;
  const mb = parseMb(body.max_log_size_mb);
  if (mb !== undefined) out.max_log_size_mb = mb;
  const vmOnExit = parseVmOnExit(body.vm_on_exit);
  if (vmOnExit !== undefined) out.vm_on_exit = vmOnExit;
  const labels = parseStringMap(body.labels, 'labels');
  if (labels) out.labels = labels;
  const annotations = parseStringMap(body.annotations, 'annotations');
  if (annotations) out.annotations = annotations;
  const enabled = boolParam(body.enabled ?? body.auto_start, body.enabled !== undefined ? 'enabled' : 'auto_start');
  if (enabled !== undefined) out.enabled = enabled;
  checkTarget(body.target);
  return out;
}

/** A create body → a full spec. `newId` supplies an id when the caller gave none. */
export function parseCreate(body: Json, newId: () => string): WorkloadSpec {
  if ((body.cmd ?? body.command) === undefined || (body.cmd ?? body.command) === null) {
    throw validation('cmd', 'cmd is required: a non-empty array of strings (argv), e.g. ["node", "server.js"]');
  }
  const m = parseMutable(body);
  const id = parseId(body.id) ?? newId();
  return {
    id,
    name: m.name ?? id,
    cmd: m.cmd as string[],
    env: m.env ?? [],
    working_dir: m.working_dir ?? null,
    user: m.user ?? null,
    restart_policy: m.restart_policy ?? DEFAULTS.restart_policy,
    max_restarts: m.max_restarts ?? DEFAULTS.max_restarts,
    restart_delay: m.restart_delay ?? DEFAULTS.restart_delay,
    restart_backoff: m.restart_backoff ?? DEFAULTS.restart_backoff,
    stop_timeout: m.stop_timeout ?? DEFAULTS.stop_timeout,
    log_path: m.log_path ?? null,
    max_log_size_mb: m.max_log_size_mb ?? DEFAULTS.max_log_size_mb,
    vm_on_exit: m.vm_on_exit ?? '',
    labels: m.labels ?? {},
    annotations: m.annotations ?? {},
    enabled: m.enabled ?? true,
  };
}

/** The fields whose change only takes effect in a new process. */
const PROCESS_FIELDS = ['cmd', 'env', 'working_dir', 'user', 'log_path'] as const;

/**
 * An update (PUT or PATCH: both merge the given fields — the SDK's update
 * params are partial too) → the new spec and whether a running process
 * must be restarted for it to apply.
 */
export function applyUpdate(spec: WorkloadSpec, body: Json): { spec: WorkloadSpec; restartNeeded: boolean } {
  if (body.id !== undefined && body.id !== spec.id) throw validation('id', 'a workload id cannot be changed');
  const m = parseMutable(body);
  const next: WorkloadSpec = { ...spec, ...m };
  const restartNeeded = PROCESS_FIELDS.some((k) => JSON.stringify(next[k]) !== JSON.stringify(spec[k]));
  return { spec: next, restartNeeded };
}

/** A spec read back from the state file: trusted shape, but re-checked field by field. */
export function reviveSpec(raw: unknown): WorkloadSpec | null {
  if (!isObject(raw) || typeof raw.id !== 'string') return null;
  try {
    const spec = parseCreate(raw, () => raw.id as string);
    return { ...spec, id: raw.id };
  } catch {
    return null;
  }
}
