/**
 * The registry client's transport: GET over node:http/https with redirects
 * followed (the Authorization header is dropped when a redirect leaves the
 * origin, as registries send blobs to storage hosts with signed URLs), and
 * the body as a Node stream. Every URL, the first and each redirect's, is
 * checked against the outbound policy (oci/outbound.ts) before it is
 * connected to, and names are resolved through its checked lookup. Node's own HTTP client streams several times
 * faster than fetch's web streams here (bench/images.ts), which matters for
 * layer blobs of hundreds of megabytes.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { checkUrl, checkedLookup, type OutboundPolicy } from './outbound.ts';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
  /** Final URL after redirects. */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
/**
 * Keep-alive agents, one pair per policy: a socket is only reused by a
 * request under the policy whose lookup checked it when it was opened.
 */
const agentsByPolicy = new Map<string, { http: http.Agent; https: https.Agent }>();
function agentsFor(policy: OutboundPolicy): { http: http.Agent; https: https.Agent } {
  const key = [...policy.listed].sort().join(',');
  let a = agentsByPolicy.get(key);
  if (!a) {
    a = { http: new http.Agent({ keepAlive: true, timeout: 60_000 }), https: new https.Agent({ keepAlive: true, timeout: 60_000 }) };
    agentsByPolicy.set(key, a);
  }
  return a;
}

export class HttpError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'HttpError';
  }
}

function once(url: URL, headers: Record<string, string>, signal: AbortSignal, policy: OutboundPolicy): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    try {
      checkUrl(policy, url);
    } catch (e) {
      return reject(e);
    }
    const mod = url.protocol === 'https:' ? https : http;
    // A policy with its own resolver (tests) gets no pooled sockets: each connection is looked up through it.
    const agents = policy.resolve ? null : agentsFor(policy);
    const agent = agents ? (url.protocol === 'https:' ? agents.https : agents.http) : false;
    const req = mod.get(url, { headers, signal, agent, lookup: checkedLookup(policy, url) }, (res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url: url.toString() });
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(e.name === 'OutboundRefusedError' ? e : Object.assign(new HttpError(e.message, e.code), { cause: e })));
  });
}

/**
 * GET `url`, following redirects, each checked against `policy` (a refusal
 * throws OutboundRefusedError); the caller consumes or destroys the body.
 */
export async function httpGet(url: string, headers: Record<string, string>, signal: AbortSignal, policy: OutboundPolicy): Promise<HttpResponse> {
  let current = new URL(url);
  const origin = current.origin;
  let h = { ...headers };
  for (let hop = 0; ; hop++) {
    const res = await once(current, h, signal, policy);
    if (!REDIRECTS.has(res.status)) return res;
    res.body.destroy();
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
