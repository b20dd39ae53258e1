/**
 * A bounded, rotating log file with live subscribers: `<file>` holds the
 * newest lines, `<file>.1` the previous generation. When the current file
 * would pass `maxBytes` it becomes `.1` (replacing the older one), so a log
 * never takes more than about twice its cap on disk.
 *
 * File I/O here is synchronous on purpose: an append writes the file and
 * notifies subscribers in the same tick, and a reader snapshots the tail and
 * subscribes in the same tick, so a live stream never loses or repeats a
 * line at the seam between backlog and live output. Appends are small local
 * writes and tail reads are bounded by the number of lines asked for.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { entryTime, formatLine, parseLine, type LogEntry } from './line.ts';

export interface LogFileInfo {
  name: string;
  path: string;
  size: number;
  modified: string;
}

export interface TailOptions {
  /** At most this many entries (the newest). */
  tail?: number;
  /** Only entries at or after this time (epoch ms); untimed lines are kept. */
  sinceMs?: number | null;
}

const CHUNK = 64 * 1024;

export class LogStore {
  private fd: number | null = null;
  private size = 0;
  private readonly listeners = new Set<(e: LogEntry) => void>();
  /** Last write failure (disk full, read-only layer); live subscribers still get every line. */
  writeError: string | null = null;
  /** Entries that could not be written to disk. */
  dropped = 0;

  constructor(readonly file: string, private maxBytes: number) {}

  get rotatedFile(): string {
    return `${this.file}.1`;
  }

  setMaxBytes(n: number): void {
    this.maxBytes = n;
  }

  /** Write entries to the file (rotating as needed), then hand them to subscribers. */
  append(entries: LogEntry[]): void {
    if (entries.length === 0) return;
    let batch = '';
    let batchBytes = 0;
    let batchCount = 0;
    for (const e of entries) {
      const line = formatLine(e);
      const bytes = Buffer.byteLength(line);
      if (batchCount > 0 && this.size + batchBytes + bytes > this.maxBytes) {
        this.write(batch, batchBytes, batchCount);
        batch = '';
        batchBytes = 0;
        batchCount = 0;
      }
      batch += line;
      batchBytes += bytes;
      batchCount++;
    }
    this.write(batch, batchBytes, batchCount);
    for (const e of entries) {
      for (const fn of this.listeners) {
        try { fn(e); } catch { /* one bad subscriber must not starve the others */ }
      }
    }
  }

  private write(text: string, bytes: number, count: number): void {
    try {
      let fd = this.open();
      if (this.size > 0 && this.size + bytes > this.maxBytes) fd = this.rotate();
      writeSync(fd, text);
      this.size += bytes;
      this.writeError = null;
    } catch (err) {
      this.writeError = (err as Error).message;
      this.dropped += count;
      this.closeFd();
    }
  }

  private open(): number {
    if (this.fd !== null) return this.fd;
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o755 });
    this.fd = openSync(this.file, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
    return this.fd;
  }

  private rotate(): number {
    this.closeFd();
    renameSync(this.file, this.rotatedFile);
    this.fd = openSync(this.file, 'a', 0o640);
    this.size = 0;
    return this.fd;
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try { closeSync(this.fd); } catch { /* already closed */ }
    this.fd = null;
  }

  subscribe(fn: (e: LogEntry) => void): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /** The newest entries, oldest first, across the current and the rotated file. */
  tail(opts: TailOptions = {}): LogEntry[] {
    const limit = opts.tail ?? Number.POSITIVE_INFINITY;
    const since = opts.sinceMs ?? null;
    const newestFirst: LogEntry[] = [];
    if (limit <= 0) return [];
    const visit = (line: string): boolean => {
      const e = parseLine(line);
      if (since !== null) {
        const at = entryTime(e);
        if (!Number.isNaN(at) && at < since) return false; // files are in time order: nothing older is wanted
      }
      newestFirst.push(e);
      return newestFirst.length < limit;
    };
    if (readLinesBackward(this.file, visit)) readLinesBackward(this.rotatedFile, visit);
    return newestFirst.reverse();
  }

  /** Remove both files' contents; subscribers stay. */
  clear(): void {
    this.closeFd();
    rmSync(this.rotatedFile, { force: true });
    rmSync(this.file, { force: true });
    this.size = 0;
  }

  files(): LogFileInfo[] {
    const out: LogFileInfo[] = [];
    for (const path of [this.file, this.rotatedFile]) {
      try {
        const st = statSync(path);
        out.push({ name: basename(path), path, size: st.size, modified: st.mtime.toISOString() });
      } catch { /* not there (yet) */ }
    }
    return out;
  }

  close(): void {
    this.closeFd();
    this.listeners.clear();
  }
}

/**
 * Visit the lines of `path` from the last to the first (without newlines,
 * empty lines skipped) until `visit` returns false. Returns true when the
 * whole file was visited (the caller may go on to an older file).
 */
export function readLinesBackward(path: string, visit: (line: string) => boolean): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return true;
  }
  try {
    let pos = fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(CHUNK);
    let carry = Buffer.alloc(0);
    while (pos > 0) {
      const len = Math.min(CHUNK, pos);
      pos -= len;
      const got = readSync(fd, buf, 0, len, pos);
      const chunk = Buffer.concat([buf.subarray(0, got), carry]);
      let end = chunk.length;
      for (let i = chunk.length - 1; i >= 0; i--) {
        if (chunk[i] !== 0x0a) continue;
        if (end > i + 1 && !visit(chunk.toString('utf8', i + 1, end))) return false;
        end = i;
      }
      carry = Buffer.from(chunk.subarray(0, end));
    }
    if (carry.length > 0 && !visit(carry.toString('utf8'))) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}
