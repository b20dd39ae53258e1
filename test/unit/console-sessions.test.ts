/**
 * Console sessions and one-time links on SQLite and PostgreSQL (migration
 * 0008 through kysely's schema builder): a session is found by its id only,
 * ends, and expires; a link signs in once, not after its expiry, not twice
 * even when redeemed concurrently; nothing is stored in the clear.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsoleSessions, SESSION_TTL_MS } from '../../src/console/sessions.ts';
import { hashSecret } from '../../src/auth/secrets.ts';
import { openTestStore, type TestDialect } from '../helpers/store.ts';
import type { Db } from '../../src/store/db.ts';

const opened: Db[] = [];
after(async () => { for (const db of opened) await db.destroy(); });

for (const dialect of ['sqlite', 'postgres'] as TestDialect[]) {
  describe(`console sessions on ${dialect}`, () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const open = async () => {
      const db = await openTestStore(dialect);
      opened.push(db);
      return { db, s: new ConsoleSessions(db, () => now) };
    };

    test('a session is found by its id, holds the key and CSRF token, ends, and expires', async () => {
      const { db, s } = await open();
      const made = await s.create('hk_a');
      const found = await s.find(made.id);
      assert.deepEqual([found?.clientId, found?.csrf], ['hk_a', made.csrf]);
      assert.equal(await s.find(made.id + 'x'), null);
      const rows = await db.selectFrom('console_sessions' as never).selectAll().execute() as Record<string, unknown>[];
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.id_hash, hashSecret(made.id), 'only the hash of the cookie is stored');
      assert.ok(!JSON.stringify(rows).includes(made.id));
      await s.end(made.id);
      assert.equal(await s.find(made.id), null);
      const later = await s.create('hk_a');
      now += SESSION_TTL_MS + 1;
      assert.equal(await s.find(later.id), null, 'expired');
    });

    test('a sign-in link works once, not after its expiry, and two concurrent redemptions make one session', async () => {
      const { s } = await open();
      const link = await s.createLink('hk_b', 60_000);
      assert.equal(await s.redeemLink(link.token), 'hk_b');
      assert.equal(await s.redeemLink(link.token), null);
      assert.equal(await s.redeemLink('not-a-token'), null);
      const old = await s.createLink('hk_b', 60_000);
      now += 60_001;
      assert.equal(await s.redeemLink(old.token), null, 'expired');
      const raced = await s.createLink('hk_b', 60_000);
      const wins = (await Promise.all(Array.from({ length: 8 }, () => s.redeemLink(raced.token)))).filter(Boolean);
      assert.deepEqual(wins, ['hk_b']);
    });
  });
}
