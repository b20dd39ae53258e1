/**
 * A writer for the cpio "newc" format, the one the Linux kernel unpacks as
 * an initramfs. Written here (~50 lines) rather than depending on the cpio
 * package: the archive is small, its entries are fixed by the initramfs
 * recipe, and a pure encoder is easy to pin in a test.
 *
 * Every entry has mtime 0 and uid/gid 0, so the same recipe gives the same
 * bytes (the archive's hash is its cache key).
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; data: Uint8Array }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function header(ino: number, mode: number, nlink: number, size: number, rmajor: number, rminor: number, nameLen: number): string {
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  return `070701${[ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, nameLen, 0].map(hex8).join('')}`;
}

/** Encode entries (parents before children) into one newc archive, trailer included. */
export function encodeCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    offset += b.length;
  };
  const entry = (ino: number, mode: number, nlink: number, name: string, data: Uint8Array, rmajor = 0, rminor = 0) => {
    const nameBytes = Buffer.from(`${name}\0`, 'utf8');
    push(Buffer.from(header(ino, mode, nlink, data.length, rmajor, rminor, nameBytes.length), 'ascii'));
    push(nameBytes);
    push(Buffer.alloc(pad4(offset)));
    push(Buffer.from(data));
    push(Buffer.alloc(pad4(offset)));
  };
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (!name || name.split('/').includes('..')) throw new Error(`cpio: bad path ${JSON.stringify(e.path)}`);
    switch (e.type) {
      case 'dir': entry(ino++, S_IFDIR | (e.mode & 0o7777), 2, name, new Uint8Array()); break;
      case 'file': entry(ino++, S_IFREG | (e.mode & 0o7777), 1, name, e.data); break;
      case 'symlink': entry(ino++, S_IFLNK | 0o777, 1, name, Buffer.from(e.target, 'utf8')); break;
      case 'chardev': entry(ino++, S_IFCHR | (e.mode & 0o7777), 1, name, new Uint8Array(), e.major, e.minor); break;
    }
  }
  entry(0, 0, 1, 'TRAILER!!!', new Uint8Array());
  return Buffer.concat(parts);
}
