/**
 * Lists that cannot rot: every error code is documented and no undocumented
 * code exists; every control-plane route declares a permission and is either
 * in the contract (docs/contract.md) or a declared Hearth extension; and the
 * contract names every route the installed official SDK calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { ERROR_STATUS } from '../../src/api/errors.ts';
import { buildApi } from '../../src/api/server.ts';
import { agentClientFor } from '../../src/control/workloads.ts';
import { defaultPublicServices } from '../../src/control/public-services.ts';
import { openSqlite } from '../../src/store/db.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { SnapshotService } from '../../src/control/snapshots.ts';
import { ApiKeys } from '../../src/auth/keys.ts';
import { WorkspaceService } from '../../src/control/workspaces/index.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { UsageReports } from '../../src/control/usage.ts';
import { FakeHost } from './fake-host.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');

test('docs/errors.md lists exactly the codes of src/api/errors.ts, with their statuses', () => {
  const doc = fs.readFileSync(path.join(repo, 'docs/errors.md'), 'utf8');
  const documented = new Map([...doc.matchAll(/^\| `([A-Za-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));
  assert.deepEqual([...documented.keys()].sort(), Object.keys(ERROR_STATUS).sort());
  for (const [code, status] of documented) assert.equal(status, ERROR_STATUS[code as keyof typeof ERROR_STATUS], code);
});

/** Routes Hearth serves beyond the contract, each with the reason it exists. */
const EXTENSIONS: Record<string, string> = {
  'GET /health': 'liveness of the control plane',
  'POST /tokens/revoke': 'early revocation of scoped tokens by jti (§24 says revocable)',
  'POST /keys': 'API key management (issue: API keys)',
  'GET /keys': 'API key management',
  'DELETE /keys/:id': 'API key management',
  'GET /workspace/:id/snapshots': 'snapshot history of a workspace (the contract keeps only the latest, §12)',
  'GET /workspace/:id/snapshots/:sid': 'one snapshot of a workspace',
  'DELETE /workspace/:id/snapshots/:sid': 'delete one snapshot',
  'GET /snapshots': 'all snapshots in the caller\'s scope (e.g. to create a workspace from one)',
  'GET /snapshots/:sid': 'one snapshot by id',
  'DELETE /snapshots/:sid': 'delete a snapshot by id',
  'POST /workspace/images/build': 'build an image from a Dockerfile and a tar context, progress over SSE (issue 15)',
  'POST /workspace/:id/workloads/:wid/restart': 'restart a workload in one call (the SDK has none: stop + start), §13 [REC]',
  'GET /hearth/hosts': 'the store\'s hosts with health and load, admin only (issue 19)',
  'POST /hearth/hosts/:name/drain': 'stop new placements on a host (issue 19)',
  'POST /hearth/hosts/:name/undrain': 'take new placements on a host again (issue 19)',
};

function specRoutes(): Set<string> {
  const spec = fs.readFileSync(path.join(repo, 'docs', 'contract.md'), 'utf8');
  const out = new Set<string>();
  for (const m of spec.matchAll(/`(GET|POST|PUT|PATCH|DELETE)((?:\|(?:GET|POST|PUT|PATCH|DELETE))*) (\/[^`?\s]*)/g)) {
    for (const method of [m[1]!, ...m[2]!.split('|').filter(Boolean)]) out.add(`${method} ${m[3]!.replace(/:[A-Za-z]+/g, ':p')}`);
  }
  return out;
}

test('every control-plane route declares a permission and is in the contract or a declared extension', async () => {
  const db = await openSqlite(':memory:');
  const log = pino({ level: 'silent' });
  const host = new FakeHost();
  const workspaces = new WorkspaceService(db, host, log);
  const namespaces = new NamespaceService(db, log, () => workspaces);
  const signer = new TokenSigner('x');
  const { app, routes } = buildApi({ workspaces, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host), publicServices: defaultPublicServices({ db, workspaces, log }), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, workspaces, log), log, runtimeUrl: () => null });
  const spec = specRoutes();
  const unknown: string[] = [];
  for (const r of routes.routes) {
    assert.ok(r.permission, `${r.method} ${r.url} declares no permission`);
    const key = `${r.method} ${r.url}`;
    if (!spec.has(`${r.method} ${r.url.replace(/:[A-Za-z]+/g, ':p')}`) && !EXTENSIONS[key]) unknown.push(key);
  }
  assert.deepEqual(unknown, [], 'routes neither in docs/contract.md nor declared as extensions');
  const declared = new Set(routes.routes.map((r) => `${r.method} ${r.url}`));
  for (const ext of Object.keys(EXTENSIONS)) assert.ok(declared.has(ext), `extension ${ext} is declared but not served (stale entry)`);
  await app.close();
  await db.destroy();
});

/**
 * Control-plane calls of the official SDK (a dev dependency pinned by the lock file), read from its
 * compiled code: `request({ method: 'X', path: `/literal/${id}` })`. Paths the SDK builds from a base
 * constant (`${BASE}/…`) start with a parameter and are not literal routes; they belong to §28.
 */
function sdkRoutes(): Map<string, string> {
  const dist = path.join(repo, 'node_modules', 'oblien', 'dist');
  const out = new Map<string, string>();
  for (const rel of fs.readdirSync(dist, { recursive: true }) as string[]) {
    if (!rel.endsWith('.js')) continue;
    const text = fs.readFileSync(path.join(dist, rel), 'utf8');
    for (const m of text.matchAll(/method:\s*'(GET|POST|PUT|PATCH|DELETE)',\s*path:\s*[`'"](\/[^`'"?]*)/g)) {
      out.set(`${m[1]!} ${m[2]!.replace(/\$\{[^}]+\}/g, ':p')}`, rel);
    }
  }
  return out;
}

/** §28's base paths: routes the contract leaves out of scope on purpose. */
function outOfScopeBases(): string[] {
  const doc = fs.readFileSync(path.join(repo, 'docs', 'contract.md'), 'utf8');
  const section = doc.split(/^## 28\./m)[1]!.split(/^## /m)[0]!;
  return [...section.matchAll(/`(\/[a-z][a-z/:-]*)`/g)].map((m) => m[1]!.replace(/:[A-Za-z]+/g, ':p'));
}

test('docs/contract.md names every control-plane route the installed SDK calls, or puts it out of scope (§28)', () => {
  const sdk = sdkRoutes();
  assert.ok(sdk.size > 100, `read ${sdk.size} SDK routes: the SDK's layout changed, fix sdkRoutes()`);
  const spec = specRoutes();
  const bases = outOfScopeBases();
  assert.ok(bases.includes('/billing/portal'), '§28 lists its paths');
  const outOfScope = (p: string) => bases.some((b) => p === b || p.startsWith(`${b}/`));
  const missing = [...sdk].filter(([route]) => !spec.has(route) && !outOfScope(route.split(' ')[1]!))
    .map(([route, file]) => `${route} (${file})`);
  assert.deepEqual(missing, [], 'SDK routes the contract does not describe: add them to docs/contract.md');
});
