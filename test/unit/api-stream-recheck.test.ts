/**
 * Control-plane SSE streams are re-authorized while they last (the isolation
 * issue, item 9): a stream opened with a scoped token ends soon after
 * that token is revoked, while a stream whose token still stands stays
 * open. Real API server on loopback, real test agent behind it; the
 * re-check period is shortened to 100 ms for the test (30 s by default).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { startGrantsHarness, type GrantsHarness } from './grants-harness.ts';

let h: GrantsHarness;
let base: string;

before(async () => {
  h = await startGrantsHarness({ streamRecheckMs: 100 });
  await h.api.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(h.api.app.server.address() as AddressInfo).port}`;
});
after(async () => { await h.close(); });

/** Open a stats stream (it streams until the client or the server ends it); `ended` resolves when the server ends it. */
async function openStream(id: string, headers: Record<string, string>): Promise<{ status: number; ended: Promise<void>; abort(): void }> {
  const ctl = new AbortController();
  const res = await fetch(`${base}/workspace/${id}/workloads/stats/stream?interval_ms=200`, { headers: { accept: 'text/event-stream', ...headers }, signal: ctl.signal });
  const reader = res.body!.getReader();
  const ended = (async () => { try { while (!(await reader.read()).done) { /* events */ } } catch { /* aborted */ } })();
  return { status: res.status, ended, abort: () => ctl.abort() };
}

test('a stream ends once the token that opened it is revoked; one whose token stands stays open', async () => {
  const id = await h.workspace();
  const revokedHeaders = await h.token({ scope: 'workspace', workspaceId: id, permissions: { runtime: true } });
  const keptHeaders = await h.token({ scope: 'workspace', workspaceId: id, permissions: { runtime: true } });
  const doomed = await openStream(id, revokedHeaders);
  const kept = await openStream(id, keptHeaders);
  assert.equal(doomed.status, 200);
  assert.equal(kept.status, 200);

  const token = revokedHeaders.authorization!.slice('Bearer '.length);
  assert.equal((await h.call('POST', '/tokens/revoke', { token })).json.revoked, true);
  const t0 = Date.now();
  const outcome = await Promise.race([doomed.ended.then(() => 'ended'), new Promise((r) => setTimeout(() => r('still open'), 3000))]);
  assert.equal(outcome, 'ended', 'the revoked token\'s stream ends');
  assert.ok(Date.now() - t0 < 2000, `within a few re-check periods (${Date.now() - t0} ms)`);
  const other = await Promise.race([kept.ended.then(() => 'ended'), new Promise((r) => setTimeout(() => r('open'), 400))]);
  assert.equal(other, 'open', 'a stream whose token still stands is untouched');
  kept.abort();
});
