/**
 * `hearth console-link` — print a one-time sign-in link to the web console.
 * It writes the link's hash into hearthd's store (the data dir's SQLite
 * file, or --store / HEARTH_STORE as for `hearth serve`) and prints the URL; the link signs in as the
 * chosen API key (default: the admin key of credentials.json), works once,
 * and expires after --ttl minutes (default 10, at most 60).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseFlags } from '../args/parse.ts';
import { ArgError } from '../args/listen.ts';
import { openStore } from '../../store/open.ts';
import { ConsoleSessions } from '../../console/sessions.ts';

const USAGE = 'usage: hearth console-link [--data-dir DIR] [--store postgresql://…] [--client-id ID] [--ttl MINUTES] [--json]';

export async function consoleLinkCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { 'data-dir': 'string', store: 'string', 'client-id': 'string', ttl: 'string', json: 'boolean' }, USAGE);
  const dataDir = path.resolve(String(f['data-dir'] ?? '/var/lib/hearth/data'));
  const ttlMin = f.ttl === undefined ? 10 : Number(f.ttl);
  if (!Number.isInteger(ttlMin) || ttlMin < 1 || ttlMin > 60) throw new ArgError(`--ttl ${JSON.stringify(f.ttl)} is not a number of minutes from 1 to 60`, 'example: hearth console-link --ttl 5');
  const endpoints = JSON.parse(await fs.readFile(path.join(dataDir, 'endpoints.json'), 'utf8').catch(() => {
    throw new ArgError(`no ${path.join(dataDir, 'endpoints.json')}: is hearthd running with this data dir?`, 'start it with: hearth serve --data-dir DIR');
  })) as { console?: string; api: string };
  let clientId = f['client-id'] === undefined ? undefined : String(f['client-id']);
  if (!clientId) {
    const creds = await fs.readFile(path.join(dataDir, 'credentials.json'), 'utf8').catch(() => null);
    clientId = creds ? (JSON.parse(creds) as { clientId?: string }).clientId : undefined;
  }
  // The store hearthd uses: --store wins over HEARTH_STORE, neither = SQLite in the data dir (as `hearth serve`).
  const { db } = await openStore(f.store !== undefined ? String(f.store) : process.env.HEARTH_STORE || undefined, dataDir, (m) => process.stderr.write(`${m}\n`));
  try {
    const key = clientId
      ? await db.selectFrom('api_keys').select(['client_id', 'revoked_at']).where('client_id', '=', clientId).executeTakeFirst()
      : await db.selectFrom('api_keys').select(['client_id', 'revoked_at']).where('is_admin', '=', 1).where('revoked_at', 'is', null).orderBy('created_at').executeTakeFirst();
    if (!key) throw new ArgError(clientId ? `no API key ${clientId} in this store` : 'this store has no live admin key', 'pass --client-id of a live key (GET /keys lists them)');
    if (key.revoked_at) throw new ArgError(`API key ${key.client_id} is revoked`, 'pass --client-id of a live key');
    const link = await new ConsoleSessions(db).createLink(key.client_id, ttlMin * 60_000);
    const base = endpoints.console ?? `${endpoints.api}/console/`;
    const url = `${base.replace(/\/?$/, '/')}link/${link.token}`;
    if (f.json) process.stdout.write(JSON.stringify({ url, client_id: key.client_id, expires_at: link.expiresAt.toISOString() }) + '\n');
    else {
      process.stdout.write(url + '\n');
      process.stderr.write(`signs in once as ${key.client_id}, until ${link.expiresAt.toISOString()}\n`);
    }
    return 0;
  } finally {
    await db.destroy();
  }
}
