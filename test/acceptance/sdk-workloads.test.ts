/**
 * Workloads, logs and metrics through the official SDK against a real
 * `hearth serve` (container driver): a supervised `node server.js` with a
 * PORT env serves HTTP, crashes on purpose and is restarted per policy, its
 * log lines arrive live over SSE in order, and stopping it stops the
 * process; restart limits and `never`; workloads come back after a
 * workspace stop/start and keep running through a kill -9 of hearthd;
 * metrics under load; contract errors for bad input.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, Runtime, NotFoundError, ValidationError, ConflictError } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { AGENT_GENERATION } from '../../src/core/agent-protocol.ts';

let h: HearthInstance;
let client: Oblien;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
});
after(async () => { if (h) await h.stop(); });

async function runtimeFor(id: string): Promise<Runtime> {
  const { token } = await client.workspaces.apiAccess.enable(id) as { token: string };
  return new Runtime({ token, baseUrl: h.runtime });
}

/** A curl-less HTTP GET from inside the workspace (node's fetch in another exec). */
async function httpInside(rt: Runtime, url: string): Promise<{ ok: boolean; body: string }> {
  const r = await rt.exec.run(['node', '-e', `fetch(${JSON.stringify(url)}).then(r => r.text()).then(t => process.stdout.write(t), e => { process.stderr.write(String(e.cause ?? e)); process.exit(7); })`]);
  return { ok: r.exit_code === 0, body: r.exit_code === 0 ? r.stdout! : r.stderr! };
}

const SERVER_JS = `
const http = require('http');
const port = Number(process.env.PORT);
let served = 0;
http.createServer((req, res) => {
  if (req.url === '/crash') {
    res.end('bye');
    console.log('crashing on purpose');
    setTimeout(() => process.exit(3), 20);
    return;
  }
  res.end(JSON.stringify({ pid: process.pid, port, served: ++served }));
}).listen(port, () => console.log('listening on ' + port));
let tick = 0;
setInterval(() => console.log('tick ' + (++tick)), 50);
`;

test('seed flow: node server.js with PORT serves, crashes, is restarted per policy, logs stream live in order, stop stops it', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '15m', cpus: 1, memory_mb: 512 } } as never) as any;
  const rt = await runtimeFor(ws.id);
  await rt.files.write({ fullPath: '/app/server.js', content: SERVER_JS });

  const w = await client.workspaces.workloads.create(ws.id, {
    name: 'server', cmd: ['node', 'server.js'], env: { PORT: '3000' } as never, working_dir: '/app',
    restart_policy: 'on-failure', restart_delay: 0.3,
  }) as any;
  assert.match(w.id, /^wl_[0-9a-f]{12}$/);
  assert.equal(w.name, 'server');
  assert.equal(w.status, 'running');
  assert.deepEqual(w.env, ['PORT=3000'], 'the object form of env is accepted');

  // Follow the log stream in the background for the whole scenario.
  const seen: any[] = [];
  const streamDone = (async () => {
    for await (const e of client.workspaces.workloads.logsStream(ws.id, 'server')) seen.push(e);
  })().then(() => null, (err: unknown) => err);

  const first = await waitUntil('the server to answer inside the workspace', async () => {
    const r = await httpInside(rt, 'http://127.0.0.1:3000/');
    return r.ok && JSON.parse(r.body);
  }, 20_000, 100);
  assert.equal(first.port, 3000);
  const status1 = await client.workspaces.workloads.status(ws.id, w.id) as any;
  assert.equal(status1.pid, first.pid, 'argv runs directly (no shell): the workload pid is the server');
  assert.equal(status1.restart_count, 0);

  // Crash on purpose: on-failure restarts it after the back-off.
  await httpInside(rt, 'http://127.0.0.1:3000/crash');
  const second = await waitUntil('the restarted server', async () => {
    const r = await httpInside(rt, 'http://127.0.0.1:3000/');
    const body = r.ok ? JSON.parse(r.body) : null;
    return body && body.pid !== first.pid ? body : null;
  }, 20_000, 100);
  assert.equal(second.served, 1, 'a fresh process');
  const got = await client.workspaces.workloads.get(ws.id, w.id) as any;
  assert.equal(got.status, 'running');
  assert.equal(got.restart_count, 1, 'restart count visible');
  assert.equal(got.exit_code, 3, 'the last exit code is kept');
  assert.equal(got.workload.id, w.id, 'fields also under workload');

  // Stopping it stops the process (and ends the follow stream).
  const stopped = await client.workspaces.workloads.stop(ws.id, w.id) as any;
  assert.equal(stopped.status, 'stopped');
  const gone = await httpInside(rt, 'http://127.0.0.1:3000/');
  assert.equal(gone.ok, false, `nothing listens any more: ${gone.body}`);
  const ps = await rt.exec.run(['sh', '-c', `kill -0 ${second.pid} 2>/dev/null && echo alive || echo gone`]);
  assert.equal(ps.stdout!.trim(), 'gone');
  assert.equal(await streamDone, null, 'the follow stream ends by itself once the workload is stopped');

  // The stream carried both runs in order: ticks count up within each run, the crash sits between them.
  const out = seen.filter((e) => e.stream === 'stdout').map((e) => e.data as string);
  const crashAt = out.indexOf('crashing on purpose');
  assert.ok(crashAt > 0, `crash line in the stream: ${out.slice(0, 20).join(' | ')}`);
  const listening = out.flatMap((l, i) => (l === 'listening on 3000' ? [i] : []));
  assert.equal(listening.length, 2, 'two runs');
  assert.ok(listening[0]! < crashAt && crashAt < listening[1]!);
  for (const run of [out.slice(0, crashAt), out.slice(listening[1]!)]) {
    const ticks = run.filter((l) => l.startsWith('tick ')).map((l) => Number(l.slice(5)));
    assert.ok(ticks.length >= 3, `ticks seen in each run: ${ticks.join(',')}`);
    ticks.forEach((t, i) => assert.equal(t, i + 1, `ticks in order without gaps: ${ticks.join(',')}`));
  }
  const times = seen.map((e) => Date.parse(e.timestamp));
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!, 'timestamps never go back');
  assert.ok(seen.some((e) => e.stream === 'system' && /restarting in 0\.3 s \(restart 1, restart_policy on-failure\)/.test(e.data)), 'the supervisor says why and when it restarts');

  // Fetch with tail/since, list, start again, delete.
  const tail = await client.workspaces.workloads.logs(ws.id, w.id) as any;
  assert.ok(tail.logs.length > 10);
  const since = await (await fetch(`${h.api}/workspace/${ws.id}/workloads/${w.id}/logs?tail=3`, { headers: { 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret } })).json() as any;
  assert.equal(since.logs.length, 3);
  assert.deepEqual(since.logs, tail.logs.slice(-3));
  const list = await client.workspaces.workloads.list(ws.id) as any[];
  assert.deepEqual(list.map((x) => x.name), ['server']);
  const restarted = await client.workspaces.workloads.start(ws.id, 'server') as any;
  assert.equal(restarted.status, 'running');
  assert.equal(restarted.restart_count, 0, 'an explicit start resets the count');
  await client.workspaces.workloads.delete(ws.id, w.id);
  await assert.rejects(client.workspaces.workloads.get(ws.id, w.id), NotFoundError);
  await client.workspaces.delete(ws.id);
});

test('restart policies: limit honoured with exponential back-off, never stays exited with its code', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as any;
  const crasher = await client.workspaces.workloads.create(ws.id, {
    name: 'crasher', cmd: ['sh', '-c', 'echo boom; exit 7'], restart_policy: 'on-failure', max_restarts: 3, restart_delay: 0.2, restart_backoff: true,
  }) as any;
  const never = await client.workspaces.workloads.create(ws.id, { name: 'once', cmd: ['sh', '-c', 'echo once; exit 5'], restart_policy: 'never' }) as any;
  const ok = await client.workspaces.workloads.create(ws.id, { name: 'job', cmd: ['true'], restart_policy: 'on-failure' }) as any;

  const final = await waitUntil('the crasher to give up', async () => {
    const s = await client.workspaces.workloads.status(ws.id, crasher.id) as any;
    return s.status === 'failed' ? s : null;
  }, 20_000, 100);
  assert.equal(final.restart_count, 3);
  assert.equal(final.exit_code, 7);
  const logs = (await client.workspaces.workloads.logs(ws.id, crasher.id) as any).logs as any[];
  const starts = logs.filter((e) => e.data === 'boom').map((e) => Date.parse(e.timestamp));
  assert.equal(starts.length, 4, 'first run + 3 restarts');
  const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
  // 0.2 s, 0.4 s, 0.8 s (plus process start time): each wait at least the back-off, and growing.
  [200, 400, 800].forEach((min, i) => assert.ok(gaps[i]! >= min, `gap ${i + 1} is ${gaps[i]} ms, back-off ${min} ms`));
  assert.ok(gaps[2]! > gaps[0]!, `back-off grows: ${gaps.join(', ')}`);
  assert.ok(logs.some((e) => e.stream === 'system' && /restart limit reached \(3\)/.test(e.data)));

  const once = await waitUntil('the never workload to end', async () => {
    const s = await client.workspaces.workloads.get(ws.id, never.id) as any;
    return s.status !== 'running' ? s : null;
  });
  assert.deepEqual([once.status, once.exit_code, once.restart_count], ['failed', 5, 0]);
  const job = await waitUntil('the job to end', async () => {
    const s = await client.workspaces.workloads.get(ws.id, ok.id) as any;
    return s.status !== 'running' ? s : null;
  });
  assert.deepEqual([job.status, job.exit_code, job.restart_count], ['exited', 0, 0], 'on-failure: a clean exit is final');

  const all = await client.workspaces.workloads.deleteAll(ws.id) as any;
  assert.equal(all.deleted, 3);
  assert.deepEqual(await client.workspaces.workloads.list(ws.id), []);
  await client.workspaces.delete(ws.id);
});

test('durability: workloads survive a kill -9 of hearthd untouched and come back after a workspace stop/start', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as any;
  const keep = await client.workspaces.workloads.create(ws.id, { name: 'keeper', cmd: ['sh', '-c', 'while true; do echo up; sleep 0.5; done'], restart_policy: 'always' }) as any;
  const never = await client.workspaces.workloads.create(ws.id, { name: 'oneshot', cmd: ['sleep', '1000'], restart_policy: 'never' }) as any;
  const parked = await client.workspaces.workloads.create(ws.id, { name: 'parked', cmd: ['sleep', '1000'], restart_policy: 'always' }) as any;
  await client.workspaces.workloads.stop(ws.id, parked.id);

  await h.crashAndRestart();
  const after = await client.workspaces.workloads.get(ws.id, keep.id) as any;
  assert.equal(after.status, 'running');
  assert.equal(after.pid, keep.pid, 'the same process: hearthd is not in the workloads\' path');

  await client.workspaces.stop(ws.id);
  await assert.rejects(client.workspaces.workloads.list(ws.id), (e: any) => e instanceof ConflictError && e.code === 'invalid_state', 'a stopped workspace has no live workloads: 409 invalid_state');
  await client.workspaces.start(ws.id);
  const back = await waitUntil('the always workload to be back', async () => {
    const s = await client.workspaces.workloads.get(ws.id, keep.id) as any;
    return s.status === 'running' ? s : null;
  }, 20_000, 200);
  assert.ok(Date.parse(back.started_at) > Date.parse(after.started_at), 'a new process (pids repeat: each boot has a fresh pid namespace)');
  const once = await client.workspaces.workloads.get(ws.id, never.id) as any;
  assert.equal(once.status, 'stopped', 'restart_policy never: not brought back');
  assert.match(once.reason, /never/);
  assert.equal((await client.workspaces.workloads.get(ws.id, parked.id) as any).status, 'stopped', 'a stopped workload stays stopped');
  const boot = [];
  for await (const e of client.workspaces.logs.streamBoot(ws.id)) boot.push(e as any);
  assert.ok(boot.filter((e) => /^--- boot:/.test(e.message)).length >= 2, 'the boot log spans boots');
  assert.ok(boot.some((e) => /workloads: starting at boot/.test(e.message) && e.message.includes(keep.id)));
  await client.workspaces.delete(ws.id);
});

test('metrics under load: a CPU burner shows near one core, memory grows when the guest allocates', { skip: needsRoot }, async (t) => {
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '10m', cpus: 2, memory_mb: 1024 } } as never) as any;
  const idle = await client.workspaces.metrics.stats(ws.id) as any;
  assert.equal(idle.success, true);
  for (const k of ['cpu_usage', 'memory_usage', 'disk_usage', 'memory_used_bytes', 'memory_limit_bytes']) assert.equal(typeof idle[k], 'number', k);
  assert.equal(idle.memory_limit_bytes, 1024 * 1024 * 1024, 'the guest sees its own cgroup limit, not the host\'s memory');
  assert.equal(typeof idle.network.rx, 'number');
  assert.equal(typeof idle.host.memory_bytes, 'number', 'the host view is merged in');

  const burner = await client.workspaces.workloads.create(ws.id, { name: 'burn', cmd: ['node', '-e', 'for(;;){}'], restart_policy: 'never' }) as any;
  // What the burner really got, from its own /proc accounting (the host may be busy: then less than a core is the truth).
  const rt = await runtimeFor(ws.id);
  const ticks = async () => {
    const r = await rt.exec.run(['cat', `/proc/${burner.pid}/stat`]);
    const f = r.stdout!.slice(r.stdout!.lastIndexOf(')') + 2).split(' ');
    return { at: Date.now(), ticks: Number(f[11]) + Number(f[12]) };
  };
  await new Promise((r) => setTimeout(r, 500));
  const c0 = await ticks();
  const events: any[] = [];
  for await (const ev of client.workspaces.metrics.statsStream(ws.id) as AsyncIterable<any>) {
    events.push(ev);
    if (events.length >= 5) break;
  }
  const c1 = await ticks();
  const actual = ((c1.ticks - c0.ticks) / 100 / ((c1.at - c0.at) / 1000)) * 100;
  const seen = events.slice(1).map((e) => e.cpu_usage as number);
  const mean = seen.reduce((a, b) => a + b, 0) / seen.length;
  assert.ok(Math.abs(mean - actual) <= 20 + 0.25 * actual, `the stream (${seen.join(', ')}; mean ${mean.toFixed(1)}) matches what the burner got (${actual.toFixed(1)} % of a core)`);
  if (actual >= 80) assert.ok(mean >= 70 && mean <= 140, `one busy core shows as ~100 %: ${seen.join(', ')}`);
  else t.diagnostic(`host too busy for a full core (the burner got ${actual.toFixed(1)} %): checked agreement only`);
  assert.ok(events.every((e) => typeof e.timestamp === 'string' && e.workspace_id === ws.id && typeof e.host?.cpu_time_ns === 'number'));
  const wstats = await client.workspaces.workloads.stats(ws.id, burner.id) as any;
  assert.ok(wstats.cpu_usage >= Math.min(50, actual * 0.6), `the workload's own CPU: ${wstats.cpu_usage}`);
  await client.workspaces.workloads.stop(ws.id, burner.id);

  const base = (await client.workspaces.metrics.stats(ws.id) as any).memory_used_bytes as number;
  await client.workspaces.workloads.create(ws.id, {
    name: 'hog', cmd: ['node', '-e', 'globalThis.b = Buffer.alloc(300 << 20, 1); console.log("allocated"); setInterval(() => {}, 1000)'], restart_policy: 'never',
  });
  const grown = await waitUntil('memory to grow by the allocation', async () => {
    const m = await client.workspaces.metrics.stats(ws.id) as any;
    return m.memory_used_bytes - base > 250 * 1024 * 1024 ? m : null;
  }, 20_000, 250);
  assert.ok(grown.memory_usage > 25, `memory_usage is a percentage of the 1 GiB limit: ${grown.memory_usage}`);
  assert.ok(grown.host.memory_bytes > 250 * 1024 * 1024, 'the host\'s cgroup sees it too');

  const info = await client.workspaces.metrics.info(ws.id) as any;
  assert.deepEqual([info.status, info.is_running, info.cpus, info.memory_mb, info.driver], ['running', true, 2, 1024, 'container']);
  assert.equal(info.agent_generation, AGENT_GENERATION);
  const cfg = await client.workspaces.metrics.config(ws.id) as any;
  assert.equal(cfg.config.memory_mb, 1024);
  await client.workspaces.delete(ws.id);
});

test('bad input gets contract errors', { skip: needsRoot }, async () => {
  const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '10m' } } as never) as any;
  await assert.rejects(client.workspaces.workloads.get(ws.id, 'wl_nope'), (e: any) => e instanceof NotFoundError && e.status === 404);
  await assert.rejects(client.workspaces.workloads.stop(ws.id, 'nope'), NotFoundError);
  await assert.rejects(client.workspaces.workloads.create(ws.id, { cmd: [] } as never), (e: any) => e instanceof ValidationError && /cmd/.test(e.message));
  await assert.rejects(client.workspaces.workloads.create(ws.id, { cmd: ['no-such-binary-xyz'] }), (e: any) => e instanceof ValidationError && /command not found/.test(e.message));
  await assert.rejects(client.workspaces.workloads.create(ws.id, { cmd: ['true'], env: 'PORT=3000' } as never), (e: any) => e instanceof ValidationError && /env/.test(e.message));
  await assert.rejects(client.workspaces.workloads.create(ws.id, { cmd: ['true'], env: ['PORT'] }), ValidationError);
  await assert.rejects(client.workspaces.workloads.create(ws.id, { cmd: ['true'], env: { '1BAD': 'x' } } as never), ValidationError);
  await assert.rejects(client.workspaces.workloads.create(ws.id, { cmd: ['true'], restart_policy: 'sometimes' } as never), ValidationError);
  await assert.rejects(client.workspaces.workloads.create(ws.id, { cmd: ['true'], user: 'nobody-here' }), (e: any) => e instanceof ValidationError && /nobody-here/.test(e.message));
  await client.workspaces.workloads.create(ws.id, { name: 'dup', cmd: ['sleep', '100'] });
  await assert.rejects(client.workspaces.workloads.create(ws.id, { name: 'dup', cmd: ['sleep', '100'] }), ConflictError);
  await assert.rejects(client.workspaces.workloads.list('ws_doesnotexist'), NotFoundError);
  await client.workspaces.delete(ws.id);
});
