/**
 * Where a `/proxy` request goes (spec §22.10). Target from, in order:
 * the `X-Oblien-Proxy-Target` header, the `x_oblien_target` query, or the
 * path form `/proxy/<port>/<rest>`. Target = `<port>` or `<host>:<port>`,
 * and only loopback hosts are allowed: the proxy reaches services inside
 * this workspace, never other machines.
 */
import { AgentError } from '../../core/agent-protocol/errors.ts';

export interface ProxyTarget {
  host: string;
  port: number;
  /** Path and query to send upstream (auth and routing params removed). */
  path: string;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|::1|\[::1\])$/i;

export function parseTargetSpec(spec: string): { host: string; port: number } {
  const s = spec.trim();
  let host = '127.0.0.1';
  let portText = s;
  const m = /^(.*):(\d+)$/.exec(s);
  if (m) {
    host = (m[1] as string) || '127.0.0.1';
    portText = m[2] as string;
  }
  if (!/^\d+$/.test(portText)) throw new AgentError('bad_request', `Invalid proxy target ${JSON.stringify(spec)}: expected <port> or <host>:<port>`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new AgentError('bad_request', `Invalid proxy port ${port}: must be 1–65535`);
  if (!LOOPBACK.test(host)) throw new AgentError('bad_request', `Proxy target host ${host} is not a loopback address; only services inside the workspace can be reached`);
  return { host: host.replace(/^\[|\]$/g, ''), port };
}

const STRIPPED_QUERY = ['token', 'x_oblien_target'];

/**
 * `pathAfterProxy` is the raw (still encoded) path after `/proxy`, e.g.
 * `/3000/api` or `/api`; `header` the X-Oblien-Proxy-Target value.
 */
export function resolveProxyTarget(pathAfterProxy: string, search: URLSearchParams, header: string | undefined): ProxyTarget {
  const query = new URLSearchParams(search);
  const fromQuery = query.get('x_oblien_target') ?? undefined;
  for (const k of STRIPPED_QUERY) query.delete(k);
  const qs = query.toString();
  const suffix = qs ? `?${qs}` : '';
  const explicit = header ?? fromQuery;
  if (explicit) {
    const { host, port } = parseTargetSpec(explicit);
    return { host, port, path: (pathAfterProxy || '/') + suffix };
  }
  const m = /^\/([^/]+)(\/.*)?$/.exec(pathAfterProxy);
  if (!m) throw new AgentError('bad_request', 'Missing proxy target: send X-Oblien-Proxy-Target, ?x_oblien_target=, or use /proxy/<port>/<path>');
  const { host, port } = parseTargetSpec(decodeURIComponent(m[1] as string));
  return { host, port, path: (m[2] ?? '/') + suffix };
}
