/**
 * Workload definitions persisted inside the workspace (default
 * `/var/lib/hearth/workloads.json`, on the writable layer), so they outlive
 * the agent process and a workspace stop/start. What is stored is what the
 * caller asked for — the spec and whether it should run — never runtime
 * state (pids, counters): a booting agent derives that afresh.
 *
 * Written atomically and durably (temp file, fsync, rename, fsync of the
 * directory and its parent: a microVM killed hard right after a create must
 * not come back without the workload). A file that cannot be parsed is moved
 * aside, never silently overwritten.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { reviveSpec, type WorkloadSpec } from '../../core/agent-protocol/workload-spec.ts';

export const STATE_VERSION = 1;

export interface WorkloadRecord {
  spec: WorkloadSpec;
  desired: 'running' | 'stopped';
  created_at: string;
  updated_at: string;
}

export interface LoadResult {
  records: WorkloadRecord[];
  /** Problems found (unreadable file moved aside, entries skipped). */
  warnings: string[];
}

export class WorkloadStateFile {
  constructor(readonly path: string) {}

  load(): LoadResult {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], warnings: [] };
      return { records: [], warnings: [`cannot read ${this.path}: ${(err as Error).message}`] };
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      const aside = `${this.path}.corrupt-${Date.now()}`;
      try { renameSync(this.path, aside); } catch { /* keep going with nothing */ }
      return { records: [], warnings: [`${this.path} is not valid JSON (${(err as Error).message}); moved to ${aside}`] };
    }
    const list = (doc as { workloads?: unknown }).workloads;
    if (!Array.isArray(list)) return { records: [], warnings: [`${this.path} has no workloads list`] };
    const records: WorkloadRecord[] = [];
    const warnings: string[] = [];
    for (const raw of list) {
      const r = raw as Partial<Record<keyof WorkloadRecord, unknown>>;
      const spec = reviveSpec(r.spec);
      if (!spec) {
        warnings.push(`skipped an unreadable workload entry: ${JSON.stringify(raw).slice(0, 200)}`);
        continue;
      }
      const now = new Date().toISOString();
      records.push({
        spec,
        desired: r.desired === 'stopped' ? 'stopped' : 'running',
        created_at: typeof r.created_at === 'string' ? r.created_at : now,
        updated_at: typeof r.updated_at === 'string' ? r.updated_at : now,
      });
    }
    return { records, warnings };
  }

  save(records: WorkloadRecord[]): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify({ version: STATE_VERSION, workloads: records }, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    // The rename (and a directory made by the first save) is on disk only once the directories are.
    for (const dir of [dirname(this.path), dirname(dirname(this.path))]) fsyncDir(dir);
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch { /* a directory that cannot be synced (odd filesystems) leaves the file as durable as it was */ } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
