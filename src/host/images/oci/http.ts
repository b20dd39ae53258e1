/**
 * The registry client's transport: GET over node:http/https with redirects
 * followed (the Authorization header is dropped when a redirect leaves the
 * origin, as registries send blobs to storage hosts with signed URLs), and
 * the body as a Node stream. Node's own HTTP client streams several times
 * faster than fetch's web streams here (bench/images.ts), which matters for
 * layer blobs of hundreds of megabytes.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
  /** Final URL after redirects. */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

export class HttpError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'HttpError';
  }
}

function once(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : null;
    if (!mod) return reject(new HttpError(`unsupported URL scheme ${url.protocol}`));
    const req = mod.get(url, { headers, signal, agent: url.protocol === 'https:' ? agents.https : agents.http }, (res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url: url.toString() });
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(Object.assign(new HttpError(e.message, e.code), { cause: e })));
  });
}

/** GET `url`, following redirects; the caller consumes or destroys the body. */
export async function httpGet(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
  let current = new URL(url);
  const origin = current.origin;
  let h = { ...headers };
  for (let hop = 0; ; hop++) {
    const res = await once(current, h, signal);
    if (!REDIRECTS.has(res.status)) return res;
    res.body.resume();
    const location = res.headers.location;
    if (!location) return res;
    if (hop >= MAX_REDIRECTS) throw new HttpError(`more than ${MAX_REDIRECTS} redirects from ${url}`);
    current = new URL(location, current);
    // Credentials for the registry are not for the storage host it redirects to.
    if (current.origin !== origin) {
      const { authorization: _, ...rest } = h;
      h = rest;
    }
  }
}

export function header(res: HttpResponse, name: string): string | null {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
}
