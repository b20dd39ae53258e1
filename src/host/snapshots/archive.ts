/**
 * Archives (§12 `createArchive`): a workspace's writable layer exported as a
 * file — a gzip-compressed OCI layer tar, the format every image tool
 * applies on top of a base image:
 *
 * - overlay whiteouts (0/0 devices) become `.wh.<name>` entries, opaque
 *   directories get a `.wh..wh..opq` entry, as `docker commit` writes them;
 * - hard links within the layer stay hard links; other devices, sockets and
 *   FIFOs are left out;
 * - `vm_paths` narrows the archive to those paths (and the directories
 *   leading to them), `exclude_vm_paths` leaves paths out.
 *
 * Built from a snapshot (a consistent copy), written to a scratch file and
 * renamed into place. Pure parts (path filters, headers) are exported for
 * tests; the rest writes files.
 */
import fs from 'node:fs/promises';
import { createReadStream, createWriteStream } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { createGzip } from 'node:zlib';
import path from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hostRun } from '../exec.ts';

export interface PathFilter {
  include: string[];
  exclude: string[];
}

/** Normalize VM paths (`/srv/app/`, `srv/app` → `srv/app`); refuses `..`. */
export function normalizeVmPath(p: string): string {
  const parts: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new Error(`path ${JSON.stringify(p)} must not contain ".."`);
    parts.push(part);
  }
  return parts.join('/');
}

/** What the filter does with `rel` (relative, no leading /): include it, walk into it for included children, or skip. */
export function filterDecision(rel: string, f: PathFilter): 'include' | 'descend' | 'skip' {
  const under = (p: string, base: string) => base === '' || p === base || p.startsWith(`${base}/`);
  if (f.exclude.some((e) => under(rel, e))) return 'skip';
  if (f.include.length === 0 || f.include.some((i) => under(rel, i))) return 'include';
  if (f.include.some((i) => i.startsWith(`${rel}/`))) return 'descend';
  return 'skip';
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.from(` ${key}=${value}\n`);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

export interface HeaderFields {
  name: string;
  type: '0' | '1' | '2' | '5';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string;
}

/** One entry's header block(s): a pax header first when a name does not fit ustar. Pure. */
export function tarHeader(f: HeaderFields): Buffer {
  const pax: Buffer[] = [];
  if (Buffer.byteLength(f.name) > 99) pax.push(paxRecord('path', f.name));
  if (f.linkname && Buffer.byteLength(f.linkname) > 99) pax.push(paxRecord('linkpath', f.linkname));
  if (f.uid > 0o7777777) pax.push(paxRecord('uid', String(f.uid)));
  if (f.gid > 0o7777777) pax.push(paxRecord('gid', String(f.gid)));
  const out: Buffer[] = [];
  if (pax.length) {
    const data = Buffer.concat(pax);
    out.push(block({ name: 'PaxHeader', type: 'x' as HeaderFields['type'], mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0 }), pad(data));
  }
  out.push(block(f));
  return Buffer.concat(out);
}

function block(f: HeaderFields): Buffer {
  const h = Buffer.alloc(512);
  h.write(f.name.slice(0, 100), 0, 100, 'utf8');
  h.write(octal(f.mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(Math.min(f.uid, 0o7777777), 8), 108, 'ascii');
  h.write(octal(Math.min(f.gid, 0o7777777), 8), 116, 'ascii');
  h.write(octal(f.size, 12), 124, 'ascii');
  h.write(octal(Math.max(0, Math.floor(f.mtime)), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(f.type, 156, 'ascii');
  if (f.linkname) h.write(f.linkname.slice(0, 100), 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

function pad(b: Buffer): Buffer {
  const rest = b.length % 512;
  return rest ? Buffer.concat([b, Buffer.alloc(512 - rest)]) : b;
}

/** Directories of `root` carrying `trusted.overlay.opaque=y` (one getfattr for the whole tree). */
async function opaqueDirs(root: string): Promise<Set<string>> {
  const r = await hostRun('getfattr', ['-R', '-P', '--absolute-names', '-n', 'trusted.overlay.opaque', root], { okCodes: [0, 1], timeoutMs: 10 * 60_000 });
  const out = new Set<string>();
  let file: string | null = null;
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('# file: ')) file = line.slice('# file: '.length).replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    else if (file && /^trusted\.overlay\.opaque="y"$/.test(line.trim())) out.add(path.relative(root, file));
  }
  return out;
}

export interface PackResult {
  bytes: number;
  sha256: string;
  entries: number;
  skipped: string[];
}

/** Pack the overlay upper dir `root` into `out` (created atomically) as a gzip OCI layer. */
export async function packLayer(root: string, out: string, filter: PathFilter): Promise<PackResult> {
  const opaque = await opaqueDirs(root);
  const tar = new PassThrough({ highWaterMark: 1024 * 1024 });
  const hash = createHash('sha256');
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _e, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  await fs.mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const writing = pipeline(tar, createGzip({ level: 6 }), count, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
  const skipped: string[] = [];
  let entries = 0;
  const links = new Map<string, string>();
  const write = async (b: Buffer) => {
    if (!tar.write(b)) await new Promise((r) => tar.once('drain', r));
  };
  const walk = async (rel: string): Promise<void> => {
    const names = (await fs.readdir(rel ? path.join(root, rel) : root)).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const decision = filterDecision(r, filter);
      if (decision === 'skip') continue;
      const full = path.join(root, r);
      const st = await fs.lstat(full);
      const base = { uid: st.uid, gid: st.gid, mtime: st.mtimeMs / 1000, mode: st.mode };
      if (st.isDirectory()) {
        // Directories leading to an included path are written too, so their owners and modes travel with it.
        await write(tarHeader({ ...base, name: `${r}/`, type: '5', size: 0 }));
        entries++;
        if (decision === 'include') {
          if (opaque.has(r)) {
            await write(tarHeader({ ...base, name: `${r}/.wh..wh..opq`, type: '0', size: 0, mode: 0o644 }));
            entries++;
          }
        }
        await walk(r);
      } else if (decision !== 'include') {
        continue;
      } else if (st.isCharacterDevice() && st.rdev === 0) {
        await write(tarHeader({ ...base, name: rel ? `${rel}/.wh.${name}` : `.wh.${name}`, type: '0', size: 0, mode: 0o644 }));
        entries++;
      } else if (st.isSymbolicLink()) {
        await write(tarHeader({ ...base, name: r, type: '2', size: 0, linkname: await fs.readlink(full) }));
        entries++;
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first) {
          await write(tarHeader({ ...base, name: r, type: '1', size: 0, linkname: first }));
        } else {
          if (st.nlink > 1) links.set(key, r);
          await write(tarHeader({ ...base, name: r, type: '0', size: st.size }));
          let sent = 0;
          for await (const chunk of createReadStream(full, { highWaterMark: 1024 * 1024 })) {
            const c = chunk as Buffer;
            const part = c.subarray(0, Math.max(0, st.size - sent));
            sent += part.length;
            await write(part);
          }
          if (sent < st.size) await write(Buffer.alloc(st.size - sent)); // the file shrank while read: keep the header honest
          if (st.size % 512) await write(Buffer.alloc(512 - (st.size % 512)));
        }
        entries++;
      } else {
        skipped.push(`/${r}`);
      }
    }
  };
  try {
    await walk('');
    tar.end(Buffer.alloc(1024));
    await writing;
    await fs.rename(tmp, out);
  } catch (e) {
    tar.destroy();
    await writing.catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw e;
  }
  return { bytes, sha256: `sha256:${hash.digest('hex')}`, entries, skipped };
}
