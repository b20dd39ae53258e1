/**
 * Turns a create/update body of the contract (§4.1) into a validated,
 * normalized workspace configuration. Pure: no I/O, exhaustively unit-tested.
 * Unknown config keys are kept (the contract forwards them) but never trusted.
 */
import { parseDuration } from './duration.ts';
import { ValidationFailed } from './errors.ts';

export type WorkspaceMode = 'permanent' | 'temporary';
export type TtlAction = 'stop' | 'pause' | 'suspend' | 'remove';
const TTL_ACTIONS: readonly TtlAction[] = ['stop', 'pause', 'suspend', 'remove'];

/** Server-side bounds; every limit is enforced here, never trusted from clients. */
export interface ResourceBounds {
  maxCpus: number;
  maxMemoryMb: number;
  maxDiskMb: number;
  /** Shortest idle `suspend_after` (default DEFAULT_MIN_IDLE_SECONDS; `hearth serve --min-idle-seconds`). */
  minIdleSeconds?: number;
}

export const DEFAULT_BOUNDS: ResourceBounds = { maxCpus: 16, maxMemoryMb: 65536, maxDiskMb: 1_048_576 };

/** pids_limit bounds: below 64 a shell and the agent cannot start; above 65536 the cgroup guards nothing. */
export const MIN_PIDS_LIMIT = 64;
export const MAX_PIDS_LIMIT = 65536;
/** Idle sleep: `suspend_after` is at least this many seconds unless the operator lowers it; `stop_after` at least an hour. */
export const DEFAULT_MIN_IDLE_SECONDS = 120;
export const MIN_IDLE_STOP_SECONDS = 3600;

export interface IdleConfig {
  suspend_after: number;
  stop_after: number;
}

/**
 * The idle policy (`PUT /workspace/:id/lifecycle/idle`, or `config.idle` on
 * create and update): null (off), or durations in seconds within bounds.
 * The same parser serves every path, so none of them can skip the bounds.
 */
export function parseIdle(v: unknown, minSuspendSeconds = DEFAULT_MIN_IDLE_SECONDS): IdleConfig | null {
  if (v === undefined || v === null || v === false) return null;
  if (!isObject(v)) throw new ValidationFailed('idle', 'idle must be an object { suspend_after, stop_after? } or null');
  const seconds = (k: string, min: number) => {
    const x = v[k];
    if (x === undefined || x === null || x === 0 || x === '0') return 0;
    const n = parseDuration(x);
    if (n < min) throw new ValidationFailed(`idle.${k}`, `${k} must be 0 (off) or at least ${min} seconds`);
    return n;
  };
  const suspendAfter = seconds('suspend_after', minSuspendSeconds);
  if (!suspendAfter) return null;
  return { suspend_after: suspendAfter, stop_after: seconds('stop_after', MIN_IDLE_STOP_SECONDS) };
}
export const DEFAULT_RESOURCES = { cpus: 1, memory_mb: 512, disk_size_mb: 4096 } as const;
export const MIN_MEMORY_MB = 64;
export const MIN_DISK_MB = 256;

/** The normalized config stored with every workspace and echoed as `config`. */
export interface WorkspaceConfig {
  cpus: number;
  memory_mb: number;
  disk_size_mb: number;
  ttl: string | number | null;
  ttl_seconds: number | null;
  ttl_action: TtlAction;
  remove_on_exit: boolean;
  allow_internet: boolean;
  ingress: string[];
  egress: string[];
  env: string[];
  restart_policy: string | null;
  [extra: string]: unknown;
}

export interface CreateRequest {
  name: string | null;
  slug: string | null;
  image: string;
  namespace: string | null;
  mode: WorkspaceMode;
  idempotencyKey: string | null;
  config: WorkspaceConfig;
  driver: 'container' | 'microvm' | null;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(body: Json, key: string, max: number): string | null {
  const v = body[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new ValidationFailed(key, `${key} must be a string`);
  if (v.length > max) throw new ValidationFailed(key, `${key} is longer than ${max} characters`);
  return v;
}

function number(field: string, v: unknown, min: number, max: number, integer: boolean): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new ValidationFailed(field, `${field} must be a number`);
  if (integer && !Number.isInteger(n)) throw new ValidationFailed(field, `${field} must be a whole number`);
  if (n < min || n > max) throw new ValidationFailed(field, `${field} must be between ${min} and ${max} (got ${n})`);
  return n;
}

function bool(field: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'boolean') return v;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ValidationFailed(field, `${field} must be true or false`);
}

function stringList(field: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ValidationFailed(field, `${field} must be a list of strings`);
  return [...new Set(v as string[])];
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Ingress sources: IPv4 addresses or CIDRs. */
export function validateIngress(list: string[]): string[] {
  for (const s of list) {
    const [ip, p] = s.split('/');
    if (!IPV4.test(ip ?? '') || (p !== undefined && !(Number(p) >= 0 && Number(p) <= 32 && /^\d+$/.test(p)))) {
      throw new ValidationFailed('ingress', `ingress entry ${JSON.stringify(s)} is not an IPv4 address or CIDR`);
    }
  }
  return list;
}

/** Egress destinations: IPv4 addresses, CIDRs or hostnames. */
export function validateEgress(list: string[]): string[] {
  for (const s of list) {
    const [ip, p] = s.split('/');
    const isCidr = IPV4.test(ip ?? '') && (p === undefined || (/^\d+$/.test(p) && Number(p) <= 32));
    if (!isCidr && !HOSTNAME.test(s)) throw new ValidationFailed('egress', `egress entry ${JSON.stringify(s)} is not an IPv4 address, CIDR or hostname`);
  }
  return list;
}

/** `base` with `over` on top (`K=V` lists): a key of `over` replaces the same key of `base`. */
export function overlayEnv(base: readonly string[], over: readonly string[]): string[] {
  const key = (e: string) => {
    const i = e.indexOf('=');
    return i < 0 ? e : e.slice(0, i);
  };
  const replaced = new Set(over.map(key));
  return [...base.filter((e) => !replaced.has(key(e))), ...over];
}

/** `env` as `K=V` strings, `{key,value}` objects, or an object map — all become `K=V`. */
export function normalizeEnv(v: unknown, field = 'env'): string[] {
  if (v === undefined || v === null) return [];
  const out: string[] = [];
  const push = (k: string, val: unknown) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ValidationFailed(field, `${field} name ${JSON.stringify(k)} is not a valid variable name`);
    out.push(`${k}=${val === undefined || val === null ? '' : String(val)}`);
  };
  if (Array.isArray(v)) {
    for (const item of v) {
      if (typeof item === 'string') {
        const eq = item.indexOf('=');
        if (eq <= 0) throw new ValidationFailed(field, `${field} entry ${JSON.stringify(item)} must look like KEY=value`);
        push(item.slice(0, eq), item.slice(eq + 1));
      } else if (isObject(item) && typeof item.key === 'string') {
        push(item.key, item.value);
      } else {
        throw new ValidationFailed(field, `${field} entries must be "KEY=value" strings or {key, value} objects`);
      }
    }
    return out;
  }
  if (isObject(v)) {
    for (const [k, val] of Object.entries(v)) push(k, val);
    return out;
  }
  throw new ValidationFailed(field, `${field} must be a list of "KEY=value" strings or an object`);
}

export const SLUG_RE = /^[a-z0-9]([a-z0-9-]{1,126}[a-z0-9])$/;
/** Words that collide with static routes under /workspace (§1.6). */
export const RESERVED_SLUGS = new Set(['quota', 'estimate', 'images', 'usage', 'activity']);

export function validateSlug(slug: string): string {
  if (!SLUG_RE.test(slug)) throw new ValidationFailed('slug', `slug ${JSON.stringify(slug)} must be 3–128 characters of a-z, 0-9 and "-", not starting or ending with "-"`);
  if (RESERVED_SLUGS.has(slug) || slug.startsWith('ws_')) throw new ValidationFailed('slug', `slug ${JSON.stringify(slug)} is reserved`);
  return slug;
}

/** A slug derived from a name: lowercase, dashes, trimmed. Null when nothing usable remains. */
export function slugFromName(name: string): string | null {
  const s = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100);
  return SLUG_RE.test(s) && !RESERVED_SLUGS.has(s) ? s : null;
}

/** Apply resource fields and config keys of `input` on top of `base` (create: base = defaults; update: base = current). */
export function mergeConfig(base: WorkspaceConfig, input: Json, bounds: ResourceBounds): WorkspaceConfig {
  const cfg: WorkspaceConfig = { ...base };
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue;
    switch (k) {
      case 'cpus': cfg.cpus = number('cpus', v, 0.25, bounds.maxCpus, false); break;
      case 'memory_mb': cfg.memory_mb = number('memory_mb', v, MIN_MEMORY_MB, bounds.maxMemoryMb, true); break;
      case 'disk_size_mb': cfg.disk_size_mb = number('disk_size_mb', v, MIN_DISK_MB, bounds.maxDiskMb, true); break;
      case 'ttl':
        if (v === null || v === 0 || v === '') { cfg.ttl = null; cfg.ttl_seconds = null; }
        else { cfg.ttl_seconds = parseDuration(v); cfg.ttl = v as string | number; }
        break;
      case 'ttl_action':
        if (!TTL_ACTIONS.includes(v as TtlAction)) throw new ValidationFailed('ttl_action', `ttl_action must be one of ${TTL_ACTIONS.join(', ')}`);
        cfg.ttl_action = v as TtlAction;
        break;
      case 'remove_on_exit': cfg.remove_on_exit = bool(k, v, false); break;
      case 'allow_internet': cfg.allow_internet = bool(k, v, true); break;
      case 'network_config':
        if (!isObject(v)) throw new ValidationFailed(k, 'network_config must be an object');
        if (v.allow_internet !== undefined) cfg.allow_internet = bool('network_config.allow_internet', v.allow_internet, true);
        cfg.network_config = v;
        break;
      case 'ingress': cfg.ingress = validateIngress(stringList(k, v)); break;
      case 'egress': cfg.egress = validateEgress(stringList(k, v)); break;
      case 'env': cfg.env = normalizeEnv(v); break;
      case 'pids_limit': cfg.pids_limit = number(k, v, MIN_PIDS_LIMIT, MAX_PIDS_LIMIT, true); break;
      case 'idle': cfg.idle = parseIdle(v, bounds.minIdleSeconds); break;
      case 'outbound_ip':
        // Whether the host owns it is the host's answer, checked by the service before anything is saved.
        if (v !== null && v !== '' && !(typeof v === 'string' && IPV4.test(v))) throw new ValidationFailed(k, 'outbound_ip must be an IPv4 address of this host, or null');
        cfg.outbound_ip = v === '' ? null : v;
        break;
      case 'allow_ptrace': cfg.allow_ptrace = bool(k, v, false); break;
      case 'restart_policy':
        if (v !== null && typeof v !== 'string') throw new ValidationFailed(k, 'restart_policy must be a string');
        cfg.restart_policy = v as string | null;
        break;
      default:
        cfg[k] = v;
    }
  }
  return cfg;
}

export function defaultConfig(): WorkspaceConfig {
  return {
    ...DEFAULT_RESOURCES, ttl: null, ttl_seconds: null, ttl_action: 'stop', remove_on_exit: false,
    allow_internet: true, ingress: [], egress: [], env: [], restart_policy: null,
  };
}

/** Parse the POST /workspace body (§4.1). */
export function parseCreateRequest(body: unknown, bounds: ResourceBounds = DEFAULT_BOUNDS): CreateRequest {
  if (!isObject(body)) throw new ValidationFailed('body', 'request body must be a JSON object');
  const image = body.image;
  if (typeof image !== 'string' || image.trim() === '') {
    throw new ValidationFailed('image', 'image is required', 'list images with GET /workspace/images (client.workspaces.images.list())');
  }
  if (body.config !== undefined && !isObject(body.config)) throw new ValidationFailed('config', 'config must be an object');
  const input: Json = { ...(body.config as Json | undefined) };
  // MCP sends vcpus/ram_mb/disk_mb at top level; top-level cpus etc. are accepted too.
  const aliases: [string, string][] = [['vcpus', 'cpus'], ['ram_mb', 'memory_mb'], ['disk_mb', 'disk_size_mb'], ['cpus', 'cpus'], ['memory_mb', 'memory_mb'], ['disk_size_mb', 'disk_size_mb']];
  for (const [top, key] of aliases) if (body[top] !== undefined && input[key] === undefined) input[key] = body[top];
  delete input.wait_ready;
  const config = mergeConfig(defaultConfig(), input, bounds);

  let mode: WorkspaceMode;
  if (body.mode === undefined || body.mode === null) mode = config.ttl_seconds !== null ? 'temporary' : 'permanent';
  else if (body.mode === 'permanent' || body.mode === 'temporary') mode = body.mode;
  else throw new ValidationFailed('mode', 'mode must be "permanent" or "temporary"');
  if (mode === 'permanent' && config.ttl_seconds !== null) throw new ValidationFailed('ttl', 'a permanent workspace has no ttl: drop config.ttl or use mode "temporary"');

  const name = optString(body, 'name', 255);
  const slugIn = optString(body, 'slug', 128);
  const slug = slugIn !== null ? validateSlug(slugIn) : null;
  const driver = body.driver ?? config.driver;
  if (driver !== undefined && driver !== null && driver !== 'container' && driver !== 'microvm' && driver !== 'auto') {
    throw new ValidationFailed('driver', 'driver must be "container", "microvm" or "auto"');
  }
  return {
    name, slug, image: image.trim(),
    namespace: optString(body, 'namespace', 128),
    mode,
    idempotencyKey: optString(body, 'idempotency_key', 255),
    config,
    driver: driver === 'container' || driver === 'microvm' ? driver : null,
  };
}
