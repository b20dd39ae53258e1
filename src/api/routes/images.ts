/**
 * The image catalog (§19): `GET /workspace/images?search=&category=`.
 * Catalog builds, the seed's short names (with what they run right now and
 * the versions really inside) and every pulled or imported image.
 */
import { Readable } from 'node:stream';
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { queryString, type Json } from '../parse.ts';
import { ValidationFailed } from '../../core/errors.ts';
import { errorBody, toHttpError } from '../errors.ts';
import { openSse } from '../sse.ts';

function buildArgs(q: Json): Record<string, string> {
  const raw = q.build_arg;
  const list = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = typeof kv === 'string' ? kv.indexOf('=') : -1;
    if (eq <= 0) throw new ValidationFailed('build_arg', `build_arg ${JSON.stringify(kv)} must be KEY=value`);
    out[(kv as string).slice(0, eq)] = (kv as string).slice(eq + 1);
  }
  return out;
}

export const IMAGE_CATEGORIES = [
  { id: 'all', label: 'All' }, { id: 'os', label: 'Operating systems' }, { id: 'runtime', label: 'Runtimes' },
  { id: 'devtools', label: 'Developer tools' }, { id: 'database', label: 'Databases' },
  { id: 'ai', label: 'AI' }, { id: 'browser', label: 'Browsers' }, { id: 'infra', label: 'Infrastructure' },
];

export function imageRoutes(r: RouteTable, ctx: ApiContext): void {
  r.add('GET', '/workspace/images', 'workspace:read', async (req) => {
    const q = req.query as Json;
    const search = queryString(q, 'search')?.toLowerCase();
    const category = queryString(q, 'category');
    let images = await ctx.workspaces.catalog();
    if (category && category !== 'all') images = images.filter((i) => i.category === category);
    if (search) {
      images = images.filter((i) => [i.id, i.image, i.label, i.desc, i.note ?? '', i.resolves_to ?? '', ...(i.capabilities ?? []), ...i.aliases, ...Object.entries(i.versions).flat()]
        .some((s) => s.toLowerCase().includes(search)));
    }
    return { success: true, images, categories: IMAGE_CATEGORIES };
  });

  /**
   * Hearth extension: build an image from a Dockerfile. Body: the context as
   * a tar (`Content-Type: application/x-tar`); query: tag=NAME[:TAG],
   * dockerfile=PATH (in the context, default Dockerfile), build_arg=K=V…,
   * publish=1 (operator). Bad input before the build is a JSON error; then
   * the progress streams over SSE: `{type:"step"|"log"}` events, and last
   * `{type:"result", success:true, image, ref, name, digest}` or
   * `{type:"error", success:false, code, message, hint?}`.
   */
  r.add('POST', '/workspace/images/build', 'workspace:create', async (req, reply, p) => {
    const q = req.query as Json;
    const builds = ctx.imageBuilds;
    if (!builds) throw new ValidationFailed('build', 'this hearthd does not build images');
    const tag = queryString(q, 'tag');
    if (!tag) throw new ValidationFailed('tag', 'tag is required (tag=NAME[:TAG])', 'example: POST /workspace/images/build?tag=myapp:1 with the context as application/x-tar');
    const publish = ['1', 'true'].includes(queryString(q, 'publish') ?? '');
    builds.prepare(p, { tag, publish });
    if (!(req.body instanceof Readable)) throw new ValidationFailed('body', 'send the build context as a tar (Content-Type: application/x-tar)');
    const args = buildArgs(q);
    const { contextDir, dockerfile, cleanup } = await builds.receive(req.body, queryString(q, 'dockerfile') ?? 'Dockerfile');
    try {
      const sse = openSse(reply);
      try {
        const res = await builds.build(p, { tag, publish, contextDir, dockerfile, buildArgs: args }, (e) => sse.send(e));
        sse.send({ type: 'result', success: true, ...res });
      } catch (e) {
        sse.send({ type: 'error', ...errorBody(toHttpError(e)) });
      } finally {
        sse.end();
      }
      return reply;
    } finally {
      await cleanup();
    }
  });
}
