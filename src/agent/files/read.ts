/**
 * GET /files/read (spec §22.3): UTF-8 text with optional 1-based inclusive
 * line ranges and line numbers. Extensions: `encoding=base64` for binary
 * content and `offset`/`length` byte ranges. Whole-file reads are refused
 * above READ_LIMIT_BYTES — the JSON body would be enormous — with a message
 * pointing at the streaming tar transfer.
 */
import { open, stat } from 'node:fs/promises';
import { AgentError, validation } from '../../core/agent-protocol/errors.ts';
import { boolParam, intParam, q } from '../../core/agent-protocol/params.ts';
import { extensionOf } from './kinds.ts';
import { resolvePath } from './paths.ts';
import { basename } from 'node:path';

export const READ_LIMIT_BYTES = 50 * 1024 * 1024;

export interface ReadRequest {
  path: string;
  encoding: 'utf8' | 'base64';
  startLine?: number;
  endLine?: number;
  withLineNumbers: boolean;
  offset?: number;
  length?: number;
}

export function parseReadRequest(query: URLSearchParams): ReadRequest {
  const enc = (q(query, 'encoding') ?? 'utf8').toLowerCase();
  if (enc !== 'utf8' && enc !== 'utf-8' && enc !== 'base64') throw validation('encoding', "encoding must be 'utf8' or 'base64'");
  const req: ReadRequest = {
    path: resolvePath(q(query, 'path') ?? q(query, 'filePath')),
    encoding: enc === 'base64' ? 'base64' : 'utf8',
    withLineNumbers: boolParam(q(query, 'with_line_numbers'), 'with_line_numbers') ?? false,
  };
  const start = intParam(q(query, 'start_line'), 'start_line', 1, Number.MAX_SAFE_INTEGER);
  const end = intParam(q(query, 'end_line'), 'end_line', 1, Number.MAX_SAFE_INTEGER);
  if (start !== undefined) req.startLine = start;
  if (end !== undefined) req.endLine = end;
  if (start !== undefined && end !== undefined && end < start) throw validation('end_line', 'end_line must be >= start_line');
  const offset = intParam(q(query, 'offset'), 'offset', 0, Number.MAX_SAFE_INTEGER);
  const length = intParam(q(query, 'length'), 'length', 0, READ_LIMIT_BYTES);
  if (offset !== undefined) req.offset = offset;
  if (length !== undefined) req.length = length;
  return req;
}

async function readBytes(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/** Lines of `text`: a trailing newline does not start a new line. */
function splitLines(text: string): string[] {
  if (text.length === 0) return [];
  const lines = text.split('\n');
  if (text.endsWith('\n')) lines.pop();
  return lines;
}

export async function readFileBody(r: ReadRequest): Promise<Record<string, unknown>> {
  const st = await stat(r.path);
  if (st.isDirectory()) throw new AgentError('is_directory', `Is a directory: ${r.path}`, { path: r.path });
  const ranged = r.offset !== undefined || r.length !== undefined;
  if (!ranged && st.size > READ_LIMIT_BYTES) {
    throw new AgentError(
      'file_too_large',
      `File is ${st.size} bytes; reads are limited to ${READ_LIMIT_BYTES} bytes. ` +
        'Read a byte range with offset/length, or download it with POST /files/transfer/download.',
      { size: st.size, limit: READ_LIMIT_BYTES },
    );
  }
  const offset = r.offset ?? 0;
  const length = Math.min(r.length ?? READ_LIMIT_BYTES, Math.max(0, st.size - offset), READ_LIMIT_BYTES);
  const data = await readBytes(r.path, offset, length);

  const body: Record<string, unknown> = { success: true, path: r.path, size: st.size, encoding: r.encoding };
  const ext = extensionOf(basename(r.path));
  if (ext) body.extension = ext;
  if (ranged) {
    body.offset = offset;
    body.length = data.length;
  }
  if (data.subarray(0, 8192).includes(0)) body.binary = true;

  if (r.encoding === 'base64') {
    body.content = data.toString('base64');
    return body;
  }

  const text = data.toString('utf8');
  const lines = splitLines(text);
  body.lines = lines.length;
  const lineRange = r.startLine !== undefined || r.endLine !== undefined;
  if (!lineRange && !r.withLineNumbers) {
    body.content = text;
    return body;
  }
  const start = r.startLine ?? 1;
  const end = Math.min(r.endLine ?? lines.length, lines.length);
  const selected = start <= end ? lines.slice(start - 1, end) : [];
  const shown = r.withLineNumbers ? selected.map((l, i) => `${start + i}\t${l}`) : selected;
  // Keep the newline after the last selected line when the file has one there.
  const trailing = selected.length > 0 && (end < lines.length || text.endsWith('\n')) ? '\n' : '';
  body.content = shown.join('\n') + trailing;
  body.start_line = start;
  body.end_line = selected.length > 0 ? end : start - 1;
  return body;
}
