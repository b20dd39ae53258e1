/**
 * Guest agent: transport (auth, errors, routing), health/info, and exec
 * (spec §22.2, §22.5). Drives the real agent over HTTP.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT_GENERATION } from '../../src/core/agent-protocol.ts';
import { b64, readSse, startTestAgent, waitUntil, withTempDir, type TestAgent } from '../helpers/agent-harness.ts';

let t: TestAgent;
before(async () => { t = await startTestAgent(); });
after(async () => { await t.close(); });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('agent transport', () => {
  test('401 without a token, with a wrong token, and with a non-Bearer scheme', async () => {
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${t.secret}`, 'Bearer ']) {
      const res = await fetch(`${t.url}/health`, { headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 401, String(authorization));
      const body = await res.json() as Record<string, unknown>;
      assert.deepEqual(
        { success: body.success, error: body.error, code: body.code, hasMessage: typeof body.message === 'string' },
        { success: false, error: 'unauthorized', code: 'unauthorized', hasMessage: true },
      );
    }
  });

  test('the ?token= query is not accepted on plain HTTP', async () => {
    const res = await fetch(`${t.url}/health?token=${t.secret}`);
    assert.equal(res.status, 401);
  });

  test('unknown route → 404 not_found; wrong method → 405', async () => {
    const r = await t.call('GET', '/no/such/route');
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 'not_found');
    assert.equal(r.body.success, false);
    const m = await t.call('PUT', '/exec');
    assert.equal(m.status, 405);
    assert.equal(m.body.code, 'method_not_allowed');
  });

  test('bad JSON → 400 invalid_json, and the agent keeps serving', async () => {
    for (const body of ['{', 'not json', '[1,2]', '"str"']) {
      const r = await t.call('POST', '/exec', body);
      assert.equal(r.status, 400, body);
      assert.equal(r.body.code, 'invalid_json');
      assert.equal(r.body.success, false);
    }
    const r = await t.call('POST', '/files/write', '\u0000\u0001garbage');
    assert.equal(r.status, 400);
    assert.equal((await t.call('GET', '/health')).status, 200);
  });

  test('validation errors are 400 validation_error naming the field', async () => {
    const cases: [unknown, string][] = [
      [{}, 'cmd'],
      [{ cmd: [] }, 'cmd'],
      [{ cmd: [1, 2] }, 'cmd'],
      [{ cmd: ['true'], exec_mode: 'weird' }, 'exec_mode'],
      [{ cmd: ['true'], timeout_seconds: -1 }, 'timeout_seconds'],
      [{ cmd: ['true'], env: 5 }, 'env'],
      [{ cmd: ['true'], env: { 'BAD NAME': 'x' } }, 'env'],
      [{ cmd: ['true'], cwd: '/definitely/not/here' }, 'cwd'],
    ];
    for (const [body, field] of cases) {
      const r = await t.call('POST', '/exec', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.code, 'validation_error');
      assert.deepEqual(r.body.details, { field });
    }
  });

  test('malformed percent-encoding → 400', async () => {
    const r = await t.call('GET', '/exec/%E0%A4%A');
    assert.equal(r.status, 400);
    assert.equal(r.body.success, false);
  });
});

describe('agent health and info', () => {
  test('/health reports ok, the protocol generation and the workspace id', async () => {
    const r = await t.call('GET', '/health');
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'ok');
    assert.equal(r.body.success, true);
    assert.equal(r.body.generation, AGENT_GENERATION);
    assert.equal(r.body.workspace_id, 'ws_test');
    assert.equal(typeof r.body.uptime_ms, 'number');
  });

  test('/runtime answers RuntimeInfo; /runtimes one default target', async () => {
    const info = await t.call('GET', '/runtime');
    assert.equal(info.body.os, 'linux');
    assert.equal(typeof info.body.cpus, 'number');
    assert.ok((info.body.cpus as number) >= 1);
    assert.match(info.body.shell as string, /^\//);
    assert.ok((info.body.capabilities as string[]).includes('exec'));
    const disc = await t.call('GET', '/runtimes');
    assert.equal(disc.body.default_target, 'default');
    const targets = disc.body.targets as { id: string; available: boolean }[];
    assert.deepEqual(targets.map((x) => [x.id, x.available]), [['default', true]]);
  });

  test('/runtimes/default/… is the same agent; other targets are 404', async () => {
    const ok = await t.call('GET', '/runtimes/default/health');
    assert.equal(ok.body.status, 'ok');
    const run = await t.call('POST', '/runtimes/default/exec', { cmd: ['echo', 'via-target'] });
    assert.equal(run.body.stdout, 'via-target\n');
    const other = await t.call('GET', '/runtimes/gpu/health');
    assert.equal(other.status, 404);
    assert.equal(other.body.code, 'not_found');
  });
});

describe('exec run', () => {
  test('echo: plain-text stdout, exit 0, status exited', async () => {
    const r = await t.call('POST', '/exec', { cmd: ['echo', 'hello'] });
    assert.equal(r.status, 200);
    assert.equal(r.body.stdout, 'hello\n');
    assert.equal(r.body.stderr, '');
    assert.equal(r.body.exit_code, 0);
    assert.equal(r.body.status, 'exited');
    assert.match(r.body.id as string, /^\d+$/);
    assert.deepEqual(r.body.command, ['echo', 'hello']);
    assert.equal(typeof r.body.guest_pid, 'number');
  });

  test('stderr and a non-zero exit code', async () => {
    const r = await t.call('POST', '/exec', { cmd: ['sh', '-c', 'echo out; echo err >&2; exit 7'] });
    assert.equal(r.body.stdout, 'out\n');
    assert.equal(r.body.stderr, 'err\n');
    assert.equal(r.body.exit_code, 7);
    assert.equal(r.body.status, 'exited');
  });

  test('command not found → status failed, exit 127, error (not an HTTP error)', async () => {
    const r = await t.call('POST', '/exec', { cmd: ['hearth-no-such-command-xyz', '--x'] });
    assert.equal(r.status, 200);
    assert.notEqual(r.body.success, false);
    assert.equal(r.body.status, 'failed');
    assert.equal(r.body.exit_code, 127);
    assert.match(r.body.error as string, /command not found: hearth-no-such-command-xyz/);
  });

  test('not executable → failed with exit 126', async () => {
    const tmp = await withTempDir();
    try {
      const file = `${tmp.dir}/script.sh`;
      await t.call('POST', '/files/write', { path: file, content: '#!/bin/sh\necho hi\n', mode: '0644' });
      const r = await t.call('POST', '/exec', { cmd: [file], exec_mode: 'direct' });
      assert.equal(r.body.status, 'failed');
      assert.equal(r.body.exit_code, 126);
    } finally {
      await tmp.cleanup();
    }
  });

  test('exec modes: direct passes arguments verbatim, shell interprets, auto decides', async () => {
    const direct = await t.call('POST', '/exec', { cmd: ['echo', '$HOME', 'a|b'], exec_mode: 'direct' });
    assert.equal(direct.body.stdout, '$HOME a|b\n');
    assert.equal(direct.body.exec_mode, 'direct');
    const shell = await t.call('POST', '/exec', { cmd: ['echo', 'a', '&&', 'echo', 'b'], exec_mode: 'shell' });
    assert.equal(shell.body.stdout, 'a\nb\n');
    const autoScript = await t.call('POST', '/exec', { cmd: ['echo one | tr o 0'] });
    assert.equal(autoScript.body.stdout, '0ne\n');
    assert.equal(autoScript.body.exec_mode, 'shell');
    const autoArgv = await t.call('POST', '/exec', { cmd: ['printf', '%s-%s', 'x y', 'z'] });
    assert.equal(autoArgv.body.stdout, 'x y-z');
    assert.equal(autoArgv.body.exec_mode, 'direct');
    const shellNotFound = await t.call('POST', '/exec', { cmd: ['hearth-missing-cmd-abc'], exec_mode: 'shell' });
    assert.equal(shellNotFound.body.exit_code, 127);
  });

  test('timeout_seconds kills the whole process group with SIGKILL', async () => {
    const started = Date.now();
    const r = await t.call('POST', '/exec', {
      cmd: ['sh', '-c', 'sleep 30 & echo $!; sleep 30'],
      timeout_seconds: 0.5,
    });
    assert.ok(Date.now() - started < 10_000, 'returned long before the sleeps would end');
    assert.equal(r.body.exit_code, 137);
    assert.equal(r.body.signal, 'SIGKILL');
    assert.equal(r.body.timed_out, true);
    assert.match(r.body.error as string, /timed out/);
    const bgPid = Number((r.body.stdout as string).trim());
    assert.ok(bgPid > 0);
    await waitUntil(() => !alive(bgPid), `background sleep ${bgPid} to die`);
  });

  test('death by signal → exit_code 128+signo and the signal name', async () => {
    const r = await t.call('POST', '/exec', { cmd: ['sh', '-c', 'kill -TERM $$'] });
    assert.equal(r.body.exit_code, 143);
    assert.equal(r.body.signal, 'SIGTERM');
    assert.equal(r.body.status, 'exited');
  });

  test('HEARTH_* never reaches the child; env extension (object and array) works', async () => {
    process.env.HEARTH_AGENT_SECRET_PROBE = 'leak';
    try {
      const r = await t.call('POST', '/exec', {
        cmd: ['sh', '-c', 'env'],
        env: { FOO: 'bar', HEARTH_INJECT: 'no' },
      });
      const lines = (r.body.stdout as string).split('\n');
      assert.ok(lines.includes('FOO=bar'));
      assert.ok(!lines.some((l) => l.startsWith('HEARTH_')), 'no HEARTH_ variable in the child');
      const arr = await t.call('POST', '/exec', { cmd: ['sh', '-c', 'echo "$A:$B"'], env: ['A=1', 'B=x=y'] });
      assert.equal(arr.body.stdout, '1:x=y\n');
    } finally {
      delete process.env.HEARTH_AGENT_SECRET_PROBE;
    }
  });

  test('cwd / working_dir extension', async () => {
    const tmp = await withTempDir();
    try {
      const a = await t.call('POST', '/exec', { cmd: ['pwd'], cwd: tmp.dir });
      assert.equal(a.body.stdout, `${tmp.dir}\n`);
      const b = await t.call('POST', '/exec', { cmd: ['pwd'], working_dir: tmp.dir });
      assert.equal(b.body.stdout, `${tmp.dir}\n`);
    } finally {
      await tmp.cleanup();
    }
  });

  test('run closes stdin: a stdin reader ends instead of hanging; stdin extension feeds it', async () => {
    const r = await t.call('POST', '/exec', { cmd: ['cat'] });
    assert.equal(r.body.exit_code, 0);
    assert.equal(r.body.stdout, '');
    const fed = await t.call('POST', '/exec', { cmd: ['cat'], stdin: 'fed\n' });
    assert.equal(fed.body.stdout, 'fed\n');
  });

  test('output beyond 10 MiB per stream is dropped and reported truncated', async () => {
    const r = await t.call('POST', '/exec', { cmd: ['sh', '-c', 'head -c 11000000 /dev/zero | tr "\\000" a'] });
    assert.equal(r.body.exit_code, 0);
    assert.equal(r.body.stdout_bytes, 10 * 1024 * 1024);
    assert.equal((r.body.stdout as string).length, 10 * 1024 * 1024);
    assert.equal(r.body.truncated, true);
    assert.equal(r.body.stdout_truncated, true);
    assert.equal(r.body.stderr_truncated, false);
  });

  test('ttl_seconds: a finished task is forgotten after its ttl', async () => {
    const r = await t.call('POST', '/exec', { cmd: ['true'], ttl_seconds: 0.2 });
    const id = r.body.id as string;
    assert.equal((await t.call('GET', `/exec/${id}`)).status, 200);
    await waitUntil(async () => (await t.call('GET', `/exec/${id}`)).status === 404, 'task expiry');
  });

  test('keep_logs:false returns output once, then keeps none', async () => {
    const r = await t.call('POST', '/exec', { cmd: ['echo', 'once'], keep_logs: false });
    assert.equal(r.body.stdout, 'once\n');
    const g = await t.call('GET', `/exec/${r.body.id}`);
    assert.equal(g.body.stdout, '');
    assert.equal(g.body.exit_code, 0);
  });
});

describe('exec stream, subscribe, input, kill', () => {
  test('stream: task_id first, base64 stdout/stderr, exit last', async () => {
    const res = await t.fetch('/exec/stream', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'] }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = await readSse(res);
    assert.equal(events[0]?.event, 'task_id');
    assert.match(events[0]?.task_id as string, /^\d+$/);
    const last = events[events.length - 1];
    assert.equal(last?.event, 'exit');
    assert.equal(last?.exit_code, 3);
    assert.equal(events.filter((e) => e.event === 'exit').length, 1);
    const out = events.filter((e) => e.event === 'stdout').map((e) => b64(e.data as string)).join('');
    const err = events.filter((e) => e.event === 'stderr').map((e) => b64(e.data as string)).join('');
    assert.equal(out, 'out\n');
    assert.equal(err, 'err\n');
  });

  test('stream errors before the stream starts are JSON errors', async () => {
    const res = await t.fetch('/exec/stream', { method: 'POST', body: JSON.stringify({ cmd: [] }) });
    assert.equal(res.status, 400);
    const body = await res.json() as Record<string, unknown>;
    assert.equal(body.success, false);
  });

  test('stdin: input reaches cat, bytes_written is reported, eof=1 closes stdin', async () => {
    const res = await t.fetch('/exec/stream', { method: 'POST', body: JSON.stringify({ cmd: ['cat'] }) });
    let taskId = '';
    const events = await readSse(res, async (ev) => {
      if (ev.event !== 'task_id') return;
      taskId = ev.task_id as string;
      const w1 = await t.fetch(`/exec/${taskId}/input`, {
        method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'hello\n',
      });
      assert.deepEqual(await w1.json(), { success: true, task_id: taskId, bytes_written: 6 });
      const w2 = await t.fetch(`/exec/${taskId}/input?eof=1`, { method: 'POST', body: 'bye\n' });
      assert.equal(((await w2.json()) as { bytes_written: number }).bytes_written, 4);
    });
    const out = events.filter((e) => e.event === 'stdout').map((e) => b64(e.data as string)).join('');
    assert.equal(out, 'hello\nbye\n');
    assert.equal(events[events.length - 1]?.exit_code, 0);
    const late = await t.call('POST', `/exec/${taskId}/input`, 'more');
    assert.equal(late.status, 409);
    assert.equal(late.body.code, 'task_not_running');
  });

  test('dropping the stream does not kill the task; subscribe replays then exits', async () => {
    const ac = new AbortController();
    const res = await t.fetch('/exec/stream', {
      method: 'POST',
      body: JSON.stringify({ cmd: ['sh', '-c', 'echo one; sleep 0.4; echo two'] }),
      signal: ac.signal,
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const taskId = /"task_id":"(\d+)"/.exec(first)?.[1] as string;
    assert.ok(taskId);
    ac.abort();

    // Live subscription while it still runs: replay of "one", then "two", then exit.
    const sub = await t.fetch(`/exec/stream?task_id=${taskId}`);
    const events = await readSse(sub);
    assert.equal(events[0]?.event, 'task_id');
    assert.equal(events[events.length - 1]?.event, 'exit');
    const out = events.filter((e) => e.event === 'stdout').map((e) => b64(e.data as string)).join('');
    assert.equal(out, 'one\ntwo\n');

    const done = await t.call('GET', `/exec/${taskId}`);
    assert.equal(done.body.status, 'exited');
    assert.equal(done.body.stdout, 'one\ntwo\n');

    // After exit: replay + exit immediately.
    const again = await readSse(await t.fetch(`/exec/stream?task_id=${taskId}`));
    assert.deepEqual(again.map((e) => e.event), ['task_id', 'stdout', 'stdout', 'exit']);
  });

  test('subscribe to an unknown task → 404; without task_id → 400', async () => {
    assert.equal((await t.fetch('/exec/stream?task_id=999999')).status, 404);
    assert.equal((await t.fetch('/exec/stream')).status, 400);
  });

  test('list, get, kill one (the process dies), delete all', async () => {
    const res = await t.fetch('/exec/stream', { method: 'POST', body: JSON.stringify({ cmd: ['sleep', '30'] }) });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const taskId = /"task_id":"(\d+)"/.exec(first)?.[1] as string;

    const list = await t.call('GET', '/exec');
    const tasks = list.body.tasks as { id: string; status: string; guest_pid: number }[];
    const mine = tasks.find((x) => x.id === taskId);
    assert.equal(mine?.status, 'running');
    const pid = mine?.guest_pid as number;
    assert.ok(alive(pid));

    const got = await t.call('GET', `/exec/${taskId}`);
    assert.equal(got.body.status, 'running');

    const killed = await t.call('DELETE', `/exec/${taskId}`);
    assert.deepEqual(killed.body, { success: true, task_id: taskId });
    await waitUntil(() => !alive(pid), 'killed sleep to die');
    assert.equal((await t.call('GET', `/exec/${taskId}`)).status, 404);
    assert.equal((await t.call('DELETE', `/exec/${taskId}`)).status, 404);
    // The open stream still ends with an exit event.
    let rest = first;
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    assert.match(rest, /event: exit\ndata: \{"exit_code":137/);

    await t.call('POST', '/exec', { cmd: ['true'] });
    const del = await t.call('DELETE', '/exec');
    assert.equal(del.body.success, true);
    assert.ok((del.body.deleted as number) >= 1);
    assert.deepEqual((await t.call('GET', '/exec')).body.tasks, []);
  });

  test('input to an unknown task → 404', async () => {
    const r = await t.call('POST', '/exec/424242/input', 'x');
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 'not_found');
  });
});
