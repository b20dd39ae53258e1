/**
 * A streaming tar reader: ustar, POSIX pax (`x` and `g` headers, xattrs as
 * SCHILY.xattr.* / LIBARCHIVE.xattr.*) and GNU long names (`L`/`K`), with
 * base-256 numbers. It yields one entry at a time with its data as an async
 * iterable; data not consumed by the caller is skipped. After the end of the
 * archive the rest of the source is drained, so a hash computed upstream
 * always covers the whole stream (diff_ids are over the whole tar).
 *
 * Nothing here touches the file system: what an entry *means* (paths,
 * links, whiteouts) is the unpacker's business.
 */

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntry {
  /** Path as written in the archive (pax/GNU long names applied), not normalized. */
  path: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (pax mtime may carry a fraction). */
  mtime: number;
  linkpath: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from pax records. */
  xattrs: Record<string, Buffer>;
}

export class TarFormatError extends Error {
  constructor(message: string) {
    super(`tar: ${message}`);
    this.name = 'TarFormatError';
  }
}

const BLOCK = 512;
const EMPTY = Buffer.alloc(0);

/** Pulls exact byte counts out of an async chunk source. */
class ByteReader {
  private buf: Buffer = EMPTY;
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;
  /** Bytes handed out so far (for error messages). */
  offset = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array>) {
    const inner = source[Symbol.asyncIterator]();
    this.it = {
      next: async () => {
        const r = await inner.next();
        return r.done ? r : { done: false, value: Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value) };
      },
      return: async () => (inner.return ? inner.return() : { done: true, value: undefined }),
    } as AsyncIterator<Buffer>;
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value;
    return true;
  }

  /** Exactly n bytes, or fewer at the end of the source. */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.more()));
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.offset += out.length;
    return out;
  }

  /** Up to n bytes as they arrive (zero-copy slices of the source's chunks). */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.more())) throw new TarFormatError(`unexpected end of archive at byte ${this.offset} (${left} bytes of entry data missing)`);
      const out = this.buf.subarray(0, Math.min(left, this.buf.length));
      this.buf = this.buf.subarray(out.length);
      this.offset += out.length;
      left -= out.length;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n)) { /* discard */ }
  }

  /** Read and discard everything left in the source. */
  async drain(): Promise<void> {
    this.offset += this.buf.length;
    this.buf = EMPTY;
    while (await this.more()) {
      this.offset += this.buf.length;
      this.buf = EMPTY;
    }
  }
}

function cstring(b: Buffer): string {
  const nul = b.indexOf(0);
  return (nul < 0 ? b : b.subarray(0, nul)).toString('utf8');
}

/** A numeric header field: octal text, or base-256 when the high bit of the first byte is set. */
export function parseNumeric(b: Buffer, field: string): number {
  if (b.length && (b[0]! & 0x80)) {
    if (b[0] === 0xff) throw new TarFormatError(`negative ${field}`);
    let v = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) {
      v = v * 256 + b[i]!;
      if (!Number.isSafeInteger(v)) throw new TarFormatError(`${field} too large`);
    }
    return v;
  }
  const text = cstring(b).replace(/[ \0]+$/, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`${field} ${JSON.stringify(text)} is not an octal number`);
  const v = parseInt(text, 8);
  if (!Number.isSafeInteger(v)) throw new TarFormatError(`${field} too large`);
  return v;
}

function checksumOk(h: Buffer): boolean {
  const stored = parseNumeric(h.subarray(148, 156), 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** Parse pax records (`<len> <key>=<value>\n`). Values are raw bytes (xattrs may be binary). */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) throw new TarFormatError('malformed pax record (no length)');
    const len = Number(data.subarray(pos, sp).toString('ascii'));
    if (!Number.isInteger(len) || len <= sp - pos + 1 || pos + len > data.length) throw new TarFormatError('malformed pax record length');
    const record = data.subarray(sp + 1, pos + len);
    if (record[record.length - 1] !== 0x0a) throw new TarFormatError('pax record does not end with a newline');
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new TarFormatError('pax record without "="');
    out.set(record.subarray(0, eq).toString('utf8'), record.subarray(eq + 1, record.length - 1));
    pos += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};

/** Largest metadata record (pax header, GNU long name) we buffer: a guard against hostile archives. */
const MAX_META = 1024 * 1024;

export interface TarItem {
  entry: TarEntry;
  /** The entry's data; consume it or it is skipped. */
  body: AsyncIterable<Buffer>;
}

/** Read a tar stream entry by entry. */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<TarItem> {
  const r = new ByteReader(source);
  const global = new Map<string, Buffer>();
  let pax = new Map<string, Buffer>();
  let longName: string | null = null;
  let longLink: string | null = null;
  while (true) {
    const h = await r.read(BLOCK);
    if (h.length === 0) break; // end of stream without end blocks: tolerated, like GNU tar
    if (h.length < BLOCK) throw new TarFormatError(`truncated header at byte ${r.offset - h.length}`);
    if (h.every((b) => b === 0)) break; // end of archive
    if (!checksumOk(h)) throw new TarFormatError(`bad header checksum at byte ${r.offset - BLOCK}`);
    const typeflag = String.fromCharCode(h[156]!);
    const size = parseNumeric(h.subarray(124, 136), 'size');
    const padded = Math.ceil(size / BLOCK) * BLOCK;

    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > MAX_META) throw new TarFormatError(`${typeflag} header of ${size} bytes is too large`);
      const data = await r.read(padded);
      if (data.length < padded) throw new TarFormatError('truncated metadata record');
      const body = data.subarray(0, size);
      if (typeflag === 'x') pax = parsePax(body);
      else if (typeflag === 'g') for (const [k, v] of parsePax(body)) global.set(k, v);
      else if (typeflag === 'L') longName = cstring(body);
      else longLink = cstring(body);
      continue;
    }

    const type = TYPES[typeflag];
    if (!type) throw new TarFormatError(`unsupported entry type ${JSON.stringify(typeflag)} at byte ${r.offset - BLOCK}`);
    const meta = new Map([...global, ...pax]);
    const magic = h.subarray(257, 263).toString('ascii');
    let name = cstring(h.subarray(0, 100));
    if (magic.startsWith('ustar')) {
      const prefix = cstring(h.subarray(345, 500));
      if (prefix && magic === 'ustar\0') name = `${prefix}/${name}`;
    }
    const text = (k: string) => meta.get(k)?.toString('utf8');
    const num = (k: string, dflt: number) => {
      const v = text(k);
      if (v === undefined) return dflt;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new TarFormatError(`pax ${k} ${JSON.stringify(v)} is not a number`);
      return n;
    };
    const xattrs: Record<string, Buffer> = {};
    for (const [k, v] of meta) {
      if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice('SCHILY.xattr.'.length)] = v;
      else if (k.startsWith('LIBARCHIVE.xattr.')) xattrs[decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length))] = Buffer.from(v.toString('ascii'), 'base64');
    }
    const entrySize = type === 'file' ? num('size', size) : 0;
    const entry: TarEntry = {
      path: text('path') ?? longName ?? name,
      type,
      mode: parseNumeric(h.subarray(100, 108), 'mode') & 0o7777,
      uid: num('uid', parseNumeric(h.subarray(108, 116), 'uid')),
      gid: num('gid', parseNumeric(h.subarray(116, 124), 'gid')),
      size: entrySize,
      mtime: num('mtime', parseNumeric(h.subarray(136, 148), 'mtime')),
      linkpath: text('linkpath') ?? longLink ?? cstring(h.subarray(157, 257)),
      devmajor: type === 'char' || type === 'block' ? parseNumeric(h.subarray(329, 337), 'devmajor') : 0,
      devminor: type === 'char' || type === 'block' ? parseNumeric(h.subarray(337, 345), 'devminor') : 0,
      xattrs,
    };
    pax = new Map();
    longName = null;
    longLink = null;

    // Hard links and the like may declare a size; their data (if any) is skipped.
    const dataSize = type === 'file' ? entry.size : size;
    const dataPadded = Math.ceil(dataSize / BLOCK) * BLOCK;
    let consumed = 0;
    const body = (async function* () {
      if (type !== 'file') return;
      for await (const c of r.chunks(dataSize)) {
        consumed += c.length;
        yield c;
      }
    })();
    yield { entry, body };
    await r.skip(dataSize - consumed);
    await r.skip(dataPadded - dataSize);
  }
  // Only on a normal end: the trailing blocks belong to the stream a caller may be hashing.
  await r.drain();
}
