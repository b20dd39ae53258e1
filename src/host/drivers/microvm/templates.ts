/**
 * What a template is on disk, and which ones can never be restored again.
 *
 * `vm/templates/<key16>/` holds `state.bin` (RAM + devices), `disk.qcow2`
 * (the overlay at snapshot time) and `template.json` (below). Templates are
 * a cache: deleting any of them is always safe (the next workspace of that
 * shape boots cold and a new one is built). `hearth images gc` removes the
 * ones no current key can ever name again — after an upgrade that is every
 * template of the previous agent drive, about 130 MB per image.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { duBytes } from '../../images/gc.ts';
import { vmPaths } from './boot-media/paths.ts';

/**
 * Part of every template key; bump it when templates must be rebuilt.
 * 3: written from a stopped VM (2 migrated a running one, see docs/parts/microvm.md).
 */
export const TEMPLATE_VERSION = 3;

export interface TemplateMeta {
  /** Absent from templates older than version 3. */
  version?: number;
  key: string;
  image: string;
  base: string;
  launch: { kernel: string; initrd: string; agentDisk: string };
}

/** The artifacts a template built today would use. */
export interface CurrentVmArtifacts {
  kernel: string;
  initrd: string;
  agentDisk: string;
}

/**
 * Pure: why the template in directory `name` can never be restored again, or
 * null when a current key may still name it (another image or shape).
 */
export function templateStaleReason(name: string, meta: TemplateMeta | null, current: CurrentVmArtifacts, baseExists: boolean): string | null {
  if (/\.bad\./.test(name)) return 'withdrawn after a failed restore';
  if (!meta) return 'unfinished or unreadable (no template.json)';
  if (meta.version !== TEMPLATE_VERSION) return `template version ${meta.version ?? '2 or older'}, current ${TEMPLATE_VERSION}`;
  if (meta.launch.agentDisk !== current.agentDisk) return 'built with another agent drive';
  if (meta.launch.initrd !== current.initrd) return 'built with another initramfs';
  if (meta.launch.kernel !== current.kernel) return 'built with another guest kernel';
  if (!baseExists) return 'its base disk is gone';
  return null;
}

export interface TemplateGcReport {
  removed: string[];
  kept: number;
  freedBytes: number;
}

/** Remove (or, with dryRun, list) every template `templateStaleReason` condemns. */
export async function collectStaleTemplates(o: { artifactsDir?: string; current: CurrentVmArtifacts; dryRun?: boolean; log?: (line: string) => void }): Promise<TemplateGcReport> {
  const dir = vmPaths(o.artifactsDir).templates;
  const report: TemplateGcReport = { removed: [], kept: 0, freedBytes: 0 };
  for (const name of (await fs.readdir(dir).catch(() => [] as string[])).sort()) {
    const tpl = path.join(dir, name);
    const meta = await fs.readFile(path.join(tpl, 'template.json'), 'utf8').then((t) => JSON.parse(t) as TemplateMeta, () => null);
    const baseExists = meta ? await fs.access(meta.base).then(() => true, () => false) : false;
    const reason = templateStaleReason(name, meta, o.current, baseExists);
    if (!reason) {
      report.kept++;
      continue;
    }
    report.freedBytes += await duBytes(tpl);
    report.removed.push(`template ${name}${meta ? ` of ${meta.image}` : ''}: ${reason}`);
    o.log?.(`${o.dryRun ? 'would remove' : 'remove'} template ${name} (${reason})`);
    if (!o.dryRun) await fs.rm(tpl, { recursive: true, force: true });
  }
  return report;
}
