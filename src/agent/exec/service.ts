/**
 * The task registry: ids, retention (`ttl_seconds` after exit) and bulk
 * operations. Ids are small decimal strings, as the contract's examples show.
 */
import { AgentError, notFound } from '../../core/agent-protocol/errors.ts';
import type { ExecSpec } from './request.ts';
import { ExecTask } from './task.ts';

/** Upper bound on remembered tasks; the oldest finished ones go first. */
const MAX_TASKS = 1024;

export class ExecService {
  private readonly tasks = new Map<string, ExecTask>();
  private readonly expiry = new Map<string, NodeJS.Timeout>();
  private nextId = 1;

  start(spec: ExecSpec, keepStdin: boolean): ExecTask {
    this.makeRoom();
    const id = String(this.nextId++);
    const task = new ExecTask(id, spec, (t) => this.scheduleExpiry(t));
    this.tasks.set(id, task);
    task.start(keepStdin);
    return task;
  }

  get(id: string): ExecTask {
    const task = this.tasks.get(id);
    if (!task) throw notFound(`No exec task with id ${id}`, { task_id: id });
    return task;
  }

  list(): ExecTask[] {
    return [...this.tasks.values()];
  }

  /** Kill (if running) and forget. */
  remove(id: string, signal: NodeJS.Signals = 'SIGKILL'): void {
    const task = this.get(id);
    task.kill(signal);
    this.forget(id);
  }

  removeAll(): number {
    const n = this.tasks.size;
    for (const id of [...this.tasks.keys()]) this.remove(id);
    return n;
  }

  /** Agent shutdown: kill every process group we started. */
  shutdown(): void {
    for (const task of this.tasks.values()) task.kill('SIGKILL');
    for (const t of this.expiry.values()) clearTimeout(t);
    this.expiry.clear();
    this.tasks.clear();
  }

  private forget(id: string): void {
    this.tasks.delete(id);
    const t = this.expiry.get(id);
    if (t) clearTimeout(t);
    this.expiry.delete(id);
  }

  private scheduleExpiry(task: ExecTask): void {
    if (!this.tasks.has(task.id)) return;
    const timer = setTimeout(() => this.forget(task.id), task.spec.ttlSeconds * 1000);
    timer.unref();
    this.expiry.set(task.id, timer);
  }

  private makeRoom(): void {
    if (this.tasks.size < MAX_TASKS) return;
    for (const [id, task] of this.tasks) {
      if (task.finished) {
        this.forget(id);
        if (this.tasks.size < MAX_TASKS) return;
      }
    }
    throw new AgentError('limit_reached', `Too many running exec tasks (max ${MAX_TASKS}); kill some first`);
  }
}
