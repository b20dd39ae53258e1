/**
 * The agent's workload supervisor, logs and metrics, driven over HTTP as
 * hearthd drives it (the REAL agent in-process on loopback): env forms,
 * restarts with back-off and limits, live SSE in order, stop, the log store
 * on disk, definitions surviving an agent restart, guest metrics.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startTestAgent, waitUntil, type TestAgent } from '../helpers/agent-harness.ts';
import { AGENT_GENERATION } from '../../src/core/agent-protocol.ts';
import { startAgent } from '../../src/agent/server.ts';

/** Parse `data:` SSE lines exactly as the SDK's requestSSE does (spec §1.5). */
async function readDataSse(res: Response, onEvent?: (ev: any) => boolean | void): Promise<{ events: any[]; raw: string }> {
  const events: any[] = [];
  let raw = '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  outer: while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    const text = decoder.decode(value, { stream: true });
    raw += text;
    buffer += text;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('data: ')) continue;
      const ev = JSON.parse(line.slice(6));
      events.push(ev);
      if (onEvent?.(ev) === false) {
        await reader.cancel();
        break outer;
      }
    }
  }
  return { events, raw };
}

let t: TestAgent;
before(async () => { t = await startTestAgent(); });
after(async () => { await t.close(); });

const create = async (body: Record<string, unknown>) => {
  const r = await t.call('POST', '/_hearth/workloads', body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.workload as any;
};
const get = async (wid: string) => (await t.call('GET', `/_hearth/workloads/${wid}`)).body.workload as any;
const waitStatus = (wid: string, status: string, ms = 10_000) =>
  waitUntil(async () => { const w = await get(wid); return w.status === status ? w : undefined; }, `${wid} to be ${status}`, ms);

describe('workloads', () => {
  test('env in object and array form reaches the process; the secret and HEARTH_* never do', async () => {
    const a = await create({ name: 'env-obj', cmd: ['sh', '-c', 'echo "PORT=$PORT MODE=$MODE"; env | grep -c HEARTH_ || true'], env: { PORT: '3000', MODE: 'x' }, restart_policy: 'never' });
    const b = await create({ name: 'env-arr', cmd: ['sh', '-c', 'echo "PORT=$PORT"'], env: ['PORT=4000'], restart_policy: 'never' });
    await waitStatus(a.id, 'exited');
    await waitStatus(b.id, 'exited');
    const out = (id: string) => t.call('GET', `/_hearth/workloads/${id}/logs`).then((r) => (r.body.logs as any[]).filter((e) => e.stream === 'stdout').map((e) => e.data));
    assert.deepEqual(await out(a.id), ['PORT=3000 MODE=x', '0']);
    assert.deepEqual(await out(b.id), ['PORT=4000']);
  });

  test('on-failure restarts with exponential back-off up to the limit, then failed with the exit code', async () => {
    const w = await create({ name: 'crashy', cmd: ['sh', '-c', 'echo run; exit 4'], restart_policy: 'on-failure', max_restarts: 3, restart_delay: 0.1 });
    const final = await waitStatus(w.id, 'failed');
    assert.deepEqual([final.restart_count, final.exit_code, final.reason], [3, 4, 'restart limit reached (3)']);
    const logs = (await t.call('GET', `/_hearth/workloads/${w.id}/logs`)).body.logs as any[];
    const delays = logs.filter((e) => e.stream === 'system' && e.data.startsWith('restarting in')).map((e) => e.data.split(' ')[2]);
    assert.deepEqual(delays, ['0.1', '0.2', '0.4']);
    const runs = logs.filter((e) => e.data === 'run').map((e) => Date.parse(e.timestamp));
    assert.equal(runs.length, 4);
    [100, 200, 400].forEach((min, i) => assert.ok(runs[i + 1]! - runs[i]! >= min, `gap ${i}: ${runs[i + 1]! - runs[i]!} ms ≥ ${min}`));
  });

  test('always restarts even a clean exit; stop ends the loop', async () => {
    const w = await create({ name: 'looper', cmd: ['sh', '-c', 'echo hi'], restart_policy: 'always', restart_delay: 0.1, restart_backoff: false });
    await waitUntil(async () => (await get(w.id)).restart_count >= 3 || undefined, 'three restarts');
    const stopped = (await t.call('POST', `/_hearth/workloads/${w.id}/stop`)).body.workload as any;
    assert.equal(stopped.status, 'stopped');
    const count = stopped.restart_count;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await get(w.id)).restart_count, count, 'no restart after a stop');
  });

  test('never: stays exited with its exit code; a signal death is 128+n', async () => {
    const w = await create({ name: 'never-5', cmd: ['sh', '-c', 'exit 5'], restart_policy: 'never' });
    const done = await waitStatus(w.id, 'failed');
    assert.deepEqual([done.exit_code, done.restart_count, done.pid], [5, 0, null]);
    const k = await create({ name: 'self-kill', cmd: ['sh', '-c', 'kill -9 $$'], restart_policy: 'never' });
    const killed = await waitStatus(k.id, 'failed');
    assert.deepEqual([killed.exit_code, killed.signal], [137, 'SIGKILL']);
  });

  test('stop: SIGTERM to the whole process group, SIGKILL after stop_timeout for a process that ignores it', async () => {
    // A shell that ignores TERM and a child sleeping: both must go.
    const w = await create({ name: 'stubborn', cmd: ['sh', '-c', 'trap "" TERM; sleep 1000 & echo child $!; while true; do sleep 0.1; done'], stop_timeout: 0.5, restart_policy: 'always' });
    const line = await waitUntil(async () => ((await t.call('GET', `/_hearth/workloads/${w.id}/logs`)).body.logs as any[]).find((e) => e.data.startsWith('child ')), 'child pid');
    const child = Number(line.data.split(' ')[1]);
    const t0 = Date.now();
    const r = await t.call('POST', `/_hearth/workloads/${w.id}/stop`);
    assert.equal((r.body.workload as any).status, 'stopped');
    assert.ok(Date.now() - t0 >= 450, 'waited for the stop timeout before SIGKILL');
    const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
    await waitUntil(() => !alive(w.pid) && !alive(child), 'leader and child gone', 3000);
  });

  test('logs stream: backlog then live lines in order, ends by itself when the workload stops for good', async () => {
    const w = await create({ name: 'counter', cmd: ['sh', '-c', 'i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo "n $i"; sleep 0.02; done; exit 2'], restart_policy: 'on-failure', max_restarts: 1, restart_delay: 0.1 });
    const res = await t.fetch(`/_hearth/workloads/${w.id}/logs/stream`);
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const { events, raw } = await readDataSse(res);
    for (const line of raw.split('\n\n').filter(Boolean)) assert.match(line, /^(data: \{.*\}|: ping)$/s, 'only `data: <json>` events and comments');
    const nums = events.filter((e) => e.stream === 'stdout').map((e) => Number(e.data.split(' ')[1]));
    assert.deepEqual(nums, [...Array.from({ length: 30 }, (_, i) => i + 1), ...Array.from({ length: 30 }, (_, i) => i + 1)], 'two runs, every line once, in order');
    assert.ok(events.every((e) => e.workload_id === w.id && typeof e.timestamp === 'string'));
    assert.equal((await get(w.id)).status, 'failed');
  });

  test('logs: tail and since; follow=false gives the backlog only', async () => {
    const w = await create({ name: 'tailme', cmd: ['sh', '-c', 'for i in 1 2 3 4 5 6; do echo "l $i"; done; sleep 1000'], restart_policy: 'never' });
    await waitUntil(async () => ((await t.call('GET', `/_hearth/workloads/${w.id}/logs`)).body.logs as any[]).some((e) => e.data === 'l 6') || undefined, 'six lines');
    const tail = (await t.call('GET', `/_hearth/workloads/${w.id}/logs?tail=2`)).body.logs as any[];
    assert.deepEqual(tail.map((e) => e.data), ['l 5', 'l 6']);
    const future = (await t.call('GET', `/_hearth/workloads/${w.id}/logs?since=${new Date(Date.now() + 60_000).toISOString()}`)).body.logs as any[];
    assert.deepEqual(future, []);
    assert.equal((await t.call('GET', `/_hearth/workloads/${w.id}/logs?since=yesterday-ish`)).status, 400);
    const { events } = await readDataSse(await t.fetch(`/_hearth/workloads/${w.id}/logs/stream?follow=false&tail=3`));
    assert.deepEqual(events.map((e) => e.data), ['l 4', 'l 5', 'l 6']);
    await t.call('DELETE', `/_hearth/workloads/${w.id}`);
  });

  test('name works as the id; update merges and restarts only when the process changes', async () => {
    const w = await create({ name: 'web', cmd: ['sleep', '1000'], restart_policy: 'on-failure' });
    const policy = await t.call('PATCH', '/_hearth/workloads/web', { restart_policy: 'always', labels: { team: 'a' } });
    assert.deepEqual([policy.body.restarted, (policy.body.workload as any).restart_policy, (policy.body.workload as any).pid], [false, 'always', w.pid]);
    const changed = await t.call('PUT', '/_hearth/workloads/web', { cmd: ['sleep', '999'] });
    assert.equal(changed.body.restarted, true);
    const now = changed.body.workload as any;
    assert.notEqual(now.pid, w.pid);
    assert.deepEqual([now.cmd, now.labels], [['sleep', '999'], { team: 'a' }]);
    const restarted = await t.call('POST', '/_hearth/workloads/web/restart');
    assert.notEqual((restarted.body.workload as any).pid, now.pid);
    assert.equal((await t.call('DELETE', '/_hearth/workloads/web')).body.deleted, true);
    assert.equal((await t.call('GET', '/_hearth/workloads/web')).status, 404);
  });

  test('bad input: 404 unknown, 400 bad cmd/env/user/cwd, command not found, 409 duplicate', async () => {
    assert.equal((await t.call('GET', '/_hearth/workloads/nope')).status, 404);
    assert.equal((await t.call('POST', '/_hearth/workloads/nope/start')).status, 404);
    const bad = async (body: unknown, field: string, message?: RegExp) => {
      const r = await t.call('POST', '/_hearth/workloads', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.success, false);
      assert.equal((r.body.details as any)?.field, field, JSON.stringify(r.body));
      if (message) assert.match(r.body.message as string, message);
    };
    await bad({ cmd: [] }, 'cmd');
    await bad({ name: 'x' }, 'cmd');
    await bad({ cmd: ['no-such-binary-xyz'] }, 'cmd', /command not found: no-such-binary-xyz/);
    await bad({ cmd: ['/nonexistent/bin'] }, 'cmd', /not found or not executable/);
    await bad({ cmd: ['true'], env: 'A=1' }, 'env');
    await bad({ cmd: ['true'], user: 'ghost-user-x' }, 'user', /ghost-user-x/);
    await bad({ cmd: ['true'], working_dir: '/no/such/dir' }, 'working_dir');
    assert.equal((await t.call('POST', '/_hearth/workloads', '{not json')).status, 400);
    await create({ name: 'dup', cmd: ['sleep', '100'] });
    const dup = await t.call('POST', '/_hearth/workloads', { name: 'dup', cmd: ['sleep', '100'] });
    assert.deepEqual([dup.status, dup.body.code], [409, 'already_exists']);
    const shell = await t.call('POST', '/_hearth/workloads', { name: 'shelly', command: 'echo "from a shell" && exit 0', restart_policy: 'never' });
    assert.equal(shell.status, 200, 'a shell command is the shell\'s business');
  });

  test('user: runs with the uid/gid of the named user', { skip: process.getuid?.() !== 0 ? 'needs root to setuid' : false }, async () => {
    const w = await create({ name: 'as-nobody', cmd: ['sh', '-c', 'echo "$(id -u) $(id -g) $HOME"'], user: 'nobody', restart_policy: 'never' });
    await waitStatus(w.id, 'exited');
    const logs = (await t.call('GET', `/_hearth/workloads/${w.id}/logs`)).body.logs as any[];
    assert.match(logs.find((e) => e.stream === 'stdout').data, /^65534 65534 \//);
  });

  test('per-workload stats: a CPU burner uses CPU, a sleeper does not', async () => {
    const burn = await create({ name: 'burn', cmd: ['node', '-e', 'for(;;){}'], restart_policy: 'never' });
    const idle = await create({ name: 'idle', cmd: ['sleep', '1000'], restart_policy: 'never' });
    await new Promise((r) => setTimeout(r, 300));
    const b = (await t.call('GET', `/_hearth/workloads/${burn.id}/stats`)).body as any;
    const i = (await t.call('GET', `/_hearth/workloads/${idle.id}/stats`)).body as any;
    // Loose bounds: on a busy machine a burner gets well under a core; it still dwarfs a sleeper.
    assert.ok(b.cpu_usage > 5 && b.cpu_usage > i.cpu_usage + 3, `burner ${b.cpu_usage}, sleeper ${i.cpu_usage}`);
    assert.ok(i.cpu_usage < 5, `sleeper ${i.cpu_usage}`);
    assert.ok(b.memory_bytes > 10 * 1024 * 1024 && b.pids >= 1);
    let hot = false;
    const { events } = await readDataSse(await t.fetch('/_hearth/workloads/stats/stream?interval_ms=200'), (ev) => {
      if (ev.workload_id === burn.id && ev.cpu_usage > 0) hot = true;
      return ev.workload_id === idle.id && hot ? false : undefined;
    });
    assert.ok(events.some((e) => e.workload_id === idle.id) && hot, 'every workload in the stream, the burner busy');
    await t.call('DELETE', `/_hearth/workloads/${burn.id}`);
    await t.call('DELETE', `/_hearth/workloads/${idle.id}`);
  });

  test('deleteAll stops and removes everything, with its default log files', async () => {
    const w = await create({ name: 'last', cmd: ['sh', '-c', 'echo x; sleep 100'] });
    const file = w.log_path as string;
    await waitUntil(() => existsSync(file) || undefined, 'log file');
    const r = await t.call('DELETE', '/_hearth/workloads');
    assert.ok((r.body.deleted as number) >= 1);
    assert.deepEqual((await t.call('GET', '/_hearth/workloads')).body.workloads, []);
    assert.equal(existsSync(file), false);
  });
});

describe('logs and metrics of the workspace', () => {
  test('boot log: the agent\'s own lines, streamed and then closed; files listed and readable', async () => {
    const { events } = await readDataSse(await t.fetch('/_hearth/logs/stream/boot'));
    assert.match(events[0].message, new RegExp(`^--- boot: hearth agent generation ${AGENT_GENERATION},`));
    assert.ok(events.some((e) => e.message.startsWith('listening')));
    assert.ok(events.every((e) => e.source === 'boot' && typeof e.timestamp === 'string'));
    const get = (await t.call('GET', '/_hearth/logs?source=boot&tail_lines=1')).body as any;
    assert.equal(get.logs.length, 1);
    const files = (await t.call('GET', '/_hearth/logs/files')).body.files as any[];
    assert.ok(files.some((f) => f.name === 'boot.log' && f.size > 0));
    const file = (await t.call('GET', '/_hearth/logs/files/boot.log')).body as any;
    assert.match(file.content, /--- boot:/);
    assert.equal((await t.call('GET', '/_hearth/logs/files/..%2F..%2Fetc%2Fpasswd')).status, 404);
    assert.equal((await t.call('GET', '/_hearth/logs?source=nope')).status, 400);
  });

  test('cmd log: the workload labelled as config.cmd; the stream follows it and ends with it', async () => {
    await create({ id: 'cmd', name: 'cmd', cmd: ['sh', '-c', 'echo one; sleep 0.3; echo two'], labels: { 'hearth.role': 'cmd' }, restart_policy: 'never' });
    const { events } = await readDataSse(await t.fetch('/_hearth/logs/stream/cmd'));
    assert.deepEqual(events.filter((e) => e.stream === 'stdout').map((e) => e.message), ['one', 'two']);
    const dflt = (await t.call('GET', '/_hearth/logs')).body as any;
    assert.equal(dflt.source, 'cmd', 'with a cmd, the default source is cmd');
    const cleared = (await t.call('DELETE', '/_hearth/logs')).body as any;
    assert.ok(cleared.cleared.includes('boot.log') && cleared.cleared.includes('workload-cmd.log'));
    assert.deepEqual((await t.call('GET', '/_hearth/logs?source=cmd')).body.logs, []);
    await t.call('DELETE', '/_hearth/workloads/cmd');
  });

  test('metrics: one snapshot and a stream, with the contract\'s fields', async () => {
    const m = (await t.call('GET', '/_hearth/metrics')).body as any;
    for (const k of ['cpu_usage', 'memory_usage', 'disk_usage', 'memory_used_bytes', 'memory_limit_bytes', 'guest_disk_total_bytes', 'uptime']) assert.equal(typeof m[k], 'number', k);
    assert.ok(m.memory_limit_bytes > 0 && m.memory_used_bytes > 0 && m.memory_used_bytes <= m.memory_limit_bytes);
    assert.equal(typeof m.network.rx, 'number');
    assert.equal(typeof m.sources.cpu, 'string');
    const t0 = Date.now();
    const { events } = await readDataSse(await t.fetch('/_hearth/metrics/stream?interval_ms=200'), () => (Date.now() - t0 > 700 ? false : undefined));
    assert.ok(events.length >= 2, `events: ${events.length}`);
    assert.ok(events.every((e) => typeof e.timestamp === 'string' && typeof e.cpu_usage === 'number'));
  });
});

test('definitions survive an agent restart: always/on-failure come back, never and stopped ones do not', async () => {
  const state = mkdtempSync(join(tmpdir(), 'hearth-agent-state-'));
  const secret = randomBytes(8).toString('hex');
  const opts = { port: 0, host: '127.0.0.1', secret, log: () => {}, stateDir: state, logDir: join(state, 'log') };
  const call = async (url: string, method: string, path: string, body?: unknown) => {
    const r = await fetch(url + path, { method, headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return (await r.json()) as any;
  };
  try {
    const a = await startAgent(opts);
    const always = (await call(a.url, 'POST', '/_hearth/workloads', { name: 'svc', cmd: ['sh', '-c', 'echo up; sleep 1000'], restart_policy: 'always' })).workload;
    await call(a.url, 'POST', '/_hearth/workloads', { name: 'job', cmd: ['sleep', '1000'], restart_policy: 'never' });
    await call(a.url, 'POST', '/_hearth/workloads', { name: 'parked', cmd: ['sleep', '1000'], restart_policy: 'always' });
    await call(a.url, 'POST', '/_hearth/workloads/parked/stop');
    await call(a.url, 'POST', '/_hearth/workloads', { name: 'off', cmd: ['sleep', '1000'], enabled: false });
    const saved = JSON.parse(readFileSync(join(state, 'workloads.json'), 'utf8'));
    assert.deepEqual(saved.workloads.map((r: any) => [r.spec.name, r.desired]), [['svc', 'running'], ['job', 'running'], ['parked', 'stopped'], ['off', 'stopped']]);
    await a.close();
    const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
    assert.equal(alive(always.pid), false, 'closing the agent stops its workloads');

    const b = await startAgent(opts);
    try {
      const list = (await call(b.url, 'GET', '/_hearth/workloads')).workloads as any[];
      const by = Object.fromEntries(list.map((w) => [w.name, w]));
      assert.equal(by.svc.status, 'running');
      assert.equal(by.svc.id, always.id, 'same id');
      assert.notEqual(by.svc.pid, always.pid);
      assert.equal(by.job.status, 'stopped');
      assert.match(by.job.reason, /restart_policy is never/);
      assert.equal(by.parked.status, 'stopped');
      assert.equal(by.off.status, 'stopped');
      const logs = (await call(b.url, 'GET', `/_hearth/workloads/${always.id}/logs`)).logs as any[];
      assert.equal(logs.filter((e) => e.data === 'up').length, 2, 'the log spans both agent lifetimes');
      const boot = (await call(b.url, 'GET', '/_hearth/logs?source=boot')).logs as any[];
      assert.equal(boot.filter((e) => e.message.startsWith('--- boot:')).length, 2);
    } finally {
      await b.close();
    }
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
