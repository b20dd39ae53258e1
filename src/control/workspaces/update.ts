/** Changing a workspace's name, slug and config: resizes pass namespace admission, new network lists pass reach, a live sandbox gets its new network policy at once, and a bigger disk_size_mb reaches the host (disks grow, never shrink). */
import type { WorkspaceTable } from '../../store/db.ts';
import { mergeConfig, validateSlug } from '../../core/workspace-spec.ts';
import { AlreadyExists, ValidationFailed } from '../../core/errors.ts';
import type { Principal } from '../../auth/principal.ts';
import { exclusive, type WorkspaceDeps } from './deps.ts';
import { find } from './queries.ts';
import { applyIfChanged, checkLists, NETWORK_LOCK } from './network.ts';
import { checkOutboundAllotment } from './host-facts.ts';
import { current, now, sandboxRef, type Workspace } from './row.ts';

/** How an update's resource changes took effect (resources routes report it). */
export interface ResizeOutcome {
  /** cpus/memory: 'applied' at once, 'next-start', or 'unchanged'. */
  compute: 'applied' | 'next-start' | 'unchanged';
  disk: 'grown' | 'next-start' | 'unchanged';
}

export async function update(d: WorkspaceDeps, p: Principal, idOrSlug: string, body: Record<string, unknown>, outcome?: ResizeOutcome): Promise<Workspace> {
  const found = await find(d, p, idOrSlug);
  // Names in network lists are checked, written and applied under the network lock (network.ts).
  return d.locks.run(found.id, () => exclusive(d, NETWORK_LOCK, async () => {
    const ws = await current(d, found.id);
    const set: Partial<WorkspaceTable> = { updated_at: now() };
    if (body.name !== undefined) {
      if (typeof body.name !== 'string' || body.name.length === 0 || body.name.length > 255) throw new ValidationFailed('name', 'name must be a string of 1–255 characters');
      set.name = body.name;
    }
    if (body.slug !== undefined) {
      if (body.slug === null) set.slug = null;
      else if (typeof body.slug !== 'string') throw new ValidationFailed('slug', 'slug must be a string or null');
      else {
        const slug = validateSlug(body.slug);
        const taken = await d.db.selectFrom('workspaces').select('id').where('slug', '=', slug).where('id', '!=', ws.id).executeTakeFirst();
        if (taken) throw new AlreadyExists('workspace slug', slug);
        set.slug = slug;
      }
    }
    let config = ws.config;
    if (body.config !== undefined) {
      if (typeof body.config !== 'object' || body.config === null || Array.isArray(body.config)) throw new ValidationFailed('config', 'config must be an object');
      config = mergeConfig(ws.config, body.config as Record<string, unknown>, d.opts.bounds);
      if (config.disk_size_mb < ws.config.disk_size_mb) {
        throw new ValidationFailed('disk_size_mb', `disk_size_mb cannot shrink (${ws.config.disk_size_mb} → ${config.disk_size_mb}): a workspace's disk only grows`, 'create a new workspace with the smaller disk and copy what you need into it');
      }
      const cfgIn = body.config as Record<string, unknown>;
      await checkLists(d, p, cfgIn.ingress !== undefined ? config.ingress : undefined, cfgIn.egress !== undefined ? config.egress : undefined);
      if (config.outbound_ip !== ws.config.outbound_ip) await checkOutboundAllotment(d, config.outbound_ip, { owner: ws.owner, namespace: ws.namespace, exceptId: ws.id });
      if (config.cpus !== ws.config.cpus || config.memory_mb !== ws.config.memory_mb || config.disk_size_mb !== ws.config.disk_size_mb) {
        await d.admission?.admitResize(ws.namespace, ws.id, config);
      }
      if (ws.mode === 'permanent' && config.ttl_seconds !== null) throw new ValidationFailed('ttl', 'a permanent workspace has no ttl: convert it with lifecycle.makeTemporary');
      set.config = JSON.stringify(config);
      if (config.ttl_seconds !== ws.config.ttl_seconds) {
        set.ttl_expires_at = config.ttl_seconds ? new Date(Date.now() + config.ttl_seconds * 1000).toISOString() : null;
      }
    }
    await d.db.updateTable('workspaces').set(set).where('id', '=', ws.id).execute();
    const updated = await current(d, ws.id);
    await applyIfChanged(d, ws.config, config, updated);
    // The disk grows now (online where the host allows it) or at the next start.
    const out: ResizeOutcome = { compute: 'unchanged', disk: 'unchanged' };
    if (config.disk_size_mb > ws.config.disk_size_mb) out.disk = d.host.resizeDisk && updated.slotIndex !== null ? await d.host.resizeDisk(sandboxRef(updated)) : 'next-start';
    // cpus and memory reach a running sandbox at once where the driver can (container cgroups).
    if (config.cpus !== ws.config.cpus || config.memory_mb !== ws.config.memory_mb) {
      const live = updated.slotIndex !== null && (updated.state === 'running' || updated.state === 'paused');
      out.compute = live && d.host.resizeLive ? await d.host.resizeLive(sandboxRef(updated)) : 'next-start';
    }
    if (outcome) Object.assign(outcome, out);
    return updated;
  }));
}
