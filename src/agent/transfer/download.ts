/**
 * POST /files/transfer/download (spec §22.8): a tar.gz of `paths`, entries
 * relative to `/` (`app/src/x.js`) so extraction recreates the tree. The
 * archive is produced as the client reads it: files are read in chunks by
 * node-tar, never held whole in memory. Symlinks are stored as symlinks.
 */
import { close } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { WriteEntry } from 'tar';
import { validation } from '../../core/agent-protocol/errors.ts';
import { excludedWithAncestors, GlobSet } from '../files/glob.ts';
import { resolvePath } from '../files/paths.ts';
import { listParam, stringParam } from '../../core/agent-protocol/params.ts';

/**
 * gzip level of downloads. The archive is made as the client reads it, so
 * compression speed is transfer speed: level 1 runs several times faster
 * than the default 6 and gives up little ratio on source trees.
 */
export const DOWNLOAD_GZIP_LEVEL = 1;
const READ_CHUNK = 1024 * 1024;

export interface DownloadRequest {
  /** Relative to `/`, validated to exist. */
  entries: string[];
  exclude: GlobSet;
  /** Extension: `compression: 'none'` streams a plain tar (already-compressed or random data, fast links). */
  gzip: boolean;
}

export async function parseDownloadRequest(body: Record<string, unknown>): Promise<DownloadRequest> {
  const raw = listParam(body.paths ?? (typeof body.path === 'string' ? [body.path] : undefined), 'paths');
  if (!raw || raw.length === 0) throw validation('paths', 'paths must be a non-empty list of absolute paths');
  const entries: string[] = [];
  for (const p of raw) {
    const abs = resolvePath(p, 'paths');
    if (abs === '/') throw validation('paths', 'refusing to archive the whole filesystem (/); name directories instead');
    await lstat(abs); // 404 before any byte is sent
    entries.push(abs.slice(1));
  }
  const exclude = new GlobSet(listParam(body.exclude_patterns ?? body.excludes, 'exclude_patterns') ?? []);
  const compression = (stringParam(body.compression, 'compression') ?? 'gzip').toLowerCase();
  if (compression !== 'gzip' && compression !== 'none') throw validation('compression', "compression must be 'gzip' (default) or 'none'");
  return { entries: [...new Set(entries)], exclude, gzip: compression === 'gzip' };
}

export async function streamDownload(r: DownloadRequest, res: ServerResponse): Promise<void> {
  // Loaded on first use: keeps node-tar's parse and init off the agent's startup path.
  const { create: tarCreate } = await import('tar');
  // Files node-tar has open. A client that goes away leaves node-tar waiting for a
  // 'drain' that never comes, holding its file open: those are closed below.
  const open = new Set<WriteEntry>();
  const pack = tarCreate(
    {
      onWriteEntry: (entry) => {
        open.add(entry);
        entry.once('end', () => open.delete(entry));
      },
      // gzip runs in node:zlib below (libuv's thread pool, with backpressure), not in
      // node-tar's synchronous minizlib, which buffered the output of whole reads.
      gzip: false,
      // Reads of 1 MiB instead of 16: what is in flight per file stays small.
      maxReadSize: READ_CHUNK,
      cwd: '/',
      portable: true,
      // node-tar hands the path as given (relative): exclude by any segment.
      // On create, node-tar passes fs.Stats (ReadEntry only when re-packing an archive).
      filter: (path, st) => {
        const isDir = 'isDirectory' in st ? st.isDirectory() : st.type === 'Directory';
        return !excludedWithAncestors(r.exclude, path.replace(/^\.\//, '').replace(/\/$/, ''), isDir);
      },
    },
    r.entries,
  );
  res.writeHead(200, {
    'content-type': r.gzip ? 'application/gzip' : 'application/x-tar',
    'content-disposition': `attachment; filename="download.tar${r.gzip ? '.gz' : ''}"`,
    'cache-control': 'no-store',
  });
  try {
    const source = Readable.from(pack as unknown as AsyncIterable<Buffer>);
    if (r.gzip) await pipeline(source, createGzip({ level: DOWNLOAD_GZIP_LEVEL, chunkSize: 256 * 1024 }), res);
    else await pipeline(source, res);
  } catch {
    // The 200 is gone; cutting the connection tells the client the archive is incomplete.
    res.destroy();
    (pack as unknown as { on(ev: 'error', fn: () => void): void }).on('error', () => { /* abandoned */ });
    for (const entry of open) {
      const fd = entry.fd;
      entry.fd = undefined;
      if (fd !== undefined) close(fd, () => { /* already closed */ });
    }
    open.clear();
  }
}
