/** Transfer routes (spec §22.8): tar.gz both ways, streamed. */
import { readJson } from '../http/body.ts';
import type { Ctx, Handler } from '../http/context.ts';
import { intParam, q } from '../../core/agent-protocol/params.ts';
import { resolvePath } from '../files/paths.ts';
import type { Router } from '../router.ts';
import { parseDownloadRequest, streamDownload } from './download.ts';
import { extractUpload, UPLOAD_LIMIT_BYTES } from './upload.ts';

export function registerTransferRoutes(router: Router<Handler>): void {
  router.add('POST', '/files/transfer/download', async ({ req, res }: Ctx) => {
    const r = await parseDownloadRequest(await readJson(req));
    await streamDownload(r, res);
    return undefined;
  });

  router.add('POST', '/files/transfer/upload', async ({ req, query }: Ctx) => {
    const dest = resolvePath(q(query, 'dest'), 'dest', '/');
    // max_bytes may lower the limit, never raise it.
    const limit = Math.min(intParam(q(query, 'max_bytes'), 'max_bytes', 1, Number.MAX_SAFE_INTEGER) ?? UPLOAD_LIMIT_BYTES, UPLOAD_LIMIT_BYTES);
    const result = await extractUpload(req, dest, limit);
    return { success: true, dest, ...result };
  });
}
