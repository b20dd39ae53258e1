/**
 * Fixed-capacity byte ring for terminal scrollback: the last `capacity`
 * bytes of output, O(1) append, no per-chunk allocations kept around.
 */
export class ByteRing {
  private buf: Buffer;
  private start = 0;
  private length = 0;

  constructor(capacity: number) {
    this.buf = Buffer.alloc(Math.max(0, capacity));
  }

  get capacity(): number {
    return this.buf.length;
  }

  get size(): number {
    return this.length;
  }

  append(data: Buffer): void {
    const cap = this.buf.length;
    if (cap === 0 || data.length === 0) return;
    if (data.length >= cap) {
      data.copy(this.buf, 0, data.length - cap);
      this.start = 0;
      this.length = cap;
      return;
    }
    const end = (this.start + this.length) % cap;
    const first = Math.min(data.length, cap - end);
    data.copy(this.buf, end, 0, first);
    if (first < data.length) data.copy(this.buf, 0, first);
    const overflow = this.length + data.length - cap;
    if (overflow > 0) {
      this.start = (this.start + overflow) % cap;
      this.length = cap;
    } else {
      this.length += data.length;
    }
  }

  /** The last `bytes` bytes (all when omitted), oldest first. */
  tail(bytes?: number): Buffer {
    const n = Math.min(bytes ?? this.length, this.length);
    const cap = this.buf.length;
    const from = (this.start + this.length - n) % cap;
    if (n === 0) return Buffer.alloc(0);
    if (from + n <= cap) return Buffer.from(this.buf.subarray(from, from + n));
    return Buffer.concat([this.buf.subarray(from), this.buf.subarray(0, n - (cap - from))]);
  }

  clear(): void {
    this.start = 0;
    this.length = 0;
  }

  /** Change capacity, keeping the newest bytes that fit. */
  resize(capacity: number): void {
    const keep = this.tail(Math.min(this.length, capacity));
    this.buf = Buffer.alloc(Math.max(0, capacity));
    this.start = 0;
    this.length = 0;
    this.append(keep);
  }
}
