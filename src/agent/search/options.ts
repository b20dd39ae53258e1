/**
 * Search request parsing (spec §22.4). Query names are the SDK's wire
 * names; JSON bodies (POST) use the same keys.
 */
import { validation } from '../../core/agent-protocol/errors.ts';
import { GlobSet } from '../files/glob.ts';
import { FILE_TYPES } from '../files/kinds.ts';
import { resolvePath } from '../files/paths.ts';
import { boolParam, intParam, listParam } from '../../core/agent-protocol/params.ts';

export const DEFAULT_MAX_RESULTS = 1000;
const MAX_MAX_RESULTS = 100_000;
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface CommonSearch {
  query: string;
  root: string;
  caseSensitive: boolean;
  includeHidden: boolean;
  gitignore: boolean;
  ignore?: GlobSet;
  maxResults: number;
  timeoutMs: number;
}

export interface ContentSearch extends CommonSearch {
  pattern: RegExp;
  contextLines: number;
  extensions?: Set<string>;
}

type Params = Record<string, unknown>;

/**
 * `timeout` is seconds; values of 1000 and above are taken as milliseconds
 * (clients disagree, and nobody means a 17-minute search).
 */
function parseTimeout(v: unknown): number {
  if (v === undefined || v === null || v === '') return DEFAULT_TIMEOUT_MS;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw validation('timeout', 'timeout must be a positive number of seconds');
  return Math.min(n >= 1000 ? n : n * 1000, 10 * 60 * 1000);
}

function parseCommon(p: Params): CommonSearch {
  const query = p.q ?? p.query ?? p.pattern;
  if (typeof query !== 'string' || query.length === 0) throw validation('q', 'q (the search query) is required');
  const ignore = listParam(p.ignore_patterns, 'ignore_patterns');
  const common: CommonSearch = {
    query,
    root: resolvePath(p.path, 'path', '/'),
    caseSensitive: boolParam(p.case_sensitive, 'case_sensitive') ?? false,
    includeHidden: boolParam(p.include_hidden, 'include_hidden') ?? false,
    gitignore: !(boolParam(p.no_gitignore, 'no_gitignore') ?? false),
    maxResults: intParam(p.max_results, 'max_results', 1, MAX_MAX_RESULTS) ?? DEFAULT_MAX_RESULTS,
    timeoutMs: parseTimeout(p.timeout),
  };
  if (ignore) common.ignore = new GlobSet(ignore);
  return common;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function parseContentSearch(p: Params): ContentSearch {
  const common = parseCommon(p);
  const isRegex = boolParam(p.regex, 'regex') ?? false;
  const wholeWord = boolParam(p.whole_word, 'whole_word') ?? false;
  let source = isRegex ? common.query : escapeRegExp(common.query);
  if (wholeWord) source = `\\b(?:${source})\\b`;
  let pattern: RegExp;
  try {
    pattern = new RegExp(source, common.caseSensitive ? '' : 'i');
  } catch (err) {
    throw validation('q', `invalid regular expression: ${(err as Error).message}`);
  }
  const search: ContentSearch = {
    ...common,
    pattern,
    contextLines: intParam(p.context_lines, 'context_lines', 0, 100) ?? 0,
  };
  const types = listParam(p.file_types, 'file_types');
  if (types) {
    search.extensions = new Set(types.flatMap((t) => {
      const key = t.replace(/^\./, '').toLowerCase();
      return FILE_TYPES[key] ?? [key];
    }));
  }
  return search;
}

export function parseNameSearch(p: Params): CommonSearch {
  return parseCommon(p);
}

/** Query string → plain object, so GET and POST share one parser. */
export function queryObject(query: URLSearchParams): Params {
  const out: Params = {};
  for (const [k, v] of query) out[k] = v;
  return out;
}
