/**
 * Placement: which host a new workspace goes to. Pure: it sees hosts as
 * values (capacity, what they already carry, what they can run, whether
 * they heartbeat) and returns a choice or, for every host, why not.
 *
 * A host is excluded when it
 *   - is draining (its operator asked for no new placements),
 *   - is down (no heartbeat for `downAfterMs`),
 *   - cannot run the driver asked for,
 *   - or would go past its capacity × overcommit in vCPUs, memory or disk.
 * Among the rest the order is, first difference wins:
 *   1. spread: fewest workspaces of the same namespace (one host failing
 *      takes down as little of one customer as possible);
 *   2. locality: a host that already has the image (no pull, no unpack);
 *   3. load: the lowest fraction of its allowance in use after placing
 *      (the largest of the cpu, memory and disk fractions);
 *   4. name, so equal hosts always give the same answer.
 * `exclude` names hosts a create already failed on, so a retry goes elsewhere.
 */

export interface Resources {
  cpus: number;
  memoryMb: number;
  diskMb: number;
}

/** How far a host's allocations may exceed its hardware, per resource (1 = not at all). */
export interface Overcommit {
  cpu: number;
  memory: number;
  disk: number;
}

/**
 * vCPUs are time-shared, so several per core is ordinary; memory and disk
 * are committed to a microVM or a disk image and are not overcommitted
 * unless the operator says so.
 */
export const DEFAULT_OVERCOMMIT: Overcommit = { cpu: 4, memory: 1, disk: 1 };

/** A host that has not heartbeat for this long is down. */
export const DEFAULT_DOWN_AFTER_MS = 30_000;

export type HostStatus = 'active' | 'draining';

export interface HostView {
  name: string;
  status: HostStatus;
  /** When it last heartbeat (ms since the epoch). */
  heartbeatAt: number;
  capacity: Resources;
  overcommit: Overcommit;
  drivers: readonly string[];
  images: readonly string[];
  /** What the workspaces placed on it take (every live state holds its allocation: a stopped one may start again). */
  allocated: Resources;
  /** Its workspaces per namespace (null namespace under ''). */
  namespaces: Readonly<Record<string, number>>;
}

export interface PlacementRequest extends Resources {
  driver: string;
  image: string;
  namespace: string | null;
}

export type Refusal = 'draining' | 'down' | 'driver' | 'cpus' | 'memory' | 'disk' | 'excluded';

export type Placement =
  | { host: string; reasons: Record<string, Refusal> }
  | { host: null; reasons: Record<string, Refusal> };

export interface PlacementOptions {
  now: number;
  downAfterMs?: number;
  /** Hosts not to use (a create failed there). */
  exclude?: ReadonlySet<string>;
}

export function isDown(h: Pick<HostView, 'heartbeatAt'>, now: number, downAfterMs = DEFAULT_DOWN_AFTER_MS): boolean {
  return now - h.heartbeatAt > downAfterMs;
}

/** What `h` may still take of each resource (capacity × overcommit − allocated), never below 0. */
export function freeOf(h: Pick<HostView, 'capacity' | 'overcommit' | 'allocated'>): Resources {
  return {
    cpus: Math.max(0, h.capacity.cpus * h.overcommit.cpu - h.allocated.cpus),
    memoryMb: Math.max(0, h.capacity.memoryMb * h.overcommit.memory - h.allocated.memoryMb),
    diskMb: Math.max(0, h.capacity.diskMb * h.overcommit.disk - h.allocated.diskMb),
  };
}

/** Fraction of the allowance in use after adding `add`: the largest of the three resources. */
export function loadAfter(h: Pick<HostView, 'capacity' | 'overcommit' | 'allocated'>, add: Resources): number {
  const frac = (used: number, cap: number, over: number) => (cap * over > 0 ? used / (cap * over) : Number.POSITIVE_INFINITY);
  return Math.max(
    frac(h.allocated.cpus + add.cpus, h.capacity.cpus, h.overcommit.cpu),
    frac(h.allocated.memoryMb + add.memoryMb, h.capacity.memoryMb, h.overcommit.memory),
    frac(h.allocated.diskMb + add.diskMb, h.capacity.diskMb, h.overcommit.disk),
  );
}

/** Why `h` cannot take `req`, or null when it can. */
export function refusal(h: HostView, req: PlacementRequest, opts: PlacementOptions): Refusal | null {
  if (opts.exclude?.has(h.name)) return 'excluded';
  if (h.status === 'draining') return 'draining';
  if (isDown(h, opts.now, opts.downAfterMs)) return 'down';
  if (!h.drivers.includes(req.driver)) return 'driver';
  const free = freeOf(h);
  if (req.cpus > free.cpus) return 'cpus';
  if (req.memoryMb > free.memoryMb) return 'memory';
  if (req.diskMb > free.diskMb) return 'disk';
  return null;
}

export function place(req: PlacementRequest, hosts: readonly HostView[], opts: PlacementOptions): Placement {
  const reasons: Record<string, Refusal> = {};
  const fit: HostView[] = [];
  for (const h of hosts) {
    const why = refusal(h, req, opts);
    if (why) reasons[h.name] = why;
    else fit.push(h);
  }
  if (!fit.length) return { host: null, reasons };
  const ns = req.namespace ?? '';
  const key = (h: HostView) => [h.namespaces[ns] ?? 0, h.images.includes(req.image) ? 0 : 1, loadAfter(h, req)] as const;
  fit.sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
  return { host: fit[0]!.name, reasons };
}
