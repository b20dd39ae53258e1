/**
 * The on-disk line format of every log the agent keeps (workload output,
 * the boot log), and the pure helpers around it. One entry per line:
 *
 *   2025-01-31T12:00:00.123Z stdout listening on 3000
 *
 * Plain text, so `tail -f /var/log/hearth/workload-<id>.log` inside the
 * workspace reads naturally, yet every field of a WorkloadLogEntry (§13:
 * `timestamp`, `stream`, `data`) survives a round trip. Data never holds a
 * newline: output is split into lines before it is written.
 */

export type LogStream = 'stdout' | 'stderr' | 'system';

export interface LogEntry {
  /** ISO-8601 UTC timestamp of when the agent read the line. */
  t: string;
  stream: LogStream;
  data: string;
}

/** A single line longer than this is cut into several entries (a runaway line cannot grow without bound). */
export const MAX_LINE_CHARS = 16 * 1024;

const LINE_RE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (stdout|stderr|system) (.*)$/;

export function formatLine(e: LogEntry): string {
  return `${e.t} ${e.stream} ${e.data}\n`;
}

/**
 * Parse one stored line (without its newline). Lines that are not in our
 * format (a user-chosen `log_path` someone else also writes to) are kept as
 * stdout data without a timestamp rather than dropped.
 */
export function parseLine(line: string): LogEntry {
  const m = LINE_RE.exec(line);
  if (!m) return { t: '', stream: 'stdout', data: line };
  return { t: m[1] as string, stream: m[2] as LogStream, data: m[3] as string };
}

/** Milliseconds since the epoch of an entry, or NaN when it carries no timestamp. */
export function entryTime(e: LogEntry): number {
  return e.t ? Date.parse(e.t) : NaN;
}

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `since` as callers send it: an ISO date, epoch seconds or milliseconds
 * (a number below 1e12 is seconds), or a look-back duration (`30s`, `5m`,
 * `1h`, like `docker logs --since`). Returns epoch ms, or null when the text
 * is none of these.
 */
export function parseSince(text: string, now = Date.now()): number | null {
  const s = text.trim();
  if (s === '') return null;
  if (/^\d+(\.\d+)?$/.test(s)) {
    const n = Number(s);
    return n < 1e12 ? Math.round(n * 1000) : Math.round(n);
  }
  const d = DURATION_RE.exec(s);
  if (d) return now - Number(d[1]) * (UNIT_MS[d[2] as string] as number);
  const parsed = Date.parse(s);
  return Number.isNaN(parsed) ? null : parsed;
}

/**
 * Splits a byte stream into lines. Bytes are decoded as UTF-8 with a
 * streaming decoder (a multi-byte character cut between two reads stays
 * whole); a partial last line is held until its newline, `flush()`, or
 * until it grows past MAX_LINE_CHARS.
 */
export class LineSplitter {
  private readonly decoder = new TextDecoder('utf-8');
  private partial = '';

  push(chunk: Buffer): string[] {
    const text = this.partial + this.decoder.decode(chunk, { stream: true });
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    const out: string[] = [];
    for (const p of parts) out.push(...cut(stripCr(p)));
    while (this.partial.length > MAX_LINE_CHARS) {
      out.push(this.partial.slice(0, MAX_LINE_CHARS));
      this.partial = this.partial.slice(MAX_LINE_CHARS);
    }
    return out;
  }

  /** The held partial line, if any (at process exit). */
  flush(): string[] {
    const rest = this.partial + this.decoder.decode();
    this.partial = '';
    return rest.length > 0 ? cut(stripCr(rest)) : [];
  }

  get pending(): boolean {
    return this.partial.length > 0;
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

function cut(line: string): string[] {
  if (line.length <= MAX_LINE_CHARS) return [line];
  const out: string[] = [];
  for (let i = 0; i < line.length; i += MAX_LINE_CHARS) out.push(line.slice(i, i + MAX_LINE_CHARS));
  return out;
}
