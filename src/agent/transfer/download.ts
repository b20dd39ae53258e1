/**
 * POST /files/transfer/download (spec §22.8): a tar.gz of `paths`, entries
 * relative to `/` (`app/src/x.js`) so extraction recreates the tree. The
 * archive is produced as the client reads it: files are read in chunks by
 * node-tar, never held whole in memory. Symlinks are stored as symlinks.
 */
import { lstat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { validation } from '../errors.ts';
import { excludedWithAncestors, GlobSet } from '../files/glob.ts';
import { resolvePath } from '../files/paths.ts';
import { listParam } from '../http/params.ts';

export interface DownloadRequest {
  /** Relative to `/`, validated to exist. */
  entries: string[];
  exclude: GlobSet;
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
  return { entries: [...new Set(entries)], exclude };
}

export async function streamDownload(r: DownloadRequest, res: ServerResponse): Promise<void> {
  // Loaded on first use: keeps node-tar's parse and init off the agent's startup path.
  const { create: tarCreate } = await import('tar');
  const pack = tarCreate(
    {
      gzip: true,
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
    'content-type': 'application/gzip',
    'content-disposition': 'attachment; filename="download.tar.gz"',
    'cache-control': 'no-store',
  });
  try {
    await pipeline(pack as unknown as NodeJS.ReadableStream, res);
  } catch {
    // The 200 is gone; cutting the connection tells the client the archive is incomplete.
    res.destroy();
  }
}
