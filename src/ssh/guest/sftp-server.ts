/**
 * A small SFTP v3 server (draft-ietf-secsh-filexfer-02 plus the OpenSSH
 * extensions its clients use) that runs INSIDE a workspace, on the guest
 * agent's own Node binary, speaking the protocol on stdin/stdout exactly like
 * OpenSSH's `sftp-server`. The gateway bundles this file with esbuild into
 * one CommonJS string and starts it through the agent's exec API; the SSH
 * channel's bytes are relayed unchanged.
 *
 * Why inside the workspace rather than in the gateway: SFTP is random-access
 * (pread/pwrite at offsets, 32 KiB at a time, many requests in flight),
 * binary, and carries ownership, modes and times. The agent's file API is
 * whole-file and text-first, so mapping onto it would be slow and lossy;
 * here every request is one syscall on the real filesystem, as root in the
 * workspace, with nothing translated. Catalog images ship no sftp-server;
 * the agent's Node is in every workspace.
 *
 * Must stay self-contained: only node: built-ins.
 */
import fs from 'node:fs';
import path from 'node:path';

const T = {
  INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, LSTAT: 7, FSTAT: 8, SETSTAT: 9, FSETSTAT: 10,
  OPENDIR: 11, READDIR: 12, REMOVE: 13, MKDIR: 14, RMDIR: 15, REALPATH: 16, STAT: 17, RENAME: 18, READLINK: 19,
  SYMLINK: 20, STATUS: 101, HANDLE: 102, DATA: 103, NAME: 104, ATTRS: 105, EXTENDED: 200, EXTENDED_REPLY: 201,
} as const;
const S = { OK: 0, EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, BAD_MESSAGE: 5, OP_UNSUPPORTED: 8 } as const;
const A = { SIZE: 1, UIDGID: 2, PERMISSIONS: 4, ACMODTIME: 8, EXTENDED: 0x80000000 } as const;
const F = { READ: 1, WRITE: 2, APPEND: 4, CREAT: 8, TRUNC: 0x10, EXCL: 0x20 } as const;
const MAX_PACKET = 256 * 1024;
const MAX_READ = 255 * 1024;

interface Attrs { size?: number; uid?: number; gid?: number; mode?: number; atime?: number; mtime?: number }

class Reader {
  o = 0;
  constructor(readonly b: Buffer) {}
  u8(): number { const v = this.b.readUInt8(this.o); this.o += 1; return v; }
  u32(): number { const v = this.b.readUInt32BE(this.o); this.o += 4; return v; }
  u64(): number { const v = Number(this.b.readBigUInt64BE(this.o)); this.o += 8; return v; }
  bytes(): Buffer { const n = this.u32(); const v = this.b.subarray(this.o, this.o + n); if (v.length !== n) throw new Error('short'); this.o += n; return v; }
  str(): string { return this.bytes().toString('utf8'); }
  attrs(): Attrs {
    const flags = this.u32();
    const a: Attrs = {};
    if (flags & A.SIZE) a.size = this.u64();
    if (flags & A.UIDGID) { a.uid = this.u32(); a.gid = this.u32(); }
    if (flags & A.PERMISSIONS) a.mode = this.u32();
    if (flags & A.ACMODTIME) { a.atime = this.u32(); a.mtime = this.u32(); }
    if (flags & A.EXTENDED) { const n = this.u32(); for (let i = 0; i < n; i++) { this.str(); this.str(); } }
    return a;
  }
}

class Writer {
  parts: Buffer[] = [];
  u8(v: number): this { const b = Buffer.alloc(1); b.writeUInt8(v); this.parts.push(b); return this; }
  u32(v: number): this { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); this.parts.push(b); return this; }
  u64(v: number): this { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(v)))); this.parts.push(b); return this; }
  bytes(v: Buffer): this { this.u32(v.length); this.parts.push(v); return this; }
  str(v: string): this { return this.bytes(Buffer.from(v, 'utf8')); }
  attrs(st: fs.Stats): this {
    this.u32(A.SIZE | A.UIDGID | A.PERMISSIONS | A.ACMODTIME);
    this.u64(st.size).u32(st.uid).u32(st.gid).u32(st.mode).u32(Math.floor(st.atimeMs / 1000)).u32(Math.floor(st.mtimeMs / 1000));
    return this;
  }
  packet(): Buffer {
    const body = Buffer.concat(this.parts);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return Buffer.concat([len, body]);
  }
}

function longname(name: string, st: fs.Stats): string {
  const m = st.mode;
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : st.isFIFO() ? 'p' : st.isSocket() ? 's' : '-';
  const rwx = (s: number) => `${s & 4 ? 'r' : '-'}${s & 2 ? 'w' : '-'}${s & 1 ? 'x' : '-'}`;
  const perms = `${type}${rwx(m >> 6)}${rwx(m >> 3)}${rwx(m)}`;
  const d = st.mtime;
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getMonth()];
  const recent = Date.now() - d.getTime() < 180 * 86400_000;
  const when = `${mon} ${String(d.getDate()).padStart(2)} ${recent ? `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}` : ` ${d.getFullYear()}`}`;
  return `${perms} ${String(st.nlink).padStart(4)} ${String(st.uid).padEnd(8)} ${String(st.gid).padEnd(8)} ${String(st.size).padStart(8)} ${when} ${name}`;
}

function statusFor(err: unknown): [number, string] {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return [S.NO_SUCH_FILE, 'No such file'];
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return [S.PERMISSION_DENIED, 'Permission denied'];
  return [S.FAILURE, (err as Error)?.message ?? 'Failure'];
}

export function runSftpServer(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): void {
  const handles = new Map<string, { kind: 'file'; fd: number; path: string } | { kind: 'dir'; path: string; entries: string[] | null }>();
  let nextHandle = 1;
  let buf: Buffer = Buffer.alloc(0);

  const send = (w: Writer) => { output.write(w.packet()); };
  const status = (id: number, code: number, msg = '') => send(new Writer().u8(T.STATUS).u32(id).u32(code).str(msg).str('en'));
  const fail = (id: number, err: unknown) => { const [c, m] = statusFor(err); status(id, c, m); };
  const newHandle = (h: typeof handles extends Map<string, infer V> ? V : never) => { const id = String(nextHandle++); handles.set(id, h); return id; };
  const home = process.env.HOME || '/root';
  const resolve = (p: string) => path.resolve(home, p === '' ? '.' : p);

  const setAttrs = (target: string | number, a: Attrs) => {
    const isFd = typeof target === 'number';
    if (a.size !== undefined) { if (isFd) fs.ftruncateSync(target, a.size); else fs.truncateSync(target, a.size); }
    if (a.mode !== undefined) { if (isFd) fs.fchmodSync(target, a.mode & 0o7777); else fs.chmodSync(target, a.mode & 0o7777); }
    if (a.uid !== undefined && a.gid !== undefined) { if (isFd) fs.fchownSync(target, a.uid, a.gid); else fs.chownSync(target, a.uid, a.gid); }
    if (a.atime !== undefined && a.mtime !== undefined) { if (isFd) fs.futimesSync(target, a.atime, a.mtime); else fs.utimesSync(target, a.atime, a.mtime); }
  };

  const handle = (type: number, id: number, r: Reader) => {
    switch (type) {
      case T.OPEN: {
        const p = resolve(r.str());
        const pflags = r.u32();
        const a = r.attrs();
        let flags = 0;
        const rd = pflags & F.READ, wr = pflags & F.WRITE;
        flags |= rd && wr ? fs.constants.O_RDWR : wr ? fs.constants.O_WRONLY : fs.constants.O_RDONLY;
        if (pflags & F.APPEND) flags |= fs.constants.O_APPEND;
        if (pflags & F.CREAT) flags |= fs.constants.O_CREAT;
        if (pflags & F.TRUNC) flags |= fs.constants.O_TRUNC;
        if (pflags & F.EXCL) flags |= fs.constants.O_EXCL;
        const fd = fs.openSync(p, flags, a.mode !== undefined ? a.mode & 0o7777 : 0o644);
        send(new Writer().u8(T.HANDLE).u32(id).str(newHandle({ kind: 'file', fd, path: p })));
        return;
      }
      case T.CLOSE: {
        const h = r.str();
        const e = handles.get(h);
        if (!e) return status(id, S.FAILURE, 'bad handle');
        handles.delete(h);
        if (e.kind === 'file') fs.closeSync(e.fd);
        return status(id, S.OK);
      }
      case T.READ: {
        const e = handles.get(r.str());
        const off = r.u64();
        const len = Math.min(r.u32(), MAX_READ);
        if (!e || e.kind !== 'file') return status(id, S.FAILURE, 'bad handle');
        const out = Buffer.allocUnsafe(len);
        const n = fs.readSync(e.fd, out, 0, len, off);
        if (n === 0) return status(id, S.EOF, 'EOF');
        return send(new Writer().u8(T.DATA).u32(id).bytes(out.subarray(0, n)));
      }
      case T.WRITE: {
        const e = handles.get(r.str());
        const off = r.u64();
        const data = r.bytes();
        if (!e || e.kind !== 'file') return status(id, S.FAILURE, 'bad handle');
        let done = 0;
        while (done < data.length) done += fs.writeSync(e.fd, data, done, data.length - done, off + done);
        return status(id, S.OK);
      }
      case T.LSTAT: case T.STAT: {
        const p = resolve(r.str());
        const st = type === T.LSTAT ? fs.lstatSync(p) : fs.statSync(p);
        return send(new Writer().u8(T.ATTRS).u32(id).attrs(st));
      }
      case T.FSTAT: {
        const e = handles.get(r.str());
        if (!e || e.kind !== 'file') return status(id, S.FAILURE, 'bad handle');
        return send(new Writer().u8(T.ATTRS).u32(id).attrs(fs.fstatSync(e.fd)));
      }
      case T.SETSTAT: { const p = resolve(r.str()); setAttrs(p, r.attrs()); return status(id, S.OK); }
      case T.FSETSTAT: {
        const e = handles.get(r.str());
        const a = r.attrs();
        if (!e || e.kind !== 'file') return status(id, S.FAILURE, 'bad handle');
        setAttrs(e.fd, a);
        return status(id, S.OK);
      }
      case T.OPENDIR: {
        const p = resolve(r.str());
        if (!fs.statSync(p).isDirectory()) return status(id, S.FAILURE, 'not a directory');
        fs.accessSync(p, fs.constants.R_OK);
        return send(new Writer().u8(T.HANDLE).u32(id).str(newHandle({ kind: 'dir', path: p, entries: null })));
      }
      case T.READDIR: {
        const e = handles.get(r.str());
        if (!e || e.kind !== 'dir') return status(id, S.FAILURE, 'bad handle');
        if (e.entries === null) e.entries = ['.', '..', ...fs.readdirSync(e.path)];
        if (e.entries.length === 0) return status(id, S.EOF, 'EOF');
        const batch = e.entries.splice(0, 100);
        const w = new Writer().u8(T.NAME).u32(id);
        const items: [string, fs.Stats][] = [];
        for (const name of batch) {
          try { items.push([name, fs.lstatSync(path.join(e.path, name))]); } catch { /* vanished meanwhile */ }
        }
        w.u32(items.length);
        for (const [name, st] of items) w.str(name).str(longname(name, st)).attrs(st);
        return send(w);
      }
      case T.REMOVE: fs.unlinkSync(resolve(r.str())); return status(id, S.OK);
      case T.MKDIR: {
        const p = resolve(r.str());
        const a = r.attrs();
        fs.mkdirSync(p, { mode: a.mode !== undefined ? a.mode & 0o7777 : 0o755 });
        return status(id, S.OK);
      }
      case T.RMDIR: fs.rmdirSync(resolve(r.str())); return status(id, S.OK);
      case T.REALPATH: {
        const raw = r.str();
        const p = resolve(raw);
        let real: string;
        try { real = fs.realpathSync(p); } catch { real = path.normalize(p); }
        return send(new Writer().u8(T.NAME).u32(id).u32(1).str(real).str(real).u32(0));
      }
      case T.RENAME: {
        const from = resolve(r.str());
        const to = resolve(r.str());
        // v3 semantics: refuse to overwrite (posix-rename@openssh.com overwrites).
        if (fs.existsSync(to)) return status(id, S.FAILURE, 'target exists');
        fs.renameSync(from, to);
        return status(id, S.OK);
      }
      case T.READLINK: {
        const target = fs.readlinkSync(resolve(r.str()));
        return send(new Writer().u8(T.NAME).u32(id).u32(1).str(target).str(target).u32(0));
      }
      case T.SYMLINK: {
        // OpenSSH sends (targetpath, linkpath) in the opposite order of the draft; follow OpenSSH.
        const target = r.str();
        const link = resolve(r.str());
        fs.symlinkSync(target, link);
        return status(id, S.OK);
      }
      case T.EXTENDED: return extended(id, r.str(), r);
      default: return status(id, S.OP_UNSUPPORTED, `unsupported request ${type}`);
    }
  };

  const extended = (id: number, name: string, r: Reader) => {
    switch (name) {
      case 'posix-rename@openssh.com': fs.renameSync(resolve(r.str()), resolve(r.str())); return status(id, S.OK);
      case 'hardlink@openssh.com': { const a = resolve(r.str()); fs.linkSync(a, resolve(r.str())); return status(id, S.OK); }
      case 'fsync@openssh.com': {
        const e = handles.get(r.str());
        if (!e || e.kind !== 'file') return status(id, S.FAILURE, 'bad handle');
        fs.fsyncSync(e.fd);
        return status(id, S.OK);
      }
      case 'expand-path@openssh.com': {
        let p = r.str();
        if (p === '~' || p.startsWith('~/')) p = home + p.slice(1);
        const full = resolve(p);
        return send(new Writer().u8(T.NAME).u32(id).u32(1).str(full).str(full).u32(0));
      }
      case 'limits@openssh.com':
        return send(new Writer().u8(T.EXTENDED_REPLY).u32(id).u64(MAX_PACKET).u64(MAX_READ).u64(MAX_READ).u64(1024));
      case 'statvfs@openssh.com': {
        const st = fs.statfsSync(resolve(r.str()));
        return send(new Writer().u8(T.EXTENDED_REPLY).u32(id).u64(st.bsize).u64(st.bsize).u64(st.blocks).u64(st.bfree).u64(st.bavail)
          .u64(st.files).u64(st.ffree).u64(st.ffree).u64(0).u64(0).u64(255));
      }
      default: return status(id, S.OP_UNSUPPORTED, `unsupported extension ${name}`);
    }
  };

  input.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len > MAX_PACKET + 1024) { process.exit(2); }
      if (buf.length < 4 + len) break;
      const pkt = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      const type = pkt.readUInt8(0);
      if (type === T.INIT) {
        const w = new Writer().u8(T.VERSION).u32(3);
        for (const [n, v] of [['posix-rename@openssh.com', '1'], ['statvfs@openssh.com', '2'], ['hardlink@openssh.com', '1'], ['fsync@openssh.com', '1'], ['expand-path@openssh.com', '1'], ['limits@openssh.com', '1']]) w.str(n!).str(v!);
        send(w);
        continue;
      }
      const r = new Reader(pkt);
      r.o = 1;
      let id = 0;
      try {
        id = r.u32();
        handle(type, id, r);
      } catch (err) {
        if ((err as Error).message === 'short' || err instanceof RangeError) status(id, S.BAD_MESSAGE, 'bad message');
        else fail(id, err);
      }
    }
  });
  input.on('end', () => {
    for (const h of handles.values()) if (h.kind === 'file') try { fs.closeSync(h.fd); } catch { /* closing */ }
    process.exit(0);
  });
}

/** The argv marker that starts the server when the bundle runs with `node -e <bundle> <marker>`. */
export const SFTP_MAIN_FLAG = 'hearth-sftp-server';
if (process.argv.includes(SFTP_MAIN_FLAG)) runSftpServer(process.stdin, process.stdout);
