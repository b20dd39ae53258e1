/**
 * `hearth ca` — the Hearth CA that signs preview certificates. Prints its
 * certificate (PEM) on stdout; `--install` adds it to this machine's trust
 * store (Debian/Ubuntu: /usr/local/share/ca-certificates +
 * update-ca-certificates), `--uninstall` removes it again. Browsers with
 * their own store (Firefox) need the PEM imported by hand.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseFlags } from '../args/parse.ts';
import { ArgError } from '../args/listen.ts';
import { HearthCA } from '../../edge/ca.ts';

const USAGE = 'usage: hearth ca [--data-dir DIR] [--install | --uninstall] [--json]';
export const TRUST_DIR = '/usr/local/share/ca-certificates';

/** Pure: the trust-store file name for a CA fingerprint (stable per CA, so install is idempotent). */
export function trustFileName(fingerprint256: string): string {
  return `hearth-ca-${fingerprint256.replace(/:/g, '').slice(0, 16).toLowerCase()}.crt`;
}

export async function caCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { 'data-dir': 'string', install: 'boolean', uninstall: 'boolean', json: 'boolean' }, USAGE);
  if (f.install && f.uninstall) throw new ArgError('--install and --uninstall exclude each other', USAGE);
  const dataDir = path.resolve(String(f['data-dir'] ?? '/var/lib/hearth/data'));
  const ca = await HearthCA.open(dataDir);
  const fp = ca.fingerprint();
  const file = path.join(TRUST_DIR, trustFileName(fp));
  if (f.install || f.uninstall) {
    if (f.install) {
      await fs.mkdir(TRUST_DIR, { recursive: true });
      await fs.writeFile(file, ca.certPem, { mode: 0o644 });
    } else {
      await fs.rm(file, { force: true });
    }
    const r = spawnSync('update-ca-certificates', f.uninstall ? ['--fresh'] : [], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.error || r.status !== 0) {
      process.stderr.write(`hearth ca: update-ca-certificates failed (${r.error?.message ?? `exit ${r.status}`}); is the ca-certificates package installed?\n`);
      return 1;
    }
    process.stderr.write(`${f.install ? 'trusted' : 'removed'}: ${file} (SHA-256 ${fp})\n`);
  }
  if (f.json) process.stdout.write(JSON.stringify({ fingerprint_sha256: fp, pem: ca.certPem, trust_file: file }, null, 2) + '\n');
  else if (!f.install && !f.uninstall) process.stdout.write(ca.certPem);
  return 0;
}
