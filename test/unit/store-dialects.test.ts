/**
 * The store behaves the same on SQLite and PostgreSQL: one migration set
 * makes the same tables and columns, and the column types that differ
 * between the two engines (auto-increment ids, 8-byte floats, 64-bit sizes,
 * integer booleans, ISO text timestamps, JSON text) read back the same; a
 * search is case-insensitive on both; upserts and unique violations act the
 * same. Then admission across processes: two workspace services, each with
 * its own connection pool on one PostgreSQL database (two API nodes in all
 * but the process), take 20 parallel creates against a namespace limit of 5
 * and create exactly 5. The PostgreSQL half runs on a throwaway cluster
 * (test/helpers/postgres.ts).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { sql, type Kysely } from 'kysely';
import { openSqlite, getSetting, setSetting, type Db } from '../../src/store/db.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { chooseStore } from '../../src/store/open.ts';
import { dialectOf } from '../../src/store/dialect.ts';
import { sharedLocks } from '../../src/store/shared-locks.ts';
import { isUniqueViolation } from '../../src/control/public-tables.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS } from '../../src/control/workspaces/index.ts';
import { parseCreateRequest } from '../../src/core/workspace-spec.ts';
import type { Principal } from '../../src/auth/principal.ts';
import { ALL_GRANTS } from '../../src/core/grants.ts';
import { openTestStore, type TestDialect } from '../helpers/store.ts';
import { sharedPostgres } from '../helpers/postgres.ts';
import { FakeHost } from './fake-host.ts';

const log = pino({ level: 'silent' });
const admin: Principal = { kind: 'key', clientId: 'k_admin', admin: true, namespace: null, workspaceId: null, grants: ALL_GRANTS };

/** Table → its columns, in name order, from the engine's own catalogue. */
async function columns(db: Db): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  if (dialectOf(db) === 'postgres') {
    const r = await sql<{ t: string; c: string }>`select table_name as t, column_name as c from information_schema.columns where table_schema = 'public'`.execute(db);
    for (const { t, c } of r.rows) (out[t] ??= []).push(c);
  } else {
    const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(db);
    for (const { name } of tables.rows) {
      out[name] = (await sql<{ name: string }>`select name from pragma_table_info(${name})`.execute(db)).rows.map((r) => r.name);
    }
  }
  for (const k of Object.keys(out)) out[k]!.sort();
  return out;
}

const opened: Db[] = [];
after(async () => { for (const db of opened) await db.destroy().catch(() => undefined); });
async function store(dialect: TestDialect): Promise<Db> {
  const db = await openTestStore(dialect);
  opened.push(db);
  return db;
}

test('both dialects migrate to the same tables and columns', async () => {
  const [a, b] = [await store('sqlite'), await store('postgres')];
  assert.equal(dialectOf(a), 'sqlite');
  assert.equal(dialectOf(b), 'postgres');
  const [ca, cb] = [await columns(a), await columns(b)];
  assert.ok(Object.keys(ca).includes('workspaces') && Object.keys(ca).length > 10, 'the schema is there');
  assert.deepEqual(cb, ca);
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`store on ${dialect}`, () => {
    test('auto-increment ids count up from 1 and come back as numbers', async () => {
      const db = await store(dialect);
      for (const action of ['a', 'b', 'c']) {
        await db.insertInto('namespace_activity').values({ namespace_id: 'ns_1', user_id: null, action, description: null, changes: null, created_at: new Date().toISOString() }).execute();
      }
      const rows = await db.selectFrom('namespace_activity').select(['id', 'action']).orderBy('id').execute();
      assert.deepEqual(rows, [{ id: 1, action: 'a' }, { id: 2, action: 'b' }, { id: 3, action: 'c' }]);
    });

    test('floats keep double precision, sizes past 2^31 fit, counts and sums are numbers', async () => {
      const db = await store(dialect);
      const at = new Date().toISOString();
      await db.insertInto('usage_buckets').values({
        workspace_id: 'ws_1', namespace: 'n', bucket: at, seconds: 0.1 + 0.2, vcpu_seconds: 1 / 3, memory_mb_seconds: 123456789.123456, disk_mb_seconds: 0,
        cpu_used_seconds: 0, egress_bytes: 2 ** 40 + 0.5, credits: 1e-9, records: 1,
      }).execute();
      const u = await db.selectFrom('usage_buckets').selectAll().executeTakeFirstOrThrow();
      assert.equal(u.seconds, 0.1 + 0.2);
      assert.equal(u.vcpu_seconds, 1 / 3);
      assert.equal(u.memory_mb_seconds, 123456789.123456);
      assert.equal(u.egress_bytes, 2 ** 40 + 0.5);
      assert.equal(u.credits, 1e-9);
      const raw = db as unknown as Kysely<Record<string, Record<string, unknown>>>; // the snapshot table's type lives with its service
      await raw.insertInto('snapshots').values({
        id: 'snap_1', workspace_id: 'ws_1', owner: 'k', namespace: null, state: 'ready', driver: 'container', format: null, kinds: null,
        size_bytes: 5 * 2 ** 30, after: 'stop', image: 'debian-12', image_digest: null, label: null, error: null, created_at: at, completed_at: null,
      }).execute();
      const s = await raw.selectFrom('snapshots').select('size_bytes').executeTakeFirstOrThrow();
      assert.strictEqual(s.size_bytes, 5 * 2 ** 30);
      const n = await db.selectFrom('usage_buckets').select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('records').as('r'), eb.fn.sum<number>('seconds').as('s')]).executeTakeFirstOrThrow();
      assert.strictEqual(n.n, 1);
      assert.strictEqual(n.r, 1);
      assert.strictEqual(n.s, 0.1 + 0.2);
    });

    test('upserts add to the existing row; a duplicate key is recognised as one', async () => {
      const db = await store(dialect);
      await setSetting(db, 'k', 'one');
      await setSetting(db, 'k', 'two');
      assert.equal(await getSetting(db, 'k'), 'two');
      const bucket = '2026-01-01T00:00:00.000Z';
      for (let i = 0; i < 3; i++) {
        await db.insertInto('usage_buckets').values({
          workspace_id: 'ws_1', namespace: null, bucket, seconds: 10, vcpu_seconds: 0, memory_mb_seconds: 0, disk_mb_seconds: 0, cpu_used_seconds: 0, egress_bytes: 0, credits: 0.5, records: 1,
        }).onConflict((oc) => oc.columns(['workspace_id', 'bucket']).doUpdateSet((eb) => ({
          seconds: eb('usage_buckets.seconds', '+', 10), credits: eb('usage_buckets.credits', '+', 0.5), records: eb('usage_buckets.records', '+', 1),
        }))).execute();
      }
      assert.deepEqual(await db.selectFrom('usage_buckets').select(['seconds', 'credits', 'records']).execute(), [{ seconds: 30, credits: 1.5, records: 3 }]);
      await db.insertInto('revoked_tokens').values({ jti: 'j', expires_at: bucket }).execute();
      await db.insertInto('revoked_tokens').values({ jti: 'j', expires_at: bucket }).onConflict((oc) => oc.column('jti').doNothing()).execute();
      await assert.rejects(db.insertInto('revoked_tokens').values({ jti: 'j', expires_at: bucket }).execute(), (err) => isUniqueViolation(err));
    });

    test('namespace search is case-insensitive and lists sort bytewise, as on SQLite', async () => {
      const db = await store(dialect);
      const ns = new NamespaceService(db, log, () => { throw new Error('no workspaces here'); });
      for (const name of ['Alpha Team', 'beta', 'alpha-2', 'Zed']) await ns.create(admin, { name });
      const found = await ns.list(admin, { limit: 10, offset: 0, search: 'ALPHA', sortBy: 'name', sortOrder: 'asc' });
      assert.deepEqual(found.data.map((n) => n.name), ['Alpha Team', 'alpha-2']);
      assert.equal(found.pagination.total, 2);
      const all = await ns.list(admin, { limit: 10, offset: 0, sortBy: 'name', sortOrder: 'asc' });
      // Bytewise: capitals before lower case (a language collation would interleave them).
      assert.deepEqual(all.data.map((n) => n.name), ['Alpha Team', 'Zed', 'alpha-2', 'beta']);
      assert.equal(all.data[0]!.is_default, false, 'an integer boolean reads back as false');
    });

    test('the shared lock serializes holders of one key and lets other keys run', async () => {
      const [a, b] = dialect === 'postgres'
        ? await (async () => { const url = await sharedPostgres().createDatabase(); return [await openPostgres(url), await openPostgres(url)]; })()
        : [await store(dialect), null];
      if (b) opened.push(a, b);
      const la = sharedLocks(a);
      assert.equal(la.crossProcess, dialect === 'postgres');
      if (!b) return; // SQLite: one hearthd per store, nothing to serialize across (a pass-through, today's behaviour)
      const lb = sharedLocks(b);
      const events: string[] = [];
      const hold = (l: typeof la, name: string, key: string, ms: number) => l.run(key, async () => {
        events.push(`${name}+`);
        await new Promise((r) => setTimeout(r, ms));
        events.push(`${name}-`);
      });
      await Promise.all([hold(la, 'a', 'k', 150), new Promise((r) => setTimeout(r, 20)).then(() => hold(lb, 'b', 'k', 10))]);
      assert.deepEqual(events, ['a+', 'a-', 'b+', 'b-'], 'b waited for a across pools');
      events.length = 0;
      await Promise.all([hold(la, 'a', 'k1', 150), new Promise((r) => setTimeout(r, 20)).then(() => hold(lb, 'b', 'k2', 10))]);
      assert.deepEqual(events, ['a+', 'b+', 'b-', 'a-'], 'different keys do not wait for each other');
    });
  });
}

test('two workspace services on one PostgreSQL (two pools) admit exactly 5 of 20 parallel creates against a namespace limit of 5', async () => {
  const url = await sharedPostgres().createDatabase();
  const nodes = await Promise.all([0, 1].map(async () => {
    const db = await openPostgres(url);
    opened.push(db);
    const namespaces = new NamespaceService(db, log, () => workspaces);
    const host = new FakeHost();
    host.startDelayMs = 5;
    const workspaces: WorkspaceService = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 0 }, { admission: namespaces });
    return { db, namespaces, workspaces };
  }));
  await nodes[0]!.namespaces.create(admin, { name: 'capped', slug: 'capped', resource_limits: { max_workspaces: 5 } });
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => nodes[i % 2]!.workspaces.create(admin, parseCreateRequest({ image: 'debian-12', namespace: 'capped' }, DEFAULT_SERVICE_OPTIONS.bounds))));
  const created = results.filter((r) => r.status === 'fulfilled');
  const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  assert.equal(created.length, 5, `created ${created.length}: ${refused.map((r) => String(r.reason)).slice(0, 3).join('; ')}`);
  assert.ok(refused.every((r) => (r.reason as { code?: string }).code === 'NAMESPACE_LIMIT_REACHED' || /limit/i.test(String(r.reason))), String(refused[0]?.reason));
  const rows = await nodes[1]!.db.selectFrom('workspaces').select(['slot_index']).where('namespace', '=', 'capped').execute();
  assert.equal(rows.length, 5);
  assert.equal(new Set(rows.map((r) => r.slot_index)).size, 5, 'every workspace got its own slot');
  for (const n of nodes) for (const r of created) await n.workspaces.settled((r as PromiseFulfilledResult<{ id: string }>).value.id);
});

test('two services on one PostgreSQL answer one idempotency key with one workspace', async () => {
  const url = await sharedPostgres().createDatabase();
  const services = await Promise.all([0, 1].map(async () => {
    const db = await openPostgres(url);
    opened.push(db);
    return new WorkspaceService(db, new FakeHost(), log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 0 });
  }));
  const req = { ...parseCreateRequest({ image: 'debian-12' }, DEFAULT_SERVICE_OPTIONS.bounds), idempotencyKey: 'same-key' };
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => services[i % 2]!.create(admin, req)));
  assert.equal(new Set(results.map((w) => w.id)).size, 1, 'every retry got the one workspace');
  for (const s of services) await s.settled(results[0]!.id);
});

test('a SQLite store file opens again after a restart with its data; --store picks the store', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-store-'));
  try {
    const file = path.join(dir, 'hearth.db');
    let db = await openSqlite(file);
    await setSetting(db, 'kept', 'yes');
    await db.destroy();
    db = await openSqlite(file);
    assert.equal(await getSetting(db, 'kept'), 'yes');
    await db.destroy();
    assert.deepEqual(chooseStore(undefined, dir), { kind: 'sqlite', target: file, describe: file });
    assert.equal(chooseStore('postgresql://u:secret@db.internal:5432/hearth', dir).describe, 'postgresql://u:***@db.internal:5432/hearth');
    assert.throws(() => chooseStore('mysql://x/y', dir), /only postgresql:\/\/ URLs or a SQLite file path/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
