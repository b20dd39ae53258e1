/**
 * One recursive watcher (spec §22.7). Built from one non-recursive
 * fs.watch (inotify) per directory rather than `fs.watch(…, {recursive})`,
 * so excluded trees (node_modules, .git) are never watched at all and do
 * not eat the inotify budget. New directories are picked up as they
 * appear; removed ones are released.
 *
 * Events are coalesced for a short window (an editor save is several
 * inotify events) and rate-limited; when events are dropped the client is
 * told with an `overflow` message, as the contract asks.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { excludedWithAncestors, GlobSet } from '../files/glob.ts';
import { relativeTo } from '../files/paths.ts';
import { walk } from '../files/walk.ts';

export type WatchOp = 'create' | 'write' | 'remove' | 'rename' | 'unknown';

export type WatcherMessage =
  | { channel: 'watcher'; type: 'ready'; watcher_id: string; root: string; dirs: number }
  | { channel: 'watcher'; type: 'change'; watcher_id: string; path: string; op: WatchOp }
  | { channel: 'watcher'; type: 'overflow'; watcher_id: string; message: string };

export const MAX_DIRS = 20_000;
const COALESCE_MS = 40;
const RATE_WINDOW_MS = 1000;
const MAX_EVENTS_PER_WINDOW = 5000;

export class Watcher {
  readonly createdAt = new Date();
  active = true;
  private readonly dirs = new Map<string, FSWatcher>();
  private readonly exclude: GlobSet;
  private pending = new Map<string, WatchOp>();
  private flushTimer: NodeJS.Timeout | undefined;
  private windowStart = 0;
  private windowCount = 0;
  private overflowed = false;
  private limitReported = false;

  constructor(
    readonly id: string,
    readonly root: string,
    readonly excludes: string[],
    private readonly send: (msg: WatcherMessage) => void,
  ) {
    this.exclude = new GlobSet(excludes);
  }

  get dirCount(): number {
    return this.dirs.size;
  }

  /** Watch the whole tree; resolves once every directory is watched. */
  async start(): Promise<void> {
    this.watchDir(this.root);
    await this.addTree(this.root, false);
  }

  /** Emit `ready` (after the create reply, so clients see the watcher first). */
  announce(): void {
    if (this.active) this.send({ channel: 'watcher', type: 'ready', watcher_id: this.id, root: this.root, dirs: this.dirs.size });
  }

  stop(): void {
    this.active = false;
    for (const w of this.dirs.values()) w.close();
    this.dirs.clear();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.pending.clear();
  }

  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      root: this.root,
      dir_count: this.dirs.size,
      excludes: this.excludes,
      active: this.active,
      created_at: this.createdAt.toISOString(),
    };
  }

  private excluded(path: string, isDir: boolean): boolean {
    return excludedWithAncestors(this.exclude, relativeTo(this.root, path), isDir);
  }

  /** Walk `dir` and watch every directory below it; `announce` emits create events for what is found. */
  private async addTree(dir: string, announce: boolean): Promise<void> {
    try {
      for await (const item of walk(dir, { maxDepth: Infinity, includeHidden: true })) {
        if (!this.active) return;
        const isDir = item.kind === 'directory';
        if (this.excluded(item.path, isDir)) continue;
        if (announce) this.queue(item.path, 'create');
        if (isDir) this.watchDir(item.path);
      }
    } catch {
      /* the directory vanished while we walked it */
    }
  }

  private watchDir(dir: string): void {
    if (!this.active || this.dirs.has(dir)) return;
    if (this.dirs.size >= MAX_DIRS) {
      this.reportLimit(`directory limit reached (${MAX_DIRS}); changes below ${dir} and other new directories are not watched`);
      return;
    }
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: false }, (eventType, filename) => this.onFsEvent(dir, eventType, filename));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EMFILE') {
        this.reportLimit(`cannot watch ${dir}: the system's inotify watch limit is exhausted (${code}); raise fs.inotify.max_user_watches or exclude large trees`);
      }
      return;
    }
    w.on('error', () => this.unwatch(dir));
    this.dirs.set(dir, w);
  }

  private unwatch(prefix: string): void {
    for (const [dir, w] of this.dirs) {
      if (dir === prefix || dir.startsWith(`${prefix}/`)) {
        w.close();
        this.dirs.delete(dir);
      }
    }
  }

  private onFsEvent(dir: string, eventType: string, filename: string | Buffer | null): void {
    if (!this.active) return;
    if (filename === null) {
      this.overflow('the kernel dropped events (queue overflow); rescan if you need exact state');
      return;
    }
    const path = join(dir, filename.toString());
    if (eventType === 'change') {
      if (!this.excluded(path, false)) this.queue(path, 'write');
      return;
    }
    // 'rename' means appeared or disappeared: lstat tells which.
    lstat(path).then(
      (st) => {
        const isDir = st.isDirectory();
        if (this.excluded(path, isDir)) return;
        this.queue(path, 'create');
        if (isDir && !this.dirs.has(path)) {
          this.watchDir(path);
          // Files created before the new watch was in place are reported here.
          void this.addTree(path, true);
        }
      },
      () => {
        if (this.dirs.has(path)) this.unwatch(path);
        if (!this.excluded(path, false)) this.queue(path, 'remove');
      },
    );
  }

  private queue(path: string, op: WatchOp): void {
    const now = Date.now();
    if (now - this.windowStart > RATE_WINDOW_MS) {
      this.windowStart = now;
      this.windowCount = 0;
      this.overflowed = false;
    }
    if (++this.windowCount > MAX_EVENTS_PER_WINDOW) {
      if (!this.overflowed) this.overflow(`more than ${MAX_EVENTS_PER_WINDOW} events per second; some were dropped`);
      return;
    }
    const prev = this.pending.get(path);
    // create then write within the window is still a create; anything else: latest wins.
    if (!(prev === 'create' && op === 'write')) {
      this.pending.delete(path); // re-insert to keep arrival order
      this.pending.set(path, op);
    }
    this.flushTimer ??= setTimeout(() => this.flush(), COALESCE_MS);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const batch = this.pending;
    this.pending = new Map();
    if (!this.active) return;
    for (const [path, op] of batch) this.send({ channel: 'watcher', type: 'change', watcher_id: this.id, path, op });
  }

  private overflow(message: string): void {
    this.overflowed = true;
    this.send({ channel: 'watcher', type: 'overflow', watcher_id: this.id, message });
  }

  private reportLimit(message: string): void {
    if (this.limitReported) return;
    this.limitReported = true;
    this.overflow(message);
  }
}
