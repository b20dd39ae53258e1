/**
 * Birth and death of a workspace: create (admission, then provisioning in
 * the background with a bounded wait so the answer can already say ready),
 * provisioning itself (provisioning → running | failed), and delete.
 */
import type { StopReason } from '../../core/lifecycle.ts';
import type { CreateRequest } from '../../core/workspace-spec.ts';
import { AlreadyExists, NotFound, ProvisionFailed } from '../../core/errors.ts';
import { canSeeWorkspace, type Principal } from '../../auth/principal.ts';
import { imageDefaultWorkload } from '../image-defaults.ts';
import { applyInitialWorkloads } from '../workloads.ts';
import type { WorkspaceDeps } from './deps.ts';
import { checkCreate, reserve } from './admission.ts';
import { deleteRowAndNames, reapplyIfStale } from './network.ts';
import { find } from './queries.ts';
import { byId, decodeWorkspace, now, sandboxRef, setProvisioning, transition, type Workspace } from './row.ts';

export async function create(d: WorkspaceDeps, p: Principal, req: CreateRequest): Promise<Workspace> {
  if (req.idempotencyKey) {
    const existing = await d.db.selectFrom('workspaces').selectAll()
      .where('owner', '=', p.clientId).where('idempotency_key', '=', req.idempotencyKey).executeTakeFirst();
    if (existing && existing.state !== 'deleted') return answerRetry(d, p, req.idempotencyKey, decodeWorkspace(existing));
  }
  // A namespace-bound caller may name only its own namespace (admission refuses others).
  const namespace = req.namespace ?? p.namespace;
  const { slug, driver, shape } = await checkCreate(d, p, req);
  const { ws, fresh } = await reserve(d, p, req, namespace, slug, driver, shape);
  // A retry with the same key that raced this one got there first: answered as a retry is.
  if (!fresh) return answerRetry(d, p, req.idempotencyKey!, ws);
  // After the take: this create's own demand refills the pool, it never competes for a sandbox with itself.
  if (shape) d.pool?.note(shape);
  d.log.info({ workspace: ws.id, image: ws.image, driver, slot: ws.slotIndex }, 'workspace created');
  startProvisioning(d, ws);
  return awaitFastPath(d, ws);
}

/**
 * Keys are unique per API key, and many namespace tokens share one key:
 * a retry is answered only with what this caller may see.
 */
function answerRetry(d: WorkspaceDeps, p: Principal, key: string, prior: Workspace): Promise<Workspace> {
  if (!canSeeWorkspace(p, prior)) throw new AlreadyExists('idempotency_key', key);
  return awaitFastPath(d, prior);
}

/** Wait (bounded) for provisioning so the create answer can already say ready:true. */
export async function awaitFastPath(d: WorkspaceDeps, ws: Workspace): Promise<Workspace> {
  const pending = d.inflight.get(ws.id);
  if (pending) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([pending.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, d.opts.fastPathMs); })]);
    clearTimeout(timer);
  }
  return (await byId(d, ws.id)) ?? ws;
}

/** Wait for an in-flight provisioning (tests, CLI). */
export async function settled(d: WorkspaceDeps, id: string): Promise<void> {
  await d.inflight.get(id)?.catch(() => undefined);
}

/** Wait for all in-flight provisioning (shutdown). */
export async function drain(d: WorkspaceDeps): Promise<void> {
  await Promise.allSettled([...d.inflight.values()]);
}

export function startProvisioning(d: WorkspaceDeps, ws: Workspace): void {
  const run = d.locks.run(ws.id, () => provision(d, ws.id));
  const tracked = run.finally(() => { if (d.inflight.get(ws.id) === tracked) d.inflight.delete(ws.id); });
  d.inflight.set(ws.id, tracked);
  tracked.catch(() => undefined);
}

/** provisioning → running | failed. Runs under the workspace lock. */
async function provision(d: WorkspaceDeps, id: string): Promise<void> {
  const ws = await byId(d, id);
  if (!ws || ws.state !== 'provisioning') return;
  const started = Date.now();
  await setProvisioning(d, ws, { state: 'running', phase: 'starting', message: 'starting the sandbox' });
  try {
    await startOrClaim(d, ws);
  } catch (err) {
    const failure = err instanceof ProvisionFailed ? err.failure : { stage: 'host' as const, message: err instanceof Error ? err.message : String(err) };
    d.log.error({ workspace: id, failure }, 'workspace failed to start');
    await d.host.stop(sandboxRef(ws)).catch((e) => d.log.warn({ workspace: id, err: e }, 'cleanup after failed start'));
    await reapplyIfStale(d, ws.config, id);
    await transition(d, ws, 'failed', {
      provisioning: {
        state: 'failed', phase: 'failed', message: failure.message,
        error: { code: 'CREATE_FAILED', message: failure.message, stage: failure.stage, ...(failure.hint ? { hint: failure.hint } : {}) },
      },
    });
    return;
  }
  // A delete may have removed a name from this workspace's lists while it started.
  await reapplyIfStale(d, ws.config, id);
  const latest = await byId(d, id);
  if (!latest || latest.state !== 'provisioning') return; // deleted meanwhile: the delete path cleans up
  const firstBoot = latest.generation === 1;
  const running = await transition(d, latest, 'running', {
    provisioning: { state: 'ready', phase: 'ready', message: 'workspace is ready', error: null, completed_at: now() },
  });
  // config.workloads / config.cmd are created once, on the first boot: the agent persists them after that.
  // Through the row as it is now: the agent client serves only a running workspace.
  // The image's ENTRYPOINT/CMD is the default workload unless config.cmd replaces it (image-defaults.ts).
  const image = firstBoot ? await d.host.resolveImage(running.image).catch(() => null) : null;
  const fromImage = image ? imageDefaultWorkload(image, running.config) : null;
  if (firstBoot && (Array.isArray(running.config.workloads) || running.config.cmd || fromImage)) await applyInitialWorkloads(d.host, running, d.log, fromImage ? [fromImage] : []);
  d.log.info({ workspace: id, ms: Date.now() - started }, 'workspace running');
}

/**
 * Start the workspace's sandbox, or, when its create took a pooled one,
 * apply the workspace's identity to that (HostDriver.claim). A claim that
 * fails falls back to a cold start on the same id, slot and disk.
 */
async function startOrClaim(d: WorkspaceDeps, ws: Workspace): Promise<void> {
  const pooled = d.pool?.claimOf(ws.id);
  if (!pooled || !d.host.claim) return d.host.start(sandboxRef(ws));
  try {
    await d.host.claim(sandboxRef(ws), pooled.secret);
  } catch (err) {
    d.log.warn({ workspace: ws.id, err }, 'claim of a pooled sandbox failed: starting it cold');
    await d.host.stop(sandboxRef(ws)).catch(() => undefined);
    await d.host.start(sandboxRef(ws));
  } finally {
    await d.pool!.release(ws.id);
  }
}

export async function remove(d: WorkspaceDeps, p: Principal | null, idOrSlug: string, reason: StopReason = 'request'): Promise<void> {
  const found = p ? await find(d, p, idOrSlug) : await byId(d, idOrSlug);
  if (!found) throw new NotFound('workspace', idOrSlug);
  await d.locks.run(found.id, async () => {
    const ws = await byId(d, found.id);
    if (!ws || ws.state === 'deleted') return;
    if (ws.state !== 'deleting') await transition(d, ws, 'deleting', ws.provisioning ? { provisioning: { phase: 'deleting' } } : {});
    await d.host.destroy(sandboxRef(ws));
    await d.meter?.accrue((await byId(d, ws.id)) ?? ws);
    // Resting before the row goes, so no create can take the slot in between; the rest counts from the delete.
    if (ws.slotIndex !== null) d.restingSlots.set(ws.slotIndex, Number.POSITIVE_INFINITY);
    // With the row, every other workspace's name of its address goes (network.ts): its slot's next holder inherits no trust.
    await deleteRowAndNames(d, ws).catch((err: unknown) => {
      if (ws.slotIndex !== null) d.restingSlots.delete(ws.slotIndex);
      throw err;
    });
    if (ws.slotIndex !== null) d.restingSlots.set(ws.slotIndex, Date.now() + d.opts.slotRestMs);
    d.log.info({ workspace: ws.id, reason }, 'workspace deleted');
  });
}
