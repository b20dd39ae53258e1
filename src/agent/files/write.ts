/**
 * POST /files/write (spec §22.3). Missing parents are created unless
 * `create_dirs:false` (the seed writes `/app/index.js` without asking).
 * `mode` is an octal string and is applied with chmod after the write, so
 * it holds whatever the umask and whether the file existed. Extension:
 * `encoding:'base64'` for binary content.
 */
import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AgentError, validation } from '../../core/agent-protocol/errors.ts';
import { boolParam, stringParam } from '../../core/agent-protocol/params.ts';
import { parseMode } from './kinds.ts';
import { resolvePath } from './paths.ts';

export const WRITE_LIMIT_BYTES = 64 * 1024 * 1024;

export interface WriteRequest {
  path: string;
  data: Buffer;
  createDirs: boolean;
  append: boolean;
  mode?: number;
}

export function parseMaybeMode(v: unknown, field = 'mode'): number | undefined {
  const mode = parseMode(v);
  if (mode !== undefined && Number.isNaN(mode)) throw validation(field, `${field} must be an octal string such as "0644"`);
  return mode;
}

export function parseWriteRequest(body: Record<string, unknown>): WriteRequest {
  const content = stringParam(body.content, 'content') ?? '';
  const encoding = (stringParam(body.encoding, 'encoding') ?? 'utf8').toLowerCase();
  let data: Buffer;
  if (encoding === 'base64') {
    if (!/^[A-Za-z0-9+/\-_\s]*={0,2}\s*$/.test(content)) throw validation('content', 'content is not valid base64');
    data = Buffer.from(content, 'base64');
  } else if (encoding === 'utf8' || encoding === 'utf-8') {
    data = Buffer.from(content, 'utf8');
  } else {
    throw validation('encoding', "encoding must be 'utf8' or 'base64'");
  }
  if (data.length > WRITE_LIMIT_BYTES) {
    throw new AgentError('payload_too_large', `Content of ${data.length} bytes exceeds the ${WRITE_LIMIT_BYTES}-byte write limit; upload with POST /files/transfer/upload`, { limit: WRITE_LIMIT_BYTES });
  }
  const req: WriteRequest = {
    path: resolvePath(body.path ?? body.fullPath ?? body.filePath),
    data,
    createDirs: boolParam(body.create_dirs ?? body.createDirs, 'create_dirs') ?? true,
    append: boolParam(body.append, 'append') ?? false,
  };
  const mode = parseMaybeMode(body.mode);
  if (mode !== undefined) req.mode = mode;
  return req;
}

export async function writeFileAt(r: WriteRequest): Promise<{ path: string; size: number }> {
  if (r.createDirs) await mkdir(dirname(r.path), { recursive: true });
  await writeFile(r.path, r.data, { flag: r.append ? 'a' : 'w', ...(r.mode !== undefined ? { mode: r.mode } : {}) });
  if (r.mode !== undefined) await chmod(r.path, r.mode);
  const st = await stat(r.path);
  return { path: r.path, size: st.size };
}
