/**
 * Namespace bodies (§23) validated and normalized; limit decisions. Pure.
 */
import { ValidationFailed, LimitReached, Forbidden } from './errors.ts';
import { slugFromName, SLUG_RE } from './workspace-spec.ts';

export const NAMESPACE_TYPES = ['default', 'production', 'staging', 'development', 'testing'] as const;
export const NAMESPACE_STATUSES = ['active', 'inactive', 'suspended'] as const;
export type NamespaceStatus = (typeof NAMESPACE_STATUSES)[number];

/** §23.1 limits (null = no cap) plus Hearth's totals across the namespace. */
export interface ResourceLimits {
  max_workspaces: number | null;
  max_vcpus: number | null;
  max_ram_mb: number | null;
  max_disk_gb: number | null;
  max_total_vcpus: number | null;
  max_total_ram_mb: number | null;
}

export const LIMIT_KEYS: (keyof ResourceLimits)[] = ['max_workspaces', 'max_vcpus', 'max_ram_mb', 'max_disk_gb', 'max_total_vcpus', 'max_total_ram_mb'];

export function parseLimits(v: unknown, base: ResourceLimits | null = null): ResourceLimits | null {
  if (v === undefined) return base;
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new ValidationFailed('resource_limits', 'resource_limits must be an object');
  const out: ResourceLimits = { ...emptyLimits(), ...(base ?? {}) };
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (!LIMIT_KEYS.includes(k as keyof ResourceLimits)) throw new ValidationFailed(`resource_limits.${k}`, `unknown limit ${k}: use ${LIMIT_KEYS.join(', ')}`);
    if (val === null) { out[k as keyof ResourceLimits] = null; continue; }
    if (typeof val !== 'number' || !Number.isFinite(val) || val < 0) throw new ValidationFailed(`resource_limits.${k}`, `${k} must be a non-negative number or null`);
    out[k as keyof ResourceLimits] = val;
  }
  return out;
}

export function emptyLimits(): ResourceLimits {
  return { max_workspaces: null, max_vcpus: null, max_ram_mb: null, max_disk_gb: null, max_total_vcpus: null, max_total_ram_mb: null };
}

export function normalizeSlug(input: unknown, name: string): string {
  if (input !== undefined && input !== null) {
    if (typeof input !== 'string' || !SLUG_RE.test(input)) throw new ValidationFailed('slug', 'slug must be 3–128 characters of a-z, 0-9 and "-"');
    return input;
  }
  const derived = slugFromName(name);
  if (!derived) throw new ValidationFailed('name', `cannot derive a slug from name ${JSON.stringify(name)}: pass slug explicitly`);
  return derived;
}

export interface NamespaceUsageNow {
  workspaces: number;
  totalVcpus: number;
  totalRamMb: number;
}

/**
 * May a workspace of this size join (or, for a resize, stay in) the namespace?
 * `current` excludes the workspace itself when resizing. Throws LimitReached.
 */
export function checkLimits(limits: ResourceLimits | null, current: NamespaceUsageNow, ws: { cpus: number; memory_mb: number; disk_size_mb: number }, adding: boolean): void {
  if (!limits) return;
  const over = (what: string, cur: number, max: number) => { throw new LimitReached('namespace', `Namespace ${what} limit reached.`, cur, max); };
  if (adding && limits.max_workspaces !== null && current.workspaces + 1 > limits.max_workspaces) over('workspace', current.workspaces, limits.max_workspaces);
  if (limits.max_vcpus !== null && ws.cpus > limits.max_vcpus) over('per-workspace vCPU', ws.cpus, limits.max_vcpus);
  if (limits.max_ram_mb !== null && ws.memory_mb > limits.max_ram_mb) over('per-workspace memory', ws.memory_mb, limits.max_ram_mb);
  if (limits.max_disk_gb !== null && ws.disk_size_mb > limits.max_disk_gb * 1024) over('per-workspace disk', ws.disk_size_mb, limits.max_disk_gb * 1024);
  if (limits.max_total_vcpus !== null && current.totalVcpus + ws.cpus > limits.max_total_vcpus) over('total vCPU', current.totalVcpus, limits.max_total_vcpus);
  if (limits.max_total_ram_mb !== null && current.totalRamMb + ws.memory_mb > limits.max_total_ram_mb) over('total memory', current.totalRamMb, limits.max_total_ram_mb);
}

export function assertActive(status: string, slug: string): void {
  if (status === 'suspended') throw new Forbidden(`namespace ${slug} is suspended: activate it (namespaces.activate) before starting work`, 'namespace_suspended');
  if (status === 'inactive') throw new Forbidden(`namespace ${slug} is inactive`, 'namespace_suspended');
}

export const OVERDRAFT_ACTIONS = ['block', 'stop_workspaces'] as const;
export type OverdraftAction = (typeof OVERDRAFT_ACTIONS)[number];

/** `workspace_vm` (code examples) and `sandbox` (docs) name the same service (§23.4). */
export function normalizeService(s: unknown): string {
  if (typeof s !== 'string' || !s) throw new ValidationFailed('service', 'service is required (e.g. "workspace_vm")');
  return s === 'sandbox' ? 'workspace_vm' : s;
}

/** A quota is exceeded when usage passes limit + overdraft. */
export function quotaExceeded(q: { quota_limit: number | null; quota_used: number; overdraft: number; enabled: number }): boolean {
  return q.enabled === 1 && q.quota_limit !== null && q.quota_used > q.quota_limit + q.overdraft;
}
