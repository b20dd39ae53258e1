/**
 * Whether this host can run the edge's data path: HAProxy 2.6 or newer at
 * /usr/sbin/haproxy (Debian's `haproxy`, installed by `hearth setup`),
 * built with OpenSSL (TLS termination and `set ssl cert`). `hearth doctor`
 * reports it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { HAPROXY_BINARY } from './haproxy.ts';

const run = promisify(execFile);

export interface ProxyProbe {
  available: boolean;
  binary: string;
  version: string | null;
  reason: string;
}

/** Pure: the first line of `haproxy -vv` and whether it names OpenSSL → the probe's verdict. */
export function judgeHaproxy(binary: string, vv: string): ProxyProbe {
  const m = /HAProxy version (\d+)\.(\d+)\.?(\d+)?\S*/.exec(vv);
  if (!m) return { available: false, binary, version: null, reason: `${binary} -vv did not print an HAProxy version` };
  const version = m[0].replace('HAProxy version ', '');
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major < 2 || (major === 2 && minor < 6)) return { available: false, binary, version, reason: `HAProxy ${version} is older than 2.6 (dynamic servers and the certificate API are needed)` };
  if (!/Built with OpenSSL/i.test(vv)) return { available: false, binary, version, reason: `HAProxy ${version} is built without OpenSSL (no TLS)` };
  return { available: true, binary, version, reason: `HAProxy ${version} with OpenSSL` };
}

export async function probeHaproxy(binary = HAPROXY_BINARY): Promise<ProxyProbe> {
  try {
    const { stdout } = await run(binary, ['-vv'], { timeout: 5000 });
    return judgeHaproxy(binary, stdout);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { available: false, binary, version: null, reason: code === 'ENOENT' ? `${binary} not found: run \`hearth setup\` (installs Debian's haproxy)` : `${binary} -vv failed: ${(err as Error).message}` };
  }
}
