/**
 * Exec through the official SDK against a real `hearth serve`: buffered
 * runs, SSE streams and their event order, background tasks with stdin,
 * subscribe/list/get/kill/deleteAll, timeouts, signals and exit codes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, NotFoundError, OblienError, ValidationError, type Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { checkRuntimeContract, runtimeFor } from '../helpers/runtime-sdk.ts';

let h: HearthInstance;
let client: Oblien;
let rt: Runtime;
let node: Runtime;
let contract: ReturnType<typeof checkRuntimeContract>;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  contract = checkRuntimeContract(h.runtime);
  const [py, nd] = await Promise.all(['python-3.11', 'node-20'].map((image) => client.workspaces.create({ image, config: { ttl: '15m' } } as never) as Promise<Record<string, any>>));
  ({ rt } = await runtimeFor(client, h, py!.id));
  ({ rt: node } = await runtimeFor(client, h, nd!.id));
});
after(async () => {
  contract?.restore();
  if (h) await h.stop();
});

type Ev = { event: string; data?: string; task_id?: string; exit_code?: number; [k: string]: unknown };
const decode = (evs: Ev[], stream: 'stdout' | 'stderr') => evs.filter((e) => e.event === stream).map((e) => Buffer.from(e.data!, 'base64').toString()).join('');

test('run: stdout/stderr as text, exit codes, modes, failures to start', { skip: needsRoot }, async () => {
  const ok = await rt.exec.run(['python3', '-c', 'import sys; print("out"); print("err", file=sys.stderr)']);
  assert.equal(ok.status, 'exited');
  assert.equal(ok.exit_code, 0);
  assert.equal(ok.stdout, 'out\n');
  assert.equal(ok.stderr, 'err\n');
  assert.match(ok.id, /^\d+$/);
  assert.deepEqual(ok.command, ['python3', '-c', 'import sys; print("out"); print("err", file=sys.stderr)']);
  assert.ok(ok.guest_pid! > 1);
  assert.ok(Date.parse(ok.exited_at!) >= Date.parse(ok.started_at!));

  assert.equal((await rt.exec.run(['sh', '-c', 'exit 42'])).exit_code, 42);
  const killed = await rt.exec.run(['sh', '-c', 'kill -TERM $$']) as unknown as Record<string, unknown>;
  assert.deepEqual([killed.exit_code, killed.signal], [143, 'SIGTERM'], 'death by signal: 128+signo');
  const nf = await rt.exec.run(['no-such-command-xyz']);
  assert.deepEqual([nf.status, nf.exit_code], ['failed', 127]);
  assert.match(nf.error!, /not found/);
  const nx = await rt.exec.run(['/etc/hostname']);
  assert.equal(nx.exit_code, 126);

  assert.equal((await rt.exec.run(['echo $((6 * 7)) | tr 4 X'])).stdout, 'X2\n', 'auto: one string with shell syntax runs in the shell');
  assert.equal((await rt.exec.run(['echo', '$HOME'], { execMode: 'direct' })).stdout, '$HOME\n', 'direct: argv as given');
  assert.equal((await rt.exec.run(['echo', '$HOME'], { execMode: 'shell' })).stdout, '/root\n');
  await assert.rejects(rt.exec.run([]), ValidationError);
  await assert.rejects(rt.exec.run(['true'], { execMode: 'nope' as never }), ValidationError);

  const n = await node.exec.run(['node', '-e', 'process.stdout.write(process.version); process.exit(5)']);
  assert.deepEqual([n.exit_code, n.stdout!.slice(0, 4)], [5, 'v20.']);
});

test('run: timeout kills the whole process group; keepLogs and ttl', { skip: needsRoot }, async () => {
  const t0 = Date.now();
  const slow = await rt.exec.run(['sh', '-c', 'sleep 30 & sleep 30; echo never'], { timeoutSeconds: 1 }) as unknown as Record<string, unknown>;
  assert.ok(Date.now() - t0 < 10_000, 'returned soon after the timeout');
  assert.equal(slow.timed_out, true);
  assert.equal(slow.exit_code, 137);
  assert.match(String(slow.error), /timed out/);
  const left = await rt.exec.run(['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done | grep -c "^sleep 30" || true']);
  assert.equal(left.stdout!.trim(), '0', 'the background sleep died with its group');

  const once = await rt.exec.run(['echo', 'secret output'], { keepLogs: false });
  assert.equal(once.stdout, 'secret output\n', 'returned once…');
  assert.equal((await rt.exec.get(once.id)).stdout, '', '…and not retained');

  const brief = await rt.exec.run(['true'], { ttlSeconds: 1 });
  assert.equal((await rt.exec.get(brief.id)).status, 'exited');
  await waitUntil('the finished task to be forgotten after its ttl', async () => {
    try { await rt.exec.get(brief.id); return false; } catch (e) { return e instanceof NotFoundError; }
  }, 5000, 100);
});

test('stream: task_id first, stdout/stderr chunks in order (base64), exit last', { skip: needsRoot }, async () => {
  const prog = 'import sys, time\nfor i in range(3):\n  print(f"out{i}", flush=True); time.sleep(0.05)\n  print(f"err{i}", file=sys.stderr, flush=True); time.sleep(0.05)\nsys.exit(3)';
  const evs: Ev[] = [];
  for await (const ev of rt.exec.stream(['python3', '-c', prog])) evs.push(ev as Ev);
  assert.equal(evs[0]!.event, 'task_id');
  assert.match(evs[0]!.task_id!, /^\d+$/);
  assert.equal(evs[evs.length - 1]!.event, 'exit');
  assert.equal(evs[evs.length - 1]!.exit_code, 3);
  const order = evs.slice(1, -1).map((e) => `${e.event}:${Buffer.from(e.data!, 'base64').toString().trim()}`);
  assert.deepEqual(order, ['stdout:out0', 'stderr:err0', 'stdout:out1', 'stderr:err1', 'stdout:out2', 'stderr:err2']);

  // A lot of binary-ish output arrives complete and in order.
  const big: Ev[] = [];
  for await (const ev of rt.exec.stream(['python3', '-c', 'import sys\nfor i in range(200000): sys.stdout.write(f"{i:08d}\\n")'])) big.push(ev as Ev);
  const text = decode(big, 'stdout');
  assert.equal(text.length, 200_000 * 9);
  assert.equal(text.slice(-9), '00199999\n');
  assert.ok(big.filter((e) => e.event === 'stdout').length > 1, 'streamed in chunks');
  // The finished task replays the same output on subscribe.
  const replay: Ev[] = [];
  for await (const ev of rt.exec.subscribe(big[0]!.task_id!)) replay.push(ev as Ev);
  assert.equal(decode(replay, 'stdout'), text);
  assert.deepEqual([replay[0]!.event, replay[replay.length - 1]!.event], ['task_id', 'exit']);
});

test('background task: drop the stream, then get/list/input/subscribe; kill and deleteAll', { skip: needsRoot }, async () => {
  const prog = 'import sys\nfor line in sys.stdin:\n  line = line.strip()\n  if line == "quit": sys.exit(7)\n  print(line.upper(), flush=True)';
  const iter = rt.exec.stream(['python3', '-u', '-c', prog])[Symbol.asyncIterator]();
  const first = (await iter.next()).value as Ev;
  assert.equal(first.event, 'task_id');
  const id = first.task_id!;
  await iter.return?.(undefined); // the caller goes away; the task must not

  const got = await rt.exec.get(id);
  assert.equal(got.status, 'running');
  assert.ok((await rt.exec.list()).some((t) => t.id === id && t.status === 'running'));
  const w = await rt.exec.input(id, 'hello hearth\n') as Record<string, unknown>;
  assert.equal(w.bytes_written, 13);

  const seen: Ev[] = [];
  const sub = (async () => { for await (const ev of rt.exec.subscribe(id)) seen.push(ev as Ev); })();
  await waitUntil('the echoed input', async () => decode(seen, 'stdout').includes('HELLO HEARTH\n'), 10_000);
  await rt.exec.input(id, 'second\nquit\n');
  await sub;
  assert.equal(decode(seen, 'stdout'), 'HELLO HEARTH\nSECOND\n');
  assert.deepEqual([seen[0]!.event, seen[seen.length - 1]!.event, seen[seen.length - 1]!.exit_code], ['task_id', 'exit', 7]);
  assert.deepEqual([(await rt.exec.get(id)).status, (await rt.exec.get(id)).exit_code], ['exited', 7]);
  await assert.rejects(rt.exec.input(id, 'late\n'), (e: unknown) => e instanceof OblienError && e.code === 'task_not_running' && e.status === 409);

  // kill: the process is gone and the task forgotten.
  const s = rt.exec.stream(['sleep', '300'])[Symbol.asyncIterator]();
  const sleepId = ((await s.next()).value as Ev).task_id!;
  await s.return?.(undefined);
  const pid = (await rt.exec.get(sleepId)).guest_pid!;
  assert.equal((await rt.exec.kill(sleepId) as Record<string, unknown>).success, true);
  await assert.rejects(rt.exec.get(sleepId), NotFoundError);
  await waitUntil('the killed process to vanish', async () => (await rt.exec.run(['test', '-e', `/proc/${pid}`])).exit_code === 1, 5000);
  await assert.rejects(rt.exec.kill('999999'), (e: unknown) => e instanceof NotFoundError && e.code === 'not_found');
  await assert.rejects(rt.exec.input('999999', 'x'), NotFoundError);
  await assert.rejects((async () => { for await (const _ of rt.exec.subscribe('999999')) { /* none */ } })(), NotFoundError);

  // deleteAll: running ones are killed too.
  for (let i = 0; i < 2; i++) {
    const it = rt.exec.stream(['sleep', '300'])[Symbol.asyncIterator]();
    await it.next();
    await it.return?.(undefined);
  }
  const del = await rt.exec.deleteAll() as Record<string, unknown>;
  assert.ok(Number(del.deleted) >= 2);
  assert.deepEqual(await rt.exec.list(), []);
  await waitUntil('no sleep 300 left', async () => (await rt.exec.run(['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done | grep -c "^sleep 300" || true'])).stdout!.trim() === '0', 5000);
});

test('every runtime error answered through the gateway carried the contract error body', { skip: needsRoot }, () => {
  assert.ok(contract.checked() > 30, `checked ${contract.checked()} responses`);
  assert.deepEqual(contract.violations(), []);
});
