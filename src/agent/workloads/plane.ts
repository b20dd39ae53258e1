/**
 * Workloads, logs and metrics as one unit the agent server wires in: the
 * supervisor, the boot log, the guest metrics, their routes, their boot and
 * their shutdown. Keeps server.ts to three calls.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Handler } from '../http/context.ts';
import { AGENT_GENERATION } from '../../core/agent-protocol.ts';
import type { Router } from '../router.ts';
import { BootLog } from '../logs/boot.ts';
import { registerLogRoutes } from '../logs/routes.ts';
import { GuestMetrics } from '../metrics/guest.ts';
import { registerMetricsRoutes } from '../metrics/routes.ts';
import { WORKLOADS_FILE } from './paths.ts';
import { registerWorkloadRoutes } from './routes.ts';
import { Supervisor } from './supervisor.ts';

type Log = (msg: string, fields?: Record<string, unknown>) => void;

export interface WorkloadPlaneOptions {
  /** Where workloads.json lives; absent = a temporary directory removed at close. */
  stateDir?: string;
  /** Where boot.log and workload logs live; absent = the same temporary directory. */
  logDir?: string;
  log: Log;
}

export class WorkloadPlane {
  readonly boot: BootLog;
  readonly supervisor: Supervisor;
  readonly guest = new GuestMetrics();
  /** The agent's log: stderr (the caller's sink) and the boot log. */
  readonly log: Log;
  private readonly tmp: string | null;

  constructor(opts: WorkloadPlaneOptions) {
    this.tmp = opts.stateDir && opts.logDir ? null : mkdtempSync(join(tmpdir(), 'hearth-agent-'));
    const stateDir = opts.stateDir ?? this.tmp!;
    const logDir = opts.logDir ?? join(this.tmp ?? stateDir, 'log');
    this.boot = new BootLog(logDir);
    this.log = (msg, fields) => {
      opts.log(msg, fields);
      this.boot.record(msg, fields);
    };
    this.boot.record(`--- boot: hearth agent generation ${AGENT_GENERATION}, pid ${process.pid}, node ${process.version}`);
    this.supervisor = new Supervisor({ stateFile: join(stateDir, WORKLOADS_FILE), logDir, log: this.log });
  }

  register(router: Router<Handler>): void {
    registerWorkloadRoutes(router, { supervisor: this.supervisor, guest: this.guest });
    registerLogRoutes(router, { boot: this.boot, supervisor: this.supervisor });
    registerMetricsRoutes(router, this.guest);
  }

  /** Bring back the workloads that should run. */
  start(): void {
    this.supervisor.boot();
  }

  async close(): Promise<void> {
    await this.supervisor.shutdown();
    this.boot.store.close();
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
  }
}
