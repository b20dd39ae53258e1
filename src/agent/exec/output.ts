/**
 * A task's retained output: the chunks of both streams in arrival order (so
 * a late subscriber replays them interleaved as they happened), capped per
 * stream. Live subscribers still see everything; only retention is capped.
 */

export type StreamName = 'stdout' | 'stderr';

export const OUTPUT_CAP_BYTES = 10 * 1024 * 1024;

export interface Chunk {
  stream: StreamName;
  data: Buffer;
}

export class OutputLog {
  private chunks: Chunk[] = [];
  readonly bytes: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  readonly truncated: Record<StreamName, boolean> = { stdout: false, stderr: false };

  constructor(private readonly cap = OUTPUT_CAP_BYTES) {}

  append(stream: StreamName, data: Buffer): void {
    const room = this.cap - this.bytes[stream];
    if (room <= 0) {
      this.truncated[stream] = true;
      return;
    }
    const kept = data.length > room ? data.subarray(0, room) : data;
    if (kept.length < data.length) this.truncated[stream] = true;
    // Copy: the pipe may reuse its buffer.
    this.chunks.push({ stream, data: Buffer.from(kept) });
    this.bytes[stream] += kept.length;
  }

  replay(): readonly Chunk[] {
    return this.chunks;
  }

  text(stream: StreamName): string {
    const parts = this.chunks.filter((c) => c.stream === stream).map((c) => c.data);
    return Buffer.concat(parts).toString('utf8');
  }

  clear(): void {
    this.chunks = [];
  }
}
