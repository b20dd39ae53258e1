/**
 * The edge and SSH flags of `hearth serve`, parsed into PublicPlaneOptions.
 * Pure. Defaults follow `--listen`: when the control plane picks a free port
 * (`:0`, tests) every public listener does too; otherwise the edge takes
 * 7080 (HTTP) and 7443 (HTTPS) and the SSH gateway 2222 on the same host.
 * `off` turns a listener off.
 */
import { ArgError, parseListen, type ListenArg } from './listen.ts';
import type { PublicPlaneOptions } from '../../edge/plane.ts';
import { normalizeHost } from '../../core/hostnames.ts';

export const PUBLIC_PLANE_FLAGS = {
  'edge-listen': 'string', 'edge-tls-listen': 'string', 'ssh-listen': 'string', 'preview-domain': 'string',
  'acme-directory': 'string', 'acme-email': 'string', 'dns-server': 'string', 'domain-recheck': 'string',
} as const;

export const PUBLIC_PLANE_USAGE = '[--edge-listen HOST:PORT|off] [--edge-tls-listen HOST:PORT|off] [--ssh-listen HOST:PORT|off] [--preview-domain NAME] [--acme-directory URL [--acme-email ADDR]] [--dns-server HOST:PORT] [--domain-recheck SECONDS]';

export function parsePublicPlaneFlags(f: Record<string, unknown>, api: ListenArg): PublicPlaneOptions {
  const listen = (flag: string, dflt: number): ListenArg | null => {
    const v = f[flag];
    if (v === 'off' || v === 'none') return null;
    if (v === undefined) return { host: api.host, port: api.port === 0 ? 0 : dflt };
    return parseListen(`--${flag}`, String(v));
  };
  const opts: PublicPlaneOptions = {
    edgeHttp: listen('edge-listen', 7080),
    edgeHttps: listen('edge-tls-listen', 7443),
    ssh: listen('ssh-listen', 2222),
  };
  if (f['preview-domain'] !== undefined) {
    const d = normalizeHost(String(f['preview-domain']));
    if (!d || !d.includes('.')) throw new ArgError(`--preview-domain ${JSON.stringify(f['preview-domain'])} is not a domain name`, 'example: --preview-domain preview.localhost (browsers resolve *.localhost to this machine)');
    opts.previewDomain = d;
  }
  if (f['acme-directory'] !== undefined) {
    const u = String(f['acme-directory']);
    if (!/^https:\/\/[^\s]+$/.test(u)) throw new ArgError(`--acme-directory ${JSON.stringify(u)} is not an https:// URL`, 'example: --acme-directory https://acme-v02.api.letsencrypt.org/directory');
    opts.acmeDirectory = u;
  }
  if (f['acme-email'] !== undefined) opts.acmeEmail = String(f['acme-email']);
  if (f['dns-server'] !== undefined) {
    opts.dnsServers = String(f['dns-server']).split(',').map((s) => s.trim()).filter(Boolean);
    for (const s of opts.dnsServers) parseListen('--dns-server', s.includes(':') ? s : `${s}:53`);
  }
  if (f['domain-recheck'] !== undefined) {
    // How often pending domain claims look for their TXT record again.
    const v = Number(f['domain-recheck']);
    if (!Number.isInteger(v) || v < 1 || v > 86_400) throw new ArgError(`--domain-recheck ${JSON.stringify(f['domain-recheck'])} is not a number of seconds`, 'example: --domain-recheck 30 (1 to 86400)');
    opts.domainRecheckMs = v * 1000;
  }
  return opts;
}
