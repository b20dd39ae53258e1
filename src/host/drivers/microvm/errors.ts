/**
 * How the microVM driver fails: every error names the operation and the
 * stage it reached (LocalHost maps stages to provision failures), with a
 * hint where the operator can do something about it.
 */
import type { SandboxSpec } from '../driver.ts';

export type MicrovmStage = 'validate' | 'image' | 'disk' | 'network' | 'vmm' | 'agent';

export class MicrovmDriverError extends Error {
  constructor(readonly op: string, readonly stage: MicrovmStage, message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(`microvm ${op} (${stage}): ${message}`, options);
    this.name = 'MicrovmDriverError';
  }
}

export function validateSpec(spec: SandboxSpec): void {
  const bad = (m: string) => new MicrovmDriverError('run', 'validate', m);
  if (!(spec.cpus > 0)) throw bad(`cpus must be > 0 (got ${spec.cpus})`);
  if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 64) throw bad(`memoryMb must be an integer >= 64 (got ${spec.memoryMb})`);
  if (!Number.isInteger(spec.diskSizeMb) || spec.diskSizeMb < 256) throw bad(`diskSizeMb must be an integer >= 256 (got ${spec.diskSizeMb})`);
  if (!spec.image.layers.length) throw bad(`image ${spec.image.id} has no layers`);
  if (!spec.dir.startsWith('/')) throw bad(`spec.dir must be absolute (got ${spec.dir})`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(spec.hostname)) throw bad(`hostname ${JSON.stringify(spec.hostname)} is not a valid host name`);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(spec.workspaceId)) throw bad(`workspace id ${JSON.stringify(spec.workspaceId)}: use [A-Za-z0-9_.-], at most 64`);
}

export function hintFor(stage: MicrovmStage): string | undefined {
  switch (stage) {
    case 'image': return 'run `hearth setup` (as root): it fetches the guest kernel and builds the initramfs and disks';
    case 'network': return 'run `hearth doctor`: the bridge and nft table must exist (HostNetwork.ensure)';
    case 'vmm': return 'see qemu.log and console.log in the workspace directory';
    default: return undefined;
  }
}
