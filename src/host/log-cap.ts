/**
 * Size-capped logs that something else writes: a container's console
 * (stdout/stderr of its PID 1, which root inside can also reach through
 * /proc/1/fd/1) and a microVM's serial console. Both are files opened
 * O_APPEND by the writer (runc's console fd, QEMU's `append=on` chardev),
 * so hearthd can cap them without the writer's help: once a file passes
 * the cap, its last `cap` bytes go to `<file>.1` and the file is truncated
 * to zero; the writer's next append lands at the new end. At most about
 * 2 × cap stays on disk per log (plus what is written while a check runs).
 *
 * A writer can still outrun the checks (a `yes` writes hundreds of MB/s):
 * the hard bound is where the log lives. A container's console is on the
 * workspace's own disk image (container/disk.ts), so the most it can fill
 * is its own disk_size_mb; the cap then frees it again.
 *
 * A check runs on every inotify change of the log's directory (throttled to
 * one at a time) and on a periodic sweep as a backstop, so a spamming
 * workspace is cut back within milliseconds of passing the cap. hearthd
 * keeps no other state: a restarted hearthd watches the logs of the
 * sandboxes it finds running.
 *
 * Readers take only tails (readTail), never a whole log.
 */
import fs from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export const DEFAULT_LOG_CAP_BYTES = 8 * 1024 * 1024;
/** What failure reports quote of a log, at most. */
export const LOG_TAIL_BYTES = 64 * 1024;

/** Rotate `file` if it has passed `cap` bytes (apparent or allocated). Returns whether it did. */
export async function capLog(file: string, cap: number): Promise<boolean> {
  const fh = await open(file, 'r+').catch(() => null);
  if (!fh) return false;
  try {
    const st = await fh.stat();
    if (st.size <= cap && st.blocks * 512 <= cap) return false;
    // The newest `cap` bytes become the previous log (never more read, however far past the cap it is).
    await keepTail(file, `${file}.1`, cap);
    await fh.truncate(0);
    return true;
  } finally {
    await fh.close();
  }
}

/** The last `bytes` of a file as UTF-8 (a partial first character dropped), '' when it is missing. */
export async function readTail(file: string, bytes = LOG_TAIL_BYTES): Promise<string> {
  const fh = await open(file, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const { size } = await fh.stat();
    const n = Math.min(size, bytes);
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, size - n);
    let text = buf.subarray(0, bytesRead).toString('utf8');
    if (n < size) text = text.replace(/^\uFFFD+/, '');
    return text;
  } finally {
    await fh.close();
  }
}

/** Keeps a set of log files under their cap while they are watched. */
export class LogCapper {
  private readonly watched = new Map<string, { watcher: fs.FSWatcher | null; busy: boolean; again: boolean }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly cap = DEFAULT_LOG_CAP_BYTES, private readonly sweepMs = 2000) {}

  /** Start keeping `file` under the cap (idempotent). Checks it once now. */
  watch(file: string): void {
    if (this.watched.has(file)) return;
    const entry = { watcher: null as fs.FSWatcher | null, busy: false, again: false };
    this.watched.set(file, entry);
    const name = path.basename(file);
    try {
      entry.watcher = fs.watch(path.dirname(file), { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name) this.check(file);
      });
      entry.watcher.on('error', () => undefined);
    } catch {
      /* no inotify here: the sweep still caps it */
    }
    this.timer ??= setInterval(() => { for (const f of this.watched.keys()) this.check(f); }, this.sweepMs).unref();
    this.check(file);
  }

  unwatch(file: string): void {
    const entry = this.watched.get(file);
    if (!entry) return;
    entry.watcher?.close();
    this.watched.delete(file);
    if (!this.watched.size && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Rotate once now if it is over the cap (also for logs not watched, e.g. before a start). */
  async capNow(file: string): Promise<void> {
    await capLog(file, this.cap).catch(() => false);
  }

  close(): void {
    for (const f of [...this.watched.keys()]) this.unwatch(f);
  }

  private check(file: string): void {
    const entry = this.watched.get(file);
    if (!entry) return;
    if (entry.busy) {
      entry.again = true;
      return;
    }
    entry.busy = true;
    void capLog(file, this.cap).catch(() => false).finally(() => {
      entry.busy = false;
      if (entry.again) {
        entry.again = false;
        this.check(file);
      }
    });
  }
}

/** Write the last `bytes` of `src` to `dst` (replacing it), without reading more than that. */
export async function keepTail(src: string, dst: string, bytes: number): Promise<void> {
  const fh = await open(src, 'r').catch(() => null);
  if (!fh) return;
  try {
    const { size } = await fh.stat();
    const n = Math.min(size, bytes);
    const out = await open(`${dst}.tmp`, 'w', 0o600);
    try {
      const buf = Buffer.allocUnsafe(Math.min(n, 1024 * 1024) || 1);
      for (let pos = size - n; pos < size;) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
        if (bytesRead <= 0) break;
        await out.write(buf, 0, bytesRead);
        pos += bytesRead;
      }
    } finally {
      await out.close();
    }
    await rename(`${dst}.tmp`, dst);
  } finally {
    await fh.close();
  }
}

/** Remove a log and its previous generation. */
export async function removeLog(file: string): Promise<void> {
  await Promise.all([rm(file, { force: true }), rm(`${file}.1`, { force: true }), rm(`${file}.1.tmp`, { force: true }), rm(`${file}.tmp`, { force: true })]);
}
