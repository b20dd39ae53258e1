/**
 * Where the microVM's artifacts live, inside the shared artifacts dir (see
 * src/host/images/paths.ts) under `vm/`, each keyed by a hash of its inputs:
 *
 *   vm/kernel/<package>_<version>/   boot/vmlinuz-*, lib/modules/*, kernel.json
 *   vm/initramfs/<key16>.cpio        Hearth's initramfs (busybox + modules + /init)
 *   vm/agent/<key16>.ext4            the agent drive + launcher as a read-only disk
 *   vm/base/<image>-<key16>.raw      an image's layers flattened into ext4, sized per disk_size_mb
 *   vm/templates/<key16>/            booted-and-snapshotted VMs (state + disk overlay)
 */
import path from 'node:path';
import { artifactsRoot } from '../../../images/paths.ts';

export interface VmPaths {
  root: string;
  kernels: string;
  initramfs: string;
  agent: string;
  base: string;
  templates: string;
  tmp: string;
}

export function vmPaths(artifactsDir?: string): VmPaths {
  const root = path.join(artifactsRoot(artifactsDir), 'vm');
  return {
    root,
    kernels: path.join(root, 'kernel'),
    initramfs: path.join(root, 'initramfs'),
    agent: path.join(root, 'agent'),
    base: path.join(root, 'base'),
    templates: path.join(root, 'templates'),
    // Same filesystem as the artifacts (atomic renames), apart from the image store's own tmp/.
    tmp: path.join(root, 'tmp'),
  };
}
