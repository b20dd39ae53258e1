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
  agentEndpoint(ws: Pick<SandboxRef, 'slotIndex'>) { return { ip: `10.99.0.${ws.slotIndex + 2}`, port: 9990 }; }
  async egressBytes() { return 0; }
  async listSandboxes() { return [...this.sandboxes.keys()].map((id) => ({ id, driver: 'container' as const })); }
  async close() {}
}
