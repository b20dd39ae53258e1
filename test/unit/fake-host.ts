/**
 * A HostDriver that runs nothing: for in-process API tests only (fastify
 * inject, SQLite :memory:). It records calls so tests can assert what the
 * control plane asked of the host. The product never ships this.
 */
import type { HostDriver, SandboxRef } from '../../src/host/host-driver.ts';
import type { SandboxState } from '../../src/host/drivers/driver.ts';
import type { ImageCatalogEntry, ResolvedImage } from '../../src/host/images/types.ts';
import { ValidationFailed } from '../../src/core/errors.ts';

export class FakeHost implements HostDriver {
  readonly defaultDriver = 'container' as const;
  readonly slotCapacity = 64;
  readonly calls: string[] = [];
  readonly sandboxes = new Map<string, SandboxState>();
  startDelayMs = 0;
  failNextStart: string | null = null;

  async capabilities() {
    return [{ driver: 'container' as const, available: true, reason: 'fake' }];
  }
  async resolveImage(name: string): Promise<ResolvedImage> {
    if (name.startsWith('snapshot:')) {
      if (!this.snapshotsTaken?.has(name.slice('snapshot:'.length))) throw new ValidationFailed('image', `image ${JSON.stringify(name)} not found: there is no snapshot`);
      return { id: name, ref: name, layers: [], env: [], workingDir: '/', user: 'root', digest: 'sha256:1' };
    }
    if (!['debian-12', 'node-20', 'python-3.11'].includes(name)) throw new ValidationFailed('image', `unknown image ${JSON.stringify(name)}`);
    return { id: name, ref: `hearth/${name}`, layers: [], env: [], workingDir: '/root', user: 'root', digest: 'sha256:0' };
  }
  async catalog(): Promise<ImageCatalogEntry[]> {
    return [{ id: 'debian-12', image: 'hearth/debian:12', label: 'Debian 12', desc: 'Debian', category: 'os', aliases: [], versions: { debian: '12' }, available: true }];
  }
  async start(ws: SandboxRef) {
    this.calls.push(`start ${ws.id}`);
    if (this.startDelayMs) await new Promise((r) => setTimeout(r, this.startDelayMs));
    if (this.failNextStart) {
      const msg = this.failNextStart;
      this.failNextStart = null;
      const { ProvisionFailed } = await import('../../src/core/errors.ts');
      throw new ProvisionFailed({ stage: 'vmm', message: msg });
    }
    this.sandboxes.set(ws.id, 'running');
  }
  async stop(ws: SandboxRef) { this.calls.push(`stop ${ws.id}`); if (this.sandboxes.has(ws.id)) this.sandboxes.set(ws.id, 'stopped'); }
  async pause(ws: SandboxRef) { this.calls.push(`pause ${ws.id}`); this.sandboxes.set(ws.id, 'paused'); }
  async resume(ws: SandboxRef) { this.calls.push(`resume ${ws.id}`); this.sandboxes.set(ws.id, 'running'); }
  async destroy(ws: SandboxRef) { this.calls.push(`destroy ${ws.id}`); this.sandboxes.delete(ws.id); }
  async state(ws: SandboxRef) { return this.sandboxes.get(ws.id) ?? 'missing'; }
  async stats() { return null; }
  async applyNetwork(ws: SandboxRef) { this.calls.push(`network ${ws.id}`); }
  async resizeDisk(ws: SandboxRef) { this.calls.push(`resize-disk ${ws.id} ${ws.config.disk_size_mb}`); return 'grown' as const; }
  async syncNetwork(all: SandboxRef[]) { this.calls.push(`sync-network ${all.length}`); }
  /** Addresses the fake host "has" (for outbound IPs). */
  readonly hostAddresses = ['192.0.2.10', '192.0.2.11'];
  defaultOutboundIp: string | null = null;
  outboundIp(ws: Pick<SandboxRef, 'config'>) { return typeof ws.config.outbound_ip === 'string' ? ws.config.outbound_ip : this.defaultOutboundIp; }
  async checkOutboundIp(ip: string) {
    if (!this.hostAddresses.includes(ip)) throw new ValidationFailed('ip', `outbound ip ${ip} is not an address of this host`);
  }
  agentEndpoint(ws: Pick<SandboxRef, 'slotIndex'>) { return { ip: `10.99.0.${ws.slotIndex + 2}`, port: 9990 }; }
  async egressBytes() { return 0; }
  async listSandboxes() { return [...this.sandboxes.keys()].map((id) => ({ id, driver: 'container' as const })); }
  async removeOrphans(known: { ids: ReadonlySet<string>; slots: ReadonlySet<number> }) {
    const sandboxes = [...this.sandboxes.keys()].filter((id) => !known.ids.has(id));
    for (const id of sandboxes) {
      this.sandboxes.delete(id);
      this.calls.push(`remove orphan ${id}`);
    }
    return { sandboxes, dirs: [], slots: [], failed: [] };
  }
  // Images and snapshots: snapshots are kept in memory with the workspace id they came from.
  readonly snapshotsTaken = new Map<string, { workspace: string; state: SandboxState }>();
  async pullImage(name: string) { this.calls.push(`pull ${name}`); return this.resolveImage(name); }
  snapshotSupport() { return { filesystem: true, memory: false, reason: 'fake' }; }
  async snapshot(ws: SandboxRef, snapshotId: string, opts: { after: 'resume' | 'paused' | 'stop' }) {
    this.calls.push(`snapshot ${ws.id} ${snapshotId} ${opts.after}`);
    const state = this.sandboxes.get(ws.id) ?? 'stopped';
    this.snapshotsTaken.set(snapshotId, { workspace: ws.id, state });
    return {
      schema: 1 as const, id: snapshotId, workspace_id: ws.id, driver: ws.driver, format: 'fake', kinds: ['filesystem' as const], bytes: 42,
      image: ws.image, image_id: ws.image, image_digest: 'sha256:0', created_at: new Date().toISOString(), seconds: 0,
      state: opts.after === 'stop' && state === 'running' ? 'paused' as const : state,
    };
  }
  async restoreSnapshot(ws: SandboxRef, snapshotId: string) {
    this.calls.push(`restore ${ws.id} ${snapshotId}`);
    if (!this.snapshotsTaken.has(snapshotId)) throw new Error(`fake: no snapshot ${snapshotId}`);
    return { state: 'stopped' as const };
  }
  async deleteSnapshot(snapshotId: string) { this.calls.push(`delete-snapshot ${snapshotId}`); this.snapshotsTaken.delete(snapshotId); }
  readonly archiveFiles = new Set<string>();
  async exportSnapshot(snapshotId: string, name: { workspaceId: string; version: string }, filter: { include: string[]; exclude: string[] }) {
    this.calls.push(`export ${snapshotId} ${name.workspaceId}/${name.version} ${filter.include.join(',')}|${filter.exclude.join(',')}`);
    const file = `/fake/archives/${name.workspaceId}/${name.version}.tar.gz`;
    this.archiveFiles.add(file);
    return { file, bytes: 100, sha256: `sha256:${'f'.repeat(64)}`, entries: 3 };
  }
  async deleteArchiveFile(file: string) { this.calls.push(`delete-archive ${file}`); this.archiveFiles.delete(file); }
  async close() {}
}
