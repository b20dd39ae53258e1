/**
 * The few pieces of the DNS wire format (RFC 1035) the forwarder needs:
 * read a query's question, read the A records of an answer, and write the
 * short answers Hearth gives itself (NXDOMAIN, empty NOERROR). Pure.
 */

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_AAAA = 28;
export const RCODE_NOERROR = 0;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_REFUSED = 5;

export interface Question {
  id: number;
  /** Recursion desired (copied into our answers). */
  rd: boolean;
  name: string;
  type: number;
  cls: number;
  /** Byte offset just past the (first) question: what our answers copy. */
  end: number;
}

/** Read a (possibly compressed) name at `off`; returns the name and the offset after it in the original stream. */
export function readName(buf: Buffer, off: number): { name: string; next: number } {
  const labels: string[] = [];
  let next = -1;
  let pos = off;
  for (let hops = 0; hops < 64; hops++) {
    if (pos >= buf.length) throw new Error('name runs past the message');
    const len = buf[pos]!;
    if (len === 0) {
      if (next === -1) next = pos + 1;
      return { name: labels.join('.').toLowerCase(), next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) throw new Error('truncated pointer');
      if (next === -1) next = pos + 2;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if (len > 63 || pos + 1 + len > buf.length) throw new Error('bad label');
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  throw new Error('name compression loop');
}

/** The question of a query, or null when the message is not a single-question standard query. */
export function parseQuery(buf: Buffer): Question | null {
  try {
    if (buf.length < 12) return null;
    const flags = buf.readUInt16BE(2);
    if (flags & 0x8000) return null; // a response
    if (((flags >> 11) & 0xf) !== 0) return null; // not QUERY
    if (buf.readUInt16BE(4) !== 1) return null;
    const { name, next } = readName(buf, 12);
    if (next + 4 > buf.length) return null;
    return { id: buf.readUInt16BE(0), rd: (flags & 0x0100) !== 0, name, type: buf.readUInt16BE(next), cls: buf.readUInt16BE(next + 2), end: next + 4 };
  } catch {
    return null;
  }
}

/** The question of a response (single question), or null: what the forwarder matches an answer against. */
export function responseQuestion(buf: Buffer): Pick<Question, 'name' | 'type' | 'cls'> | null {
  try {
    if (buf.length < 12 || buf.readUInt16BE(4) !== 1) return null;
    const { name, next } = readName(buf, 12);
    if (next + 4 > buf.length) return null;
    return { name, type: buf.readUInt16BE(next), cls: buf.readUInt16BE(next + 2) };
  } catch {
    return null;
  }
}

export interface AnswerA {
  ip: string;
  ttl: number;
}

/** rcode and the A records (any owner: the CNAME chain of the asked name) of a response. */
export function parseAnswer(buf: Buffer): { id: number; rcode: number; truncated: boolean; a: AnswerA[] } {
  if (buf.length < 12) throw new Error('short DNS message');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let pos = 12;
  for (let i = 0; i < qd; i++) pos = readName(buf, pos).next + 4;
  const a: AnswerA[] = [];
  for (let i = 0; i < an; i++) {
    pos = readName(buf, pos).next;
    if (pos + 10 > buf.length) throw new Error('truncated record');
    const type = buf.readUInt16BE(pos);
    const cls = buf.readUInt16BE(pos + 2);
    const ttl = buf.readUInt32BE(pos + 4);
    const len = buf.readUInt16BE(pos + 8);
    pos += 10;
    if (pos + len > buf.length) throw new Error('truncated record data');
    if (type === TYPE_A && cls === 1 && len === 4) a.push({ ip: [...buf.subarray(pos, pos + 4)].join('.'), ttl });
    pos += len;
  }
  return { id, rcode: flags & 0xf, truncated: (flags & 0x0200) !== 0, a };
}

/** An answer of our own to `query` (its question copied, no records): NXDOMAIN, NOERROR/NODATA or SERVFAIL. */
export function reply(query: Buffer, q: Question, rcode: number): Buffer {
  const out = Buffer.alloc(q.end);
  query.copy(out, 0, 0, q.end);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(0x8000 | 0x0080 | (q.rd ? 0x0100 : 0) | (rcode & 0xf), 2); // QR, RA, RD copied
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}

/** A standard query (used by tests and the doctor). */
export function buildQuery(id: number, name: string, type = TYPE_A): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  const parts = [Buffer.from([id >> 8, id & 255, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
  parts.push(Buffer.from([0, type >> 8, type & 255, 0, 1]));
  return Buffer.concat(parts);
}

/** An answer with A records for `q` (used by the test resolver). */
export function answerA(query: Buffer, q: Question, ips: string[], ttl: number): Buffer {
  const head = reply(query, q, RCODE_NOERROR);
  head.writeUInt16BE(0x8000 | 0x0400 | 0x0080 | (q.rd ? 0x0100 : 0), 2); // AA
  head.writeUInt16BE(ips.length, 6);
  const rrs = ips.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((p, i) => rr.writeUInt8(Number(p), 12 + i));
    return rr;
  });
  return Buffer.concat([head, ...rrs]);
}
