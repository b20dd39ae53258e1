/** What a route handler receives. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Params } from '../router.ts';

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  /** Path after any `/runtimes/<target>` prefix was removed. */
  path: string;
  query: URLSearchParams;
  params: Params;
}

/**
 * A handler returns the JSON object to send with status 200, or `undefined`
 * when it wrote the response itself (SSE, NDJSON, tar streams).
 */
export type Handler = (ctx: Ctx) => Promise<object | undefined> | object | undefined;
