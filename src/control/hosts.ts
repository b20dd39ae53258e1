/**
 * The hosts of one store (issue 19): registration with capacity, the
 * heartbeat, drain, and the view the admin endpoint and `hearth hosts`
 * show — health derived from the heartbeat's age, load from the workspaces
 * placed on each host. `placementView` turns the same rows into the values
 * core/placement.ts decides over. Rows are the truth: nothing here is
 * cached, so every API node on a PostgreSQL store sees the same hosts.
 */
import type { Db, HostTable } from '../store/db.ts';
import { LimitReached, NotFound, ValidationFailed } from '../core/errors.ts';
import { DEFAULT_DOWN_AFTER_MS, DEFAULT_OVERCOMMIT, freeOf, isDown, type HostStatus, type HostView, type Overcommit, type Resources } from '../core/placement.ts';

export interface HostRegistration {
  name: string;
  role: 'both' | 'host';
  address: string | null;
  capacity: Resources;
  overcommit?: Overcommit;
  drivers: string[];
  images: string[];
  version: string | null;
}

export interface HostReport {
  name: string;
  role: string;
  address: string | null;
  status: HostStatus;
  health: 'up' | 'down';
  heartbeat_at: string;
  heartbeat_age_ms: number;
  registered_at: string;
  version: string | null;
  capacity: { cpus: number; memory_mb: number; disk_mb: number };
  overcommit: Overcommit;
  drivers: string[];
  images: string[];
  load: { workspaces: number; running: number; cpus: number; memory_mb: number; disk_mb: number };
  free: { cpus: number; memory_mb: number; disk_mb: number };
}

/** Host names are labels in logs, URLs and future certificates: keep them DNS-label-like. */
export function validateHostName(name: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
    throw new ValidationFailed('name', `host name ${JSON.stringify(name)} must be 1–63 lower-case letters, digits or '-', not starting or ending with '-'`);
  }
  return name;
}

const num = (v: unknown, dflt: number) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : dflt);

/** What a workspace's stored config allocates (the fields a create always fills). */
function allocation(configJson: string): Resources {
  const c = JSON.parse(configJson) as Record<string, unknown>;
  return { cpus: num(c.cpus, 0), memoryMb: num(c.memory_mb, 0), diskMb: num(c.disk_size_mb, 0) };
}

interface Load {
  workspaces: number;
  running: number;
  allocated: Resources;
  namespaces: Record<string, number>;
}

export class HostsService {
  constructor(private readonly db: Db, private readonly downAfterMs = DEFAULT_DOWN_AFTER_MS) {}

  /** Insert or refresh a host's row; a draining host that restarts stays draining. */
  async register(r: HostRegistration, at = new Date()): Promise<void> {
    validateHostName(r.name);
    const o = r.overcommit ?? DEFAULT_OVERCOMMIT;
    const now = at.toISOString();
    const facts = {
      role: r.role, address: r.address, cpus: Math.floor(r.capacity.cpus), memory_mb: Math.floor(r.capacity.memoryMb), disk_mb: Math.floor(r.capacity.diskMb),
      cpu_overcommit: o.cpu, memory_overcommit: o.memory, disk_overcommit: o.disk,
      drivers: JSON.stringify(r.drivers), images: JSON.stringify(r.images), version: r.version, heartbeat_at: now,
    };
    await this.db.insertInto('hosts').values({ name: r.name, status: 'active', registered_at: now, ...facts })
      .onConflict((oc) => oc.column('name').doUpdateSet(facts)).execute();
  }

  /** Workspaces from before hosts existed belong to the first host that registers (a single-host store). */
  async adoptUnplaced(name: string): Promise<number> {
    const res = await this.db.updateTable('workspaces').set({ host_name: name }).where('host_name', 'is', null).executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  async heartbeat(name: string, images?: string[], at = new Date()): Promise<void> {
    const res = await this.db.updateTable('hosts').set({ heartbeat_at: at.toISOString(), ...(images ? { images: JSON.stringify(images) } : {}) })
      .where('name', '=', name).executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new NotFound('host', name);
  }

  /** A create may place on `name` unless it is draining (a host not registered yet takes creates, as before hosts). */
  async assertAccepts(name: string): Promise<void> {
    const h = await this.db.selectFrom('hosts').select('status').where('name', '=', name).executeTakeFirst();
    if (h?.status === 'draining') throw new LimitReached('sandbox', `host ${name} is draining: it takes no new workspaces (undrain it with hearth hosts undrain ${name})`, 0, 0);
  }

  /** Draining: no new placements on the host; what runs there keeps running. */
  async setDraining(name: string, draining: boolean): Promise<HostReport> {
    const res = await this.db.updateTable('hosts').set({ status: draining ? 'draining' : 'active' }).where('name', '=', name).executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new NotFound('host', name);
    return (await this.list()).find((h) => h.name === name)!;
  }

  private async loads(): Promise<Map<string, Load>> {
    const out = new Map<string, Load>();
    const rows = await this.db.selectFrom('workspaces').select(['host_name', 'namespace', 'state', 'config']).where('state', 'not in', ['deleting', 'deleted']).execute();
    for (const r of rows) {
      if (!r.host_name) continue;
      const l = out.get(r.host_name) ?? { workspaces: 0, running: 0, allocated: { cpus: 0, memoryMb: 0, diskMb: 0 }, namespaces: {} };
      const a = allocation(r.config);
      l.workspaces++;
      if (r.state === 'running' || r.state === 'provisioning') l.running++;
      l.allocated = { cpus: l.allocated.cpus + a.cpus, memoryMb: l.allocated.memoryMb + a.memoryMb, diskMb: l.allocated.diskMb + a.diskMb };
      l.namespaces[r.namespace ?? ''] = (l.namespaces[r.namespace ?? ''] ?? 0) + 1;
      out.set(r.host_name, l);
    }
    return out;
  }

  /** The hosts as core/placement.ts sees them. */
  async placementView(): Promise<HostView[]> {
    const loads = await this.loads();
    return (await this.rows()).map((h) => view(h, loads.get(h.name)));
  }

  async list(now = Date.now()): Promise<HostReport[]> {
    const loads = await this.loads();
    return (await this.rows()).map((h) => {
      const l = loads.get(h.name);
      const v = view(h, l);
      const free = freeOf(v);
      const hb = Date.parse(h.heartbeat_at);
      return {
        name: h.name, role: h.role, address: h.address, status: v.status, health: isDown(v, now, this.downAfterMs) ? 'down' : 'up',
        heartbeat_at: h.heartbeat_at, heartbeat_age_ms: Math.max(0, now - hb), registered_at: h.registered_at, version: h.version,
        capacity: { cpus: h.cpus, memory_mb: h.memory_mb, disk_mb: h.disk_mb }, overcommit: v.overcommit,
        drivers: [...v.drivers], images: [...v.images],
        load: { workspaces: l?.workspaces ?? 0, running: l?.running ?? 0, cpus: v.allocated.cpus, memory_mb: v.allocated.memoryMb, disk_mb: v.allocated.diskMb },
        free: { cpus: free.cpus, memory_mb: free.memoryMb, disk_mb: free.diskMb },
      };
    });
  }

  private rows(): Promise<HostTable[]> {
    return this.db.selectFrom('hosts').selectAll().orderBy('name').execute();
  }
}

function view(h: HostTable, l: Load | undefined): HostView {
  return {
    name: h.name, status: h.status === 'draining' ? 'draining' : 'active', heartbeatAt: Date.parse(h.heartbeat_at),
    capacity: { cpus: h.cpus, memoryMb: h.memory_mb, diskMb: h.disk_mb },
    overcommit: { cpu: h.cpu_overcommit, memory: h.memory_overcommit, disk: h.disk_overcommit },
    drivers: JSON.parse(h.drivers) as string[], images: JSON.parse(h.images) as string[],
    allocated: l?.allocated ?? { cpus: 0, memoryMb: 0, diskMb: 0 }, namespaces: l?.namespaces ?? {},
  };
}
