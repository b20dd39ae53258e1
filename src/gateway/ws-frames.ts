/**
 * The gateway relays WebSockets as raw bytes (one protocol end to end), yet
 * must be able to end a session cleanly itself — on token revocation, when
 * the workspace stops, when the agent vanishes — with a close frame the
 * client understands rather than a bare TCP reset. A close frame may only
 * go out between two frames, so this tracks frame boundaries of the
 * agent → client direction (RFC 6455 §5.2) without buffering or decoding
 * payloads. Pure: no sockets here.
 */

/** Close codes the gateway sends (RFC 6455 §7.4.1). */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY = 1008;
export const CLOSE_TRY_AGAIN = 1013;

/**
 * Walks a byte stream made of an HTTP response head (`101 Switching
 * Protocols`) followed by WebSocket frames, and reports where frames end.
 */
export class FrameBoundaries {
  /** Bytes of the HTTP head seen so far (until the blank line). */
  private head = '';
  private inHead = true;
  /** Whether the head was a 101: anything else is plain HTTP, never framed. */
  private upgraded = false;
  /** Partial frame header (at most 14 bytes). */
  private hdr: number[] = [];
  /** Payload bytes still to pass in the current frame. */
  private remaining = 0;
  /** The agent already sent a close frame: nothing may follow it. */
  sawClose = false;

  /** True when the relay has seen the 101 response and now carries frames. */
  get isWebSocket(): boolean {
    return this.upgraded;
  }

  /** True between frames: a close frame written now is well-formed on the wire. */
  get atBoundary(): boolean {
    return this.upgraded && this.hdr.length === 0 && this.remaining === 0;
  }

  /**
   * Advance over `chunk`. With `stopAtBoundary`, stop at the first frame
   * boundary at or after the start of the chunk and return how many bytes
   * were consumed up to it; otherwise consume everything and return its length.
   */
  advance(chunk: Uint8Array, stopAtBoundary = false): number {
    let i = 0;
    while (i < chunk.length) {
      if (this.inHead) {
        i = this.advanceHead(chunk, i);
        continue;
      }
      if (!this.upgraded) return chunk.length;
      if (stopAtBoundary && this.atBoundary) return i;
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        continue;
      }
      this.hdr.push(chunk[i]!);
      i++;
      const need = headerLength(this.hdr);
      if (need !== undefined && this.hdr.length === need) {
        if ((this.hdr[0]! & 0x0f) === 0x8) this.sawClose = true;
        this.remaining = payloadLength(this.hdr);
        this.hdr = [];
      }
    }
    return i;
  }

  private advanceHead(chunk: Uint8Array, from: number): number {
    // The head is short and ASCII; keep the tail needed to spot "\r\n\r\n" across chunks.
    for (let i = from; i < chunk.length; i++) {
      this.head += String.fromCharCode(chunk[i]!);
      if (this.head.endsWith('\r\n\r\n')) {
        this.inHead = false;
        this.upgraded = /^HTTP\/1\.[01] 101\b/.test(this.head);
        this.head = '';
        return i + 1;
      }
      if (this.head.length > 64 * 1024) {
        // Not HTTP at all: treat as an opaque stream.
        this.inHead = false;
        this.head = '';
        return chunk.length;
      }
    }
    return chunk.length;
  }
}

/** Total header length once enough bytes are known, else undefined. */
function headerLength(h: number[]): number | undefined {
  if (h.length < 2) return undefined;
  const masked = (h[1]! & 0x80) !== 0;
  const len7 = h[1]! & 0x7f;
  const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
  return 2 + ext + (masked ? 4 : 0);
}

function payloadLength(h: number[]): number {
  const len7 = h[1]! & 0x7f;
  if (len7 < 126) return len7;
  if (len7 === 126) return (h[2]! << 8) | h[3]!;
  let n = 0;
  for (let k = 2; k < 10; k++) n = n * 256 + h[k]!;
  return n;
}

/** An unmasked (server → client) close frame with `code` and a UTF-8 reason (≤ 123 bytes). */
export function closeFrame(code: number, reason: string): Buffer {
  let r = Buffer.from(reason, 'utf8');
  if (r.length > 123) r = r.subarray(0, 123);
  const frame = Buffer.alloc(4 + r.length);
  frame[0] = 0x88; // FIN + opcode 8 (close)
  frame[1] = 2 + r.length;
  frame.writeUInt16BE(code, 2);
  r.copy(frame, 4);
  return frame;
}
