/**
 * The registry of workloads in this workspace: create/list/update/delete,
 * start/stop/restart, persistence of the definitions, and the boot pass
 * that brings back what should run. Requests only change the desired state
 * and the definition (persisted first); each Workload carries them out.
 */
import { accessSync, constants, rmSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AgentError, notFound, validation } from '../../core/agent-protocol/errors.ts';
import { resolveArgv } from '../exec/argv.ts';
import { baseChildEnv } from '../env.ts';
import { defaultShell } from '../shell.ts';
import { startsAtBoot } from './policy.ts';
import { applyUpdate, parseCreate, type WorkloadSpec } from '../../core/agent-protocol/workload-spec.ts';
import { WorkloadStateFile, type WorkloadRecord } from './state-file.ts';
import { lookupUser } from './user.ts';
import { defaultLogFile, Workload } from './workload.ts';

export interface SupervisorOptions {
  /** workloads.json path (inside the workspace: /var/lib/hearth/workloads.json). */
  stateFile: string;
  /** Directory of the default log files (inside the workspace: /var/log/hearth). */
  logDir: string;
  log(msg: string, fields?: Record<string, unknown>): void;
}

export interface ListFilter {
  states?: string[];
  name?: string;
  limit?: number;
}

/** Label that marks the workload running the workspace's `config.cmd` (the `cmd` log, spec §18). */
export const ROLE_LABEL = 'hearth.role';

function newId(): string {
  return `wl_${randomBytes(6).toString('hex')}`;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export class Supervisor {
  private readonly workloads = new Map<string, Workload>();
  private readonly state: WorkloadStateFile;
  private closed = false;

  constructor(private readonly opts: SupervisorOptions) {
    this.state = new WorkloadStateFile(opts.stateFile);
  }

  /** Load the definitions and start what should run (agent startup). */
  boot(): void {
    const { records, warnings } = this.state.load();
    for (const w of warnings) this.opts.log('workloads: state file problem', { warning: w });
    for (const rec of records) {
      const w = this.add(rec);
      if (startsAtBoot(w.spec, w.desired)) {
        this.opts.log('workloads: starting at boot', { id: w.id, name: w.spec.name, restart_policy: w.spec.restart_policy });
        w.start();
      } else if (w.desired === 'running') {
        w.reason = w.spec.enabled ? 'not started at boot: restart_policy is never' : 'not started at boot: enabled is false';
      }
    }
    if (records.length > 0) this.opts.log('workloads: loaded', { count: records.length, file: this.opts.stateFile });
  }

  private add(rec: WorkloadRecord): Workload {
    const w = new Workload(rec, this.opts.logDir, { log: this.opts.log });
    this.workloads.set(w.id, w);
    return w;
  }

  private persist(): void {
    try {
      this.state.save([...this.workloads.values()].map((w) => w.record()));
    } catch (err) {
      // The workloads still run; they just would not come back after a restart.
      this.opts.log('workloads: cannot persist definitions', { file: this.opts.stateFile, error: (err as Error).message });
    }
  }

  list(filter: ListFilter = {}): Workload[] {
    let out = [...this.workloads.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    if (filter.states?.length) out = out.filter((w) => filter.states!.includes(w.status));
    if (filter.name) out = out.filter((w) => w.spec.name === filter.name || w.spec.name.includes(filter.name!));
    if (filter.limit !== undefined) out = out.slice(0, filter.limit);
    return out;
  }

  /** By id, else by name (Openship addresses workloads by name, spec §13.1). */
  find(idOrName: string): Workload {
    const byId = this.workloads.get(idOrName);
    if (byId) return byId;
    for (const w of this.workloads.values()) if (w.spec.name === idOrName) return w;
    throw notFound(`workload ${JSON.stringify(idOrName)} not found`, { kind: 'workload', id: idOrName });
  }

  /** The workload running `config.cmd`, if any. */
  cmdWorkload(): Workload | undefined {
    for (const w of this.workloads.values()) if (w.spec.labels[ROLE_LABEL] === 'cmd') return w;
    return undefined;
  }

  private checkUnique(spec: WorkloadSpec, self: Workload | null): void {
    for (const w of this.workloads.values()) {
      if (w === self) continue;
      if (w.id === spec.id || w.spec.name === spec.id) throw new AgentError('already_exists', `a workload with id ${JSON.stringify(spec.id)} already exists`, { kind: 'workload', id: spec.id });
      if (w.spec.name === spec.name || w.id === spec.name) throw new AgentError('already_exists', `a workload named ${JSON.stringify(spec.name)} already exists`, { kind: 'workload', id: spec.name });
    }
  }

  /**
   * What can be known before starting: the user exists, the working
   * directory exists, and a direct command resolves to an executable
   * (a shell command is the shell's business).
   */
  private checkRunnable(spec: WorkloadSpec): void {
    if (spec.user) lookupUser(spec.user);
    const cwd = spec.working_dir ?? '/';
    let isDir = false;
    try { isDir = statSync(cwd).isDirectory(); } catch { /* reported below */ }
    if (!isDir) throw validation('working_dir', `working directory ${cwd} does not exist in the workspace (create it first, e.g. with files.mkdir)`);
    const argv = resolveArgv(spec.cmd, 'auto', defaultShell());
    if (argv.mode !== 'direct') return;
    const file = argv.file;
    if (file.includes('/')) {
      const path = isAbsolute(file) ? file : resolve(cwd, file);
      if (!isExecutableFile(path)) throw validation('cmd', `command not found or not executable: ${path}`);
      return;
    }
    const envPath = spec.env.find((e) => e.startsWith('PATH='))?.slice(5) ?? baseChildEnv().PATH ?? '';
    const found = envPath.split(delimiter).filter(Boolean).some((dir) => isExecutableFile(join(dir, file)));
    if (!found) throw validation('cmd', `command not found: ${file} (not in PATH ${envPath}); install it or give an absolute path`);
  }

  create(body: Record<string, unknown>): Workload {
    this.assertOpen();
    const spec = parseCreate(body, newId);
    this.checkUnique(spec, null);
    this.checkRunnable(spec);
    const at = new Date().toISOString();
    const w = this.add({ spec, desired: spec.enabled ? 'running' : 'stopped', created_at: at, updated_at: at });
    // The log of an earlier workload with the same id must not show through.
    if (!spec.log_path) w.logs.clear();
    this.persist();
    this.opts.log('workloads: created', { id: w.id, name: spec.name, cmd: spec.cmd });
    if (spec.enabled) w.start();
    return w;
  }

  async update(idOrName: string, body: Record<string, unknown>): Promise<{ workload: Workload; restarted: boolean }> {
    this.assertOpen();
    const w = this.find(idOrName);
    const { spec, restartNeeded } = applyUpdate(w.spec, body);
    this.checkUnique(spec, w);
    if (restartNeeded) this.checkRunnable(spec);
    w.setSpec(spec);
    this.persist();
    const restart = restartNeeded && w.active;
    if (restart) await w.restart();
    return { workload: w, restarted: restart };
  }

  start(idOrName: string): Workload {
    this.assertOpen();
    const w = this.find(idOrName);
    w.desired = 'running';
    this.persist();
    w.start();
    return w;
  }

  async stop(idOrName: string): Promise<Workload> {
    const w = this.find(idOrName);
    w.desired = 'stopped';
    this.persist();
    await w.stop();
    return w;
  }

  async restart(idOrName: string): Promise<Workload> {
    this.assertOpen();
    const w = this.find(idOrName);
    w.desired = 'running';
    this.persist();
    await w.restart();
    return w;
  }

  async remove(idOrName: string): Promise<Workload> {
    const w = this.find(idOrName);
    this.workloads.delete(w.id);
    this.persist();
    await w.stop();
    w.markRemoved();
    w.logs.close();
    // Its default log goes with it; a caller-chosen log_path is the caller's file.
    if (!w.spec.log_path) {
      const file = defaultLogFile(this.opts.logDir, w.id);
      rmSync(file, { force: true });
      rmSync(`${file}.1`, { force: true });
    }
    this.opts.log('workloads: deleted', { id: w.id, name: w.spec.name });
    return w;
  }

  async removeAll(): Promise<string[]> {
    const ids = [...this.workloads.keys()];
    await Promise.all(ids.map((id) => this.remove(id)));
    return ids;
  }

  /** Agent shutdown: stop every process (SIGTERM, SIGKILL after `graceMs`), keep the definitions. */
  async shutdown(graceMs = 2000): Promise<void> {
    this.closed = true;
    await Promise.all([...this.workloads.values()].map((w) => w.shutdown(graceMs)));
  }

  private assertOpen(): void {
    if (this.closed) throw new AgentError('conflict', 'the agent is shutting down');
  }
}
