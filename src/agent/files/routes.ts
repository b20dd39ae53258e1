/** File routes (spec §22.3). Thin: parse, call the file service, shape the reply. */
import { readJson } from '../http/body.ts';
import type { Ctx, Handler } from '../http/context.ts';
import { boolParam, q } from '../../core/agent-protocol/params.ts';
import { openNdjson } from '../http/reply.ts';
import type { Router } from '../router.ts';
import { statBody } from './entry.ts';
import { toAgentError } from '../../core/agent-protocol/errors.ts';
import { checkListRoot, LIST_ENTRY_CAP, listEntries, listFiles, parseListOptions } from './list.ts';
import { copyPath, deletePath, makeDir, movePath } from './ops.ts';
import { resolvePath } from './paths.ts';
import { parseReadRequest, readFileBody } from './read.ts';
import { parseMaybeMode, parseWriteRequest, writeFileAt } from './write.ts';

/** NDJSON stream cap: higher than the JSON list, the client consumes as it goes. */
const STREAM_ENTRY_CAP = 10 * LIST_ENTRY_CAP;

export function registerFileRoutes(router: Router<Handler>): void {
  router.add('GET', '/files', async ({ query }: Ctx) => {
    const opts = parseListOptions(query);
    const result = await listFiles(opts);
    return { success: true, path: opts.root, entries: result.entries, count: result.count, truncated: result.truncated };
  });

  router.add('GET', '/files/stream', async ({ query, res }: Ctx) => {
    const opts = parseListOptions(query);
    await checkListRoot(opts.root); // errors before the 200 goes out
    const out = openNdjson(res);
    out.write({ event: 'start', path: opts.root });
    let count = 0;
    let truncated = false;
    try {
      for await (const entry of listEntries(opts)) {
        if (!out.isOpen()) return undefined;
        if (count >= STREAM_ENTRY_CAP) {
          truncated = true;
          break;
        }
        count++;
        if (!out.write(entry)) await out.drain();
      }
      out.write({ event: 'done', path: opts.root, count, truncated });
    } catch (err) {
      // The SDK skips lines with an `event`: an error line without one reaches the caller as the
      // runtime's error shape, and the done line says the listing is incomplete.
      const e = toAgentError(err);
      out.write({ success: false, error: e.code, code: e.code, message: e.message, path: opts.root, ...(e.details ? { details: e.details } : {}) });
      out.write({ event: 'done', path: opts.root, count, truncated: true, error: e.code });
      out.end();
      return undefined;
    }
    out.end();
    return undefined;
  });

  router.add('GET', '/files/read', async ({ query }: Ctx) => readFileBody(parseReadRequest(query)));

  router.add('POST', '/files/write', async ({ req }: Ctx) => {
    const result = await writeFileAt(parseWriteRequest(await readJson(req)));
    return { success: true, ...result };
  });

  router.add('POST', '/files/mkdir', async ({ req }: Ctx) => {
    const body = await readJson(req);
    const path = resolvePath(body.path);
    await makeDir(path, parseMaybeMode(body.mode));
    return { success: true, path };
  });

  router.add('GET', '/files/stat', async ({ query }: Ctx) => statBody(resolvePath(q(query, 'path'))));

  router.add('POST', '/files/delete', async ({ req, query }: Ctx) => {
    const body = await readJson(req);
    const path = resolvePath(body.path ?? q(query, 'path'));
    const recursive = boolParam(body.recursive ?? q(query, 'recursive'), 'recursive') ?? true;
    await deletePath(path, recursive);
    return { success: true, path };
  });

  router.add('POST', '/files/move', async ({ req }: Ctx) => {
    const body = await readJson(req);
    const from = resolvePath(body.from ?? body.source, 'from');
    const to = resolvePath(body.to ?? body.destination, 'to');
    await movePath(from, to, boolParam(body.overwrite, 'overwrite') ?? false);
    return { success: true, from, to, path: to };
  });

  router.add('POST', '/files/copy', async ({ req }: Ctx) => {
    const body = await readJson(req);
    const from = resolvePath(body.from ?? body.source, 'from');
    const to = resolvePath(body.to ?? body.destination, 'to');
    await copyPath(from, to, boolParam(body.overwrite, 'overwrite') ?? false);
    return { success: true, from, to, path: to };
  });
}
