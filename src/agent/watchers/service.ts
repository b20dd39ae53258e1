/** Watcher registry (spec §22.7). Events go to the WS hub, never over HTTP. */
import { stat } from 'node:fs/promises';
import { AgentError, notFound } from '../../core/agent-protocol/errors.ts';
import { Watcher, type WatcherMessage } from './watcher.ts';

const MAX_WATCHERS = 64;

export class WatcherService {
  private readonly watchers = new Map<string, Watcher>();
  private nextId = 1;

  constructor(private readonly send: (msg: WatcherMessage) => void) {}

  async create(root: string, excludes: string[]): Promise<Watcher> {
    if (this.watchers.size >= MAX_WATCHERS) {
      throw new AgentError('limit_reached', `At most ${MAX_WATCHERS} watchers may exist; delete one first`);
    }
    const st = await stat(root);
    if (!st.isDirectory()) throw new AgentError('not_directory', `Not a directory: ${root}`, { path: root });
    const watcher = new Watcher(String(this.nextId++), root, excludes, this.send);
    this.watchers.set(watcher.id, watcher);
    await watcher.start();
    return watcher;
  }

  list(): Watcher[] {
    return [...this.watchers.values()];
  }

  get(id: string): Watcher {
    const w = this.watchers.get(id);
    if (!w) throw notFound(`No watcher with id ${id}`, { watcher_id: id });
    return w;
  }

  delete(id: string): void {
    this.get(id).stop();
    this.watchers.delete(id);
  }

  shutdown(): void {
    for (const w of this.watchers.values()) w.stop();
    this.watchers.clear();
  }
}
