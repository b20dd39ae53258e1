/**
 * The control plane's workload, log and metrics routes in-process, with the
 * official SDK over a real socket: a fake host whose every workspace is
 * backed by one REAL agent on loopback. Checks what the routes add — scope,
 * state checks, error mapping, SSE relaying in the §1.5 shape, the host's
 * view merged into metrics — and that closing the API ends open streams.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Oblien, NotFoundError, ValidationError, ConflictError } from 'oblien';
import type { Db } from '../../src/store/db.ts';
import { openTestStore } from '../helpers/store.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { SnapshotService } from '../../src/control/snapshots.ts';
import { ApiKeys, createApiKey } from '../../src/auth/keys.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS, adminPrincipal } from '../../src/control/workspaces/index.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { UsageReports } from '../../src/control/usage.ts';
import { buildApi, type ApiApp } from '../../src/api/server.ts';
import { agentClientFor } from '../../src/control/workloads.ts';
import { defaultPublicServices } from '../../src/control/public-services.ts';
import { applyInitialWorkloads } from '../../src/control/workloads.ts';
import type { SandboxStats } from '../../src/host/drivers/driver.ts';
import { FakeHost } from './fake-host.ts';
import { startTestAgent, type TestAgent } from '../helpers/agent-harness.ts';

class AgentBackedHost extends FakeHost {
  port = 0;
  cpuNs = 0;
  constructor() {
    super();
    // Host-side counters that move, so the merged host view has a rate.
    this.stats = (async (): Promise<SandboxStats> => {
      this.cpuNs += 50_000_000;
      return { cpuUsageNs: this.cpuNs, memoryBytes: 123 * 1024 * 1024, memoryLimitBytes: 512 * 1024 * 1024, pids: 7 };
    }) as unknown as FakeHost['stats'];
  }
  override agentEndpoint() { return { ip: '127.0.0.1', port: this.port }; }
}

let db: Db;
let api: ApiApp;
let host: AgentBackedHost;
let agent: TestAgent;
let service: WorkspaceService;
let client: Oblien;
let base: string;
let headers: Record<string, string>;
let wsId: string;

before(async () => {
  agent = await startTestAgent();
  host = new AgentBackedHost();
  host.port = agent.agent.port;
  db = await openTestStore();
  const log = pino({ level: 'silent' });
  const namespaces = new NamespaceService(db, log, () => service);
  service = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000 }, { admission: namespaces });
  const signer = new TokenSigner('t');
  api = buildApi({ workspaces: service, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host), publicServices: defaultPublicServices({ db, workspaces: service, log }), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, service, log), log, runtimeUrl: () => null });
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = api.app.server.address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
  const key = await createApiKey(db, { name: 'admin', admin: true });
  headers = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret, 'content-type': 'application/json' };
  client = new Oblien({ clientId: key.clientId, clientSecret: key.clientSecret, baseUrl: base });
  wsId = ((await client.workspaces.create({ image: 'debian-12' } as never)) as any).id;
  await backByAgent(wsId);
});

/** Every workspace here is served by the one test agent: give it that agent's secret. */
async function backByAgent(id: string): Promise<void> {
  await db.updateTable('workspaces').set({ agent_secret: agent.secret }).where('id', '=', id).execute();
}
after(async () => {
  await api.app.close();
  await agent.close();
  await db.destroy();
});

test('workloads through the SDK: create with an env object, list, get (flat and nested), status, logs, stop, start, delete', async () => {
  const w = await client.workspaces.workloads.create(wsId, { name: 'svc', cmd: ['sh', '-c', 'echo "port $PORT"; sleep 1000'], env: { PORT: '3000' } as never }) as any;
  assert.deepEqual([w.name, w.status, w.env], ['svc', 'running', ['PORT=3000']]);
  const list = await client.workspaces.workloads.list(wsId) as any[];
  assert.deepEqual(list.map((x) => x.name), ['svc']);
  const got = await client.workspaces.workloads.get(wsId, 'svc') as any;
  assert.deepEqual([got.id, got.workload.id, got.success], [w.id, w.id, true]);
  const status = await client.workspaces.workloads.status(wsId, w.id) as any;
  assert.deepEqual(Object.keys(status).sort(), ['exit_code', 'exited_at', 'id', 'name', 'next_restart_at', 'pid', 'reason', 'restart_count', 'signal', 'started_at', 'status', 'success', 'uptime_seconds']);
  assert.equal(status.pid, w.pid);
  const logs = await (async () => {
    for (let i = 0; i < 50; i++) {
      const l = (await client.workspaces.workloads.logs(wsId, w.id) as any).logs as any[];
      if (l.some((e) => e.data === 'port 3000')) return l;
      await new Promise((r) => setTimeout(r, 20));
    }
    return [];
  })();
  assert.ok(logs.some((e) => e.stream === 'stdout' && e.data === 'port 3000'));
  assert.equal((await client.workspaces.workloads.stop(wsId, w.id) as any).status, 'stopped');
  assert.equal((await client.workspaces.workloads.start(wsId, w.id) as any).status, 'running');
  const res = await fetch(`${base}/workspace/${wsId}/workloads/svc/restart`, { method: 'POST', headers });
  const restarted = await res.json() as any;
  assert.equal(restarted.status, 'running');
  assert.notEqual(restarted.pid, w.pid);
  const patched = await client.workspaces.workloads.patch(wsId, 'svc', { restart_policy: 'always' }) as any;
  assert.equal(patched.restart_policy, 'always');
  await client.workspaces.workloads.delete(wsId, 'svc');
  await assert.rejects(client.workspaces.workloads.get(wsId, 'svc'), (e: any) => e instanceof NotFoundError && e.status === 404 && e.code === 'not_found');
});

test('SSE relayed in the §1.5 shape: only `data: <json>` lines; the follow stream ends when the workload ends', async () => {
  await client.workspaces.workloads.create(wsId, { name: 'counter', cmd: ['sh', '-c', 'for i in 1 2 3 4 5; do echo "n $i"; sleep 0.05; done'], restart_policy: 'never' });
  const res = await fetch(`${base}/workspace/${wsId}/workloads/counter/logs/stream`, { headers: { ...headers, accept: 'text/event-stream' } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
  const raw = await res.text();
  const frames = raw.split('\n\n').filter(Boolean);
  for (const f of frames) assert.match(f, /^data: \{[^\n]*\}$|^: ping$/, JSON.stringify(f));
  const data = frames.filter((f) => f.startsWith('data: ')).map((f) => JSON.parse(f.slice(6)));
  assert.deepEqual(data.filter((e) => e.stream === 'stdout').map((e) => e.data), ['n 1', 'n 2', 'n 3', 'n 4', 'n 5']);
  // The SDK's own parser sees the same thing and its loop terminates.
  const viaSdk: any[] = [];
  for await (const e of client.workspaces.workloads.logsStream(wsId, 'counter')) viaSdk.push(e);
  assert.deepEqual(viaSdk, data);
  await client.workspaces.workloads.deleteAll(wsId);
});

test('errors: bad input is 400 validation_error, unknown workload 404, duplicate 409, a change in a stopped workspace 409 invalid_state with a hint, its reads empty', async () => {
  await assert.rejects(client.workspaces.workloads.create(wsId, { cmd: ['true'], env: 'A=1' } as never), (e: any) => e instanceof ValidationError && e.status === 400 && (e.details as any)?.field === 'env');
  await assert.rejects(client.workspaces.workloads.create(wsId, { cmd: ['no-such-binary-xyz'] }), (e: any) => e instanceof ValidationError && /command not found/.test(e.message));
  await assert.rejects(client.workspaces.workloads.stats(wsId, 'ghost'), NotFoundError);
  await client.workspaces.workloads.create(wsId, { name: 'one', cmd: ['sleep', '100'] });
  await assert.rejects(client.workspaces.workloads.create(wsId, { name: 'one', cmd: ['sleep', '100'] }), (e: any) => e instanceof ConflictError && e.code === 'conflict');
  await client.workspaces.workloads.deleteAll(wsId);
  await assert.rejects(client.workspaces.workloads.list('ws_nope'), NotFoundError);

  const other = (await client.workspaces.create({ image: 'debian-12' } as never) as any).id;
  await client.workspaces.stop(other);
  // Reads of a stopped workspace answer empty, as the SDK expects; changes need it running.
  assert.deepEqual(await client.workspaces.workloads.list(other), []);
  const logs = await client.workspaces.workloads.logs(other, 'w1') as any;
  assert.deepEqual([logs.success, logs.logs], [true, []]);
  const r = await fetch(`${base}/workspace/${other}/workloads`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', cmd: ['true'] }) });
  const body = await r.json() as any;
  assert.deepEqual([r.status, body.success, body.code], [409, false, 'invalid_state']);
  assert.match(body.hint, /workspaces\.start/);
  await assert.rejects(client.workspaces.metrics.stats(other), ConflictError);
  const info = await client.workspaces.metrics.info(other) as any;
  assert.deepEqual([info.status, info.is_running, info.uptime], ['stopped', false, null], 'info needs no agent');
  await client.workspaces.delete(other);
});

test('metrics: snapshot and stream carry the guest\'s fields and the host\'s view; info and config', async () => {
  const s = await client.workspaces.metrics.stats(wsId) as any;
  for (const k of ['cpu_usage', 'memory_usage', 'disk_usage', 'memory_used_bytes']) assert.equal(typeof s[k], 'number', k);
  assert.deepEqual([s.workspace_id, s.is_running, s.host.memory_bytes, s.host.pids], [wsId, true, 123 * 1024 * 1024, 7]);
  assert.equal(typeof s.host.cpu_usage, 'number', 'a host CPU rate from counters around the guest snapshot');
  const events: any[] = [];
  for await (const e of client.workspaces.metrics.statsStream(wsId) as AsyncIterable<any>) {
    events.push(e);
    if (events.length === 2) break;
  }
  assert.ok(events.every((e) => typeof e.cpu_usage === 'number' && e.host.memory_limit_bytes === 512 * 1024 * 1024 && typeof e.host.cpu_usage === 'number'));
  const info = await client.workspaces.metrics.info(wsId) as any;
  assert.deepEqual([info.status, info.is_running, info.agent_generation, typeof info.uptime], ['running', true, 2, 'number']);
  const cfg = await client.workspaces.metrics.config(wsId) as any;
  assert.equal(cfg.config.cpus, 1);
});

test('logs sub-resource: get, files, file, boot stream that terminates, clear', async () => {
  const got = await client.workspaces.logs.get(wsId, { source: 'boot', tail_lines: 5 } as never) as any;
  assert.equal(got.source, 'boot');
  assert.ok(got.logs.length > 0 && got.logs.length <= 5);
  const files = await client.workspaces.logs.listFiles(wsId) as any[];
  assert.ok(files.some((f) => f.name === 'boot.log'));
  const file = await client.workspaces.logs.getFile(wsId, 'boot.log') as any;
  assert.match(file.content, /--- boot: hearth agent/);
  const boot: any[] = [];
  for await (const e of client.workspaces.logs.streamBoot(wsId)) boot.push(e);
  assert.ok(boot.length > 0 && boot.every((e) => typeof e.message === 'string'));
  const cmd: any[] = [];
  for await (const e of client.workspaces.logs.streamCmd(wsId)) cmd.push(e);
  assert.deepEqual(cmd, [], 'no config.cmd: an empty stream that ends');
  await client.workspaces.logs.clear(wsId);
});

test('initial workloads: config.workloads and config.cmd are created once the workspace runs; applying again creates nothing twice', async () => {
  const { parseCreateRequest } = await import('../../src/core/workspace-spec.ts');
  const ws = await service.create(adminPrincipal, parseCreateRequest({
    image: 'debian-12',
    config: { env: ['GREETING=hi'], workloads: [{ name: 'web', cmd: ['sh', '-c', 'echo "$GREETING $PORT"; sleep 100'], env: { PORT: '8080' } }], cmd: 'echo main; sleep 100' },
  }));
  await backByAgent(ws.id);
  const first = await applyInitialWorkloads(host, (await service.byId(ws.id))!);
  assert.deepEqual(first, { created: ['web', 'cmd'], existing: [], failed: [] });
  const again = await applyInitialWorkloads(host, (await service.byId(ws.id))!);
  assert.deepEqual(again, { created: [], existing: ['web', 'cmd'], failed: [] });
  const cmd: any[] = [];
  for await (const e of client.workspaces.logs.streamCmd(ws.id, { tail_lines: 10 })) {
    cmd.push(e);
    if (cmd.some((x) => x.message === 'main')) break;
  }
  assert.ok(cmd.some((e) => e.message === 'main' && e.source === 'cmd'));
  const web = await client.workspaces.workloads.get(ws.id, 'web') as any;
  assert.deepEqual(web.env, ['GREETING=hi', 'PORT=8080']);
  await client.workspaces.workloads.deleteAll(ws.id);
});

test('an agent that is down is 503 workspace_unavailable; closing the API ends open streams', async () => {
  await client.workspaces.workloads.create(wsId, { name: 'forever', cmd: ['sleep', '1000'] });
  const res = await fetch(`${base}/workspace/${wsId}/workloads/forever/logs/stream`, { headers });
  assert.equal(res.status, 200);
  const reading = res.text().then(() => 'ended', () => 'ended');
  const saved = host.port;
  host.port = 1; // nothing listens there
  const down = await fetch(`${base}/workspace/${wsId}/workloads`, { headers });
  assert.deepEqual([down.status, ((await down.json()) as any).code], [503, 'workspace_unavailable']);
  host.port = saved;
  const t0 = Date.now();
  await api.app.close();
  assert.equal(await reading, 'ended');
  assert.ok(Date.now() - t0 < 5000, 'close does not wait for streams');
  // Tidy the agent for the after hook.
  await agent.call('DELETE', '/_hearth/workloads');
});
