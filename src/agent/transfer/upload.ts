/**
 * POST /files/transfer/upload?dest= (spec §22.8): extract a streamed tar
 * (gzip detected) under `dest`. Every entry is checked before it is
 * written; the first entry that would land outside `dest` — an absolute
 * path, a `..` segment, a hard link out, a symlink whose target leaves
 * `dest` — aborts the upload with 400 (entries before it stay extracted).
 * node-tar additionally refuses to write through symlinks. The total
 * unpacked size is capped (gzip bombs), as is node-tar's compression ratio.
 * Owners are not taken from the archive: files belong to the agent's user.
 */
import type { IncomingMessage } from 'node:http';
import { mkdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { AgentError } from '../../core/agent-protocol/errors.ts';

export const UPLOAD_LIMIT_BYTES = 8 * 1024 * 1024 * 1024;

interface EntryLike {
  path: string;
  type: string;
  size?: number;
  linkpath?: string;
}

/** Why `entry` may not be extracted under dest, or undefined when it is safe. */
export function unsafeEntry(entry: EntryLike): string | undefined {
  const p = entry.path.replace(/\\/g, '/');
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return `absolute path ${JSON.stringify(entry.path)}`;
  if (p.split('/').includes('..')) return `path ${JSON.stringify(entry.path)} contains '..'`;
  if (entry.type === 'Link' || entry.type === 'SymbolicLink') {
    const target = (entry.linkpath ?? '').replace(/\\/g, '/');
    if (target.startsWith('/')) return `${entry.type === 'Link' ? 'hard link' : 'symlink'} ${JSON.stringify(entry.path)} points to absolute ${JSON.stringify(target)}`;
    // Hard link targets are relative to dest; symlink targets to the link's directory.
    const base = entry.type === 'Link' ? '' : posix.dirname(p);
    const resolved = posix.normalize(posix.join(base, target));
    if (resolved === '..' || resolved.startsWith('../')) {
      return `${entry.type === 'Link' ? 'hard link' : 'symlink'} ${JSON.stringify(entry.path)} escapes the destination (${JSON.stringify(target)})`;
    }
  }
  return undefined;
}

export async function extractUpload(req: IncomingMessage, dest: string, limit: number): Promise<{ files_extracted: number }> {
  await mkdir(dest, { recursive: true });
  // Loaded on first use: keeps node-tar off the agent's startup path.
  const { Unpack } = await import('tar');
  return new Promise((resolve, reject) => {
    let settled = false;
    let violation: AgentError | undefined;
    let bytes = 0;
    let extracted = 0;
    const entryErrors: string[] = [];

    const finish = (err?: AgentError): void => {
      if (settled) return;
      settled = true;
      req.unpipe(unpack);
      if (err) {
        req.resume(); // drain the rest so the client can read our answer
        reject(err);
      } else {
        resolve({ files_extracted: extracted });
      }
    };

    const unpack = new Unpack({
      cwd: dest,
      preserveOwner: false,
      filter: (_path: string, entry: unknown) => {
        const e = entry as EntryLike;
        if (violation) return false;
        const why = unsafeEntry(e);
        if (why) {
          violation = new AgentError('bad_request', `Unsafe archive entry rejected: ${why}`, { entry: e.path });
        } else if ((bytes += e.size ?? 0) > limit) {
          violation = new AgentError('payload_too_large', `Archive unpacks to more than ${limit} bytes`, { limit });
        }
        if (violation) {
          unpack.abort(violation);
          return false;
        }
        if (e.type !== 'Directory') extracted++;
        return true;
      },
      onwarn: (code: string, message: string) => {
        if (code === 'TAR_ENTRY_ERROR' || code === 'TAR_ENTRY_INVALID') entryErrors.push(message);
      },
    });
    unpack.on('error', (err: Error) => {
      finish(violation ?? new AgentError('bad_request', `Invalid tar archive: ${err.message}`));
    });
    unpack.on('close', () => {
      if (entryErrors.length > 0) {
        finish(new AgentError('bad_request', `Some entries could not be extracted: ${entryErrors.slice(0, 5).join('; ')}`, { errors: entryErrors.slice(0, 50), files_extracted: extracted }));
        return;
      }
      finish(violation);
    });
    req.on('error', () => finish(new AgentError('bad_request', 'Upload connection failed')));
    req.pipe(unpack as unknown as NodeJS.WritableStream);
  });
}
