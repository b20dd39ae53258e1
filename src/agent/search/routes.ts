/** Search routes (spec §22.4): the built-in engine, no ripgrep to install. */
import { readJson } from '../http/body.ts';
import type { Ctx, Handler } from '../http/context.ts';
import type { Router } from '../router.ts';
import { searchContent } from './content.ts';
import { searchNames } from './names.ts';
import { parseContentSearch, parseNameSearch, queryObject } from './options.ts';

export const SEARCH_ENGINE_VERSION = 'hearth-builtin';

async function params(ctx: Ctx): Promise<Record<string, unknown>> {
  const fromQuery = queryObject(ctx.query);
  return ctx.req.method === 'POST' ? { ...fromQuery, ...(await readJson(ctx.req)) } : fromQuery;
}

async function content(ctx: Ctx): Promise<object> {
  const s = parseContentSearch(await params(ctx));
  const r = await searchContent(s);
  // `matches` is a flat copy for the official CLI's pretty-printer (spec §22.4 note).
  const matches = Object.entries(r.results).flatMap(([path, list]) =>
    list.map((m) => ({ path, line_number: m.line, line: m.text, column: m.column })));
  return { success: true, query: s.query, path: s.root, ...r, matches };
}

async function names(ctx: Ctx): Promise<object> {
  const s = parseNameSearch(await params(ctx));
  return { success: true, query: s.query, path: s.root, ...(await searchNames(s)) };
}

const status = (): object => ({
  success: true,
  installed: true,
  path: 'builtin',
  version: SEARCH_ENGINE_VERSION,
  message: 'Hearth agent built-in search engine; nothing to install',
});

export function registerSearchRoutes(router: Router<Handler>): void {
  router.add('GET', '/files/search', content);
  router.add('POST', '/files/search', content);
  router.add('GET', '/files/search/files', names);
  router.add('POST', '/files/search/files', names);
  router.add('GET', '/files/search/init', status);
  router.add('POST', '/files/search/init', status);
}
