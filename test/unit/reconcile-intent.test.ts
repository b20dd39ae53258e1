/**
 * Power operations save what was asked before the host acts (the isolation
 * issue, item 14): a hearthd that dies in the middle of a stop comes back and
 * finishes the stop instead of restarting the workspace, and a pause or
 * resume the host finished is what the store says after reconcile. The crash
 * is simulated by a host whose stop never returns (the process died there).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { openSqlite, type Db } from '../../src/store/db.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS, adminPrincipal } from '../../src/control/workspaces/index.ts';
import { parseCreateRequest } from '../../src/core/workspace-spec.ts';
import type { SandboxRef } from '../../src/host/host-driver.ts';
import { FakeHost } from './fake-host.ts';

let db: Db;
const log = pino({ level: 'silent' });

/** A host whose next stop hangs forever: hearthd "dies" inside it. */
class CrashingHost extends FakeHost {
  crashOnStop = false;
  override async stop(ws: SandboxRef) {
    if (this.crashOnStop) return new Promise<void>(() => { /* never */ });
    return super.stop(ws);
  }
}

before(async () => { db = await openSqlite(':memory:'); });
after(async () => { await db.destroy(); });

test('a stop interrupted by a crash is finished by reconcile, not undone', async () => {
  const host = new CrashingHost();
  const before = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 });
  const ws = await before.create(adminPrincipal, parseCreateRequest({ image: 'debian-12' }));
  assert.equal((await before.byId(ws.id))!.state, 'running');
  host.crashOnStop = true;
  void before.stop(adminPrincipal, ws.id);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((await before.byId(ws.id))!.state, 'running', 'the crash came before the stop was recorded as done');

  // hearthd starts again over the same store and host.
  host.crashOnStop = false;
  const after = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 });
  const summary = await after.reconcile();
  assert.equal(summary.stopped, 1, JSON.stringify(summary));
  assert.equal((await after.byId(ws.id))!.state, 'stopped', 'what was asked to stop stays stopped');
  assert.equal(await host.state({ id: ws.id } as SandboxRef), 'stopped');
  assert.equal(summary.restarted, 0);
});

test('a pause the host finished before a crash is what the store says after reconcile', async () => {
  const host = new FakeHost();
  const svc = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 });
  const ws = await svc.create(adminPrincipal, parseCreateRequest({ image: 'debian-12' }));
  await host.pause({ id: ws.id } as SandboxRef); // the host paused it; the store never heard
  await new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 }).reconcile();
  assert.equal((await svc.byId(ws.id))!.state, 'paused');
});
