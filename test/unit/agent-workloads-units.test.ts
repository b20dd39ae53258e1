/**
 * The pure parts of workloads, logs and metrics: restart decisions and the
 * back-off schedule, spec parsing (env forms, aliases), the log line format
 * and rotation, user resolution, and the /proc and cgroup parsers (with
 * literal file contents).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backoffMs, decide, MAX_BACKOFF_MS, startsAtBoot, STABLE_RUN_MS, type ExitFacts } from '../../src/agent/workloads/policy.ts';
import { applyUpdate, parseCreate, parseEnv } from '../../src/core/agent-protocol/workload-spec.ts';
import { LineSplitter, formatLine, parseLine, parseSince, MAX_LINE_CHARS } from '../../src/agent/logs/line.ts';
import { LogStore, readLinesBackward } from '../../src/agent/logs/store.ts';
import { parseGroup, parsePasswd, resolveUser } from '../../src/agent/workloads/user.ts';
import {
  cgroupDir, cpuLimitCores, parseCgroupMounts, parseLimit, parseMeminfo, parseNetDev, parsePidStat, parseProcStatCpu, parseSelfCgroup,
} from '../../src/agent/metrics/proc.ts';
import { AgentError } from '../../src/core/agent-protocol/errors.ts';
import { initialWorkloadBodies, validateInitialWorkloads } from '../../src/control/workloads.ts';
import { ValidationFailed } from '../../src/core/errors.ts';

const spec = (over: Partial<Parameters<typeof decide>[0]> = {}) => ({ restart_policy: 'on-failure' as const, max_restarts: 0, restart_delay: 1, restart_backoff: true, ...over });
const exit = (over: Partial<ExitFacts> = {}): ExitFacts => ({ code: 1, signal: null, requested: false, ranMs: 100, ...over });

describe('restart decisions', () => {
  // policy, exit facts, restart?, final status when not
  const cases: [string, Partial<ExitFacts>, boolean, string?][] = [
    ['never', { code: 0 }, false, 'exited'],
    ['never', { code: 3 }, false, 'failed'],
    ['never', { code: null, signal: 'SIGKILL' }, false, 'failed'],
    ['on-failure', { code: 0 }, false, 'exited'],
    ['on-failure', { code: 3 }, true],
    ['on-failure', { code: null, signal: 'SIGSEGV' }, true],
    ['on-failure', { code: 127, ranMs: 0 }, true],
    ['always', { code: 0 }, true],
    ['always', { code: 3 }, true],
    ['always', { code: 0, requested: true }, false, 'stopped'],
    ['on-failure', { code: null, signal: 'SIGTERM', requested: true }, false, 'stopped'],
    ['never', { code: 143, requested: true }, false, 'stopped'],
  ];
  for (const [policy, facts, restart, status] of cases) {
    test(`${policy} + ${JSON.stringify(facts)} → ${restart ? 'restart' : status}`, () => {
      const d = decide(spec({ restart_policy: policy as 'never' }), exit(facts), { restarts: 0, streak: 0 });
      assert.equal(d.restart, restart);
      if (!d.restart) assert.equal(d.status, status);
    });
  }

  test('max_restarts caps the restarts since the last explicit start; 0 means no cap', () => {
    const s = spec({ max_restarts: 3 });
    let state = { restarts: 0, streak: 0 };
    for (let i = 1; i <= 3; i++) {
      const d = decide(s, exit(), state);
      assert.ok(d.restart, `restart ${i}`);
      if (d.restart) state = d.next;
    }
    assert.equal(state.restarts, 3);
    const last = decide(s, exit({ code: 9 }), state);
    assert.deepEqual(last, { restart: false, status: 'failed', reason: 'restart limit reached (3)' });
    assert.ok(decide(spec({ max_restarts: 0 }), exit(), { restarts: 10_000, streak: 50 }).restart);
  });

  test('back-off doubles per quick failure from restart_delay, capped; a stable run resets it', () => {
    const s = spec({ restart_delay: 0.5 });
    const delays: number[] = [];
    let state = { restarts: 0, streak: 0 };
    for (let i = 0; i < 10; i++) {
      const d = decide(s, exit(), state);
      assert.ok(d.restart);
      if (d.restart) { delays.push(d.delayMs); state = d.next; }
    }
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
    const afterStable = decide(s, exit({ ranMs: STABLE_RUN_MS }), state);
    assert.ok(afterStable.restart && afterStable.delayMs === 500 && afterStable.next.streak === 1);
  });

  test('backoffMs: constant without back-off, never below 100 ms, never above the cap', () => {
    assert.equal(backoffMs({ restart_delay: 2, restart_backoff: false }, 7), 2000);
    assert.equal(backoffMs({ restart_delay: 0, restart_backoff: false }, 1), 100);
    assert.equal(backoffMs({ restart_delay: 0, restart_backoff: true }, 3), 400);
    assert.equal(backoffMs({ restart_delay: 3600, restart_backoff: true }, 1), MAX_BACKOFF_MS);
    assert.equal(backoffMs({ restart_delay: 1, restart_backoff: true }, 1000), MAX_BACKOFF_MS);
  });

  test('what comes back at boot', () => {
    assert.equal(startsAtBoot({ enabled: true, restart_policy: 'always' }, 'running'), true);
    assert.equal(startsAtBoot({ enabled: true, restart_policy: 'on-failure' }, 'running'), true);
    assert.equal(startsAtBoot({ enabled: true, restart_policy: 'never' }, 'running'), false);
    assert.equal(startsAtBoot({ enabled: true, restart_policy: 'always' }, 'stopped'), false);
    assert.equal(startsAtBoot({ enabled: false, restart_policy: 'always' }, 'running'), false);
  });
});

describe('workload spec', () => {
  const id = () => 'wl_generated';
  const field = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof AgentError, String(e));
      assert.equal(e.code, 'validation_error');
      return e.details?.field as string;
    }
    assert.fail('expected a validation error');
  };

  test('env in all three forms becomes K=V, later keys win, order of first appearance kept', () => {
    assert.deepEqual(parseEnv({ PORT: '3000', DEBUG: 1, ON: true }), ['PORT=3000', 'DEBUG=1', 'ON=true']);
    assert.deepEqual(parseEnv(['PORT=3000', 'A=b=c', 'EMPTY=']), ['PORT=3000', 'A=b=c', 'EMPTY=']);
    assert.deepEqual(parseEnv([{ key: 'PORT', value: '3000' }, 'X=1', { key: 'PORT', value: 4000 }]), ['X=1', 'PORT=4000']);
    assert.deepEqual(parseEnv(undefined), []);
  });

  test('bad env is a validation error on env', () => {
    for (const bad of ['PORT=3000', ['PORT'], ['=x'], { '1BAD': 'x' }, { A: { nested: 1 } }, [42], { HEARTH_AGENT_SECRET: 'x' }]) {
      assert.equal(field(() => parseEnv(bad)), 'env', JSON.stringify(bad));
    }
  });

  test('defaults, the CLI\'s string values and aliases', () => {
    const s = parseCreate({ cmd: ['node', 'server.js'] }, id);
    assert.deepEqual([s.id, s.name, s.restart_policy, s.max_restarts, s.restart_delay, s.restart_backoff, s.enabled, s.max_log_size_mb], ['wl_generated', 'wl_generated', 'on-failure', 0, 1, true, true, 10]);
    const cli = parseCreate({ name: 'web', command: 'npm start', restart_policy: 'unless-stopped', max_restarts: '3', restart_backoff: 'false', image: 'ignored', port: 3000, env: { A: '1' } }, id);
    assert.deepEqual([cli.cmd, cli.restart_policy, cli.max_restarts, cli.restart_backoff, cli.env], [['npm start'], 'always', 3, false, ['A=1']]);
    assert.equal(parseCreate({ cmd: ['x'], restart_policy: 'no' }, id).restart_policy, 'never');
    assert.equal(parseCreate({ cmd: ['x'], target: 'default' }, id).cmd[0], 'x');
  });

  test('bad fields name the field', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'cmd'], [{ cmd: [] }, 'cmd'], [{ cmd: [1] }, 'cmd'], [{ cmd: [''] }, 'cmd'],
      [{ cmd: ['x'], restart_policy: 'sometimes' }, 'restart_policy'], [{ cmd: ['x'], max_restarts: -1 }, 'max_restarts'],
      [{ cmd: ['x'], restart_delay: 'soon' }, 'restart_delay'], [{ cmd: ['x'], working_dir: 'relative' }, 'working_dir'],
      [{ cmd: ['x'], name: 'has space' }, 'name'], [{ cmd: ['x'], name: 'stats' }, 'name'], [{ cmd: ['x'], id: 'a/b' }, 'id'],
      [{ cmd: ['x'], user: 'a b' }, 'user'], [{ cmd: ['x'], max_log_size_mb: 0 }, 'max_log_size_mb'],
      [{ cmd: ['x'], vm_on_exit: 'explode' }, 'vm_on_exit'], [{ cmd: ['x'], target: 'gpu' }, 'target'], [{ cmd: ['x'], labels: { a: {} } }, 'labels'],
    ];
    for (const [body, f] of cases) assert.equal(field(() => parseCreate(body, id)), f, JSON.stringify(body));
  });

  test('updates merge, and say when the process must restart for them to apply', () => {
    const s = parseCreate({ name: 'web', cmd: ['node', 'a.js'], env: ['A=1'] }, id);
    const policyOnly = applyUpdate(s, { restart_policy: 'always', max_restarts: 2 });
    assert.deepEqual([policyOnly.restartNeeded, policyOnly.spec.restart_policy, policyOnly.spec.cmd], [false, 'always', ['node', 'a.js']]);
    assert.equal(applyUpdate(s, { env: { A: '2' } }).restartNeeded, true);
    assert.equal(applyUpdate(s, { env: ['A=1'] }).restartNeeded, false, 'same env is no change');
    assert.equal(applyUpdate(s, { cmd: ['node', 'b.js'] }).restartNeeded, true);
    assert.equal(field(() => applyUpdate(s, { id: 'other' })), 'id');
  });
});

describe('initial workloads from the workspace config', () => {
  test('config.workloads and config.cmd become create bodies with stable ids and the workspace env underneath', () => {
    const bodies = initialWorkloadBodies({ env: ['TZ=UTC', 'PORT=1'], workloads: [{ name: 'web', cmd: ['node', 's.js'], env: { PORT: '3000' } }, { cmd: ['worker'] }], cmd: 'npm start' });
    assert.deepEqual(bodies.map((b) => [b.id, b.env]), [['web', ['TZ=UTC', 'PORT=1', 'PORT=3000']], ['init-2', ['TZ=UTC', 'PORT=1']], ['cmd', ['TZ=UTC', 'PORT=1']]]);
    assert.deepEqual(bodies[2]!.labels, { 'hearth.role': 'cmd' });
    assert.deepEqual(bodies[2]!.cmd, ['npm start']);
    assert.deepEqual(initialWorkloadBodies({ env: [] }), []);
  });
  test('bad definitions fail the create with the field named', () => {
    const f = (config: Record<string, unknown>) => {
      try {
        validateInitialWorkloads({ env: [], ...config });
      } catch (e) {
        assert.ok(e instanceof ValidationFailed);
        return e.field;
      }
      return null;
    };
    assert.equal(f({ workloads: [{ cmd: ['ok'] }] }), null);
    assert.equal(f({ workloads: 'nope' }), 'config.workloads');
    assert.equal(f({ workloads: [{ cmd: [] }] }), 'config.workloads[0].cmd');
    assert.equal(f({ workloads: [{ cmd: ['x'], env: 'A=1' }] }), 'config.workloads[0].env');
    assert.equal(f({ workloads: [{ name: 'a', cmd: ['x'] }, { name: 'a', cmd: ['y'] }] }), 'config.workloads[1]');
    assert.equal(f({ cmd: 42 }), 'config.cmd');
  });
});

describe('log lines', () => {
  test('format and parse round-trip; foreign lines are kept as stdout', () => {
    const e = { t: '2026-01-02T03:04:05.678Z', stream: 'stderr' as const, data: 'oops: a b  c' };
    assert.equal(formatLine(e), '2026-01-02T03:04:05.678Z stderr oops: a b  c\n');
    assert.deepEqual(parseLine(formatLine(e).trimEnd()), e);
    assert.deepEqual(parseLine('2026-01-02T03:04:05.678Z system '), { t: '2026-01-02T03:04:05.678Z', stream: 'system', data: '' });
    assert.deepEqual(parseLine('plain text'), { t: '', stream: 'stdout', data: 'plain text' });
  });

  test('since: ISO, epoch seconds or ms, durations', () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    assert.equal(parseSince('2026-01-01T00:00:00Z', now), Date.parse('2026-01-01T00:00:00Z'));
    assert.equal(parseSince('1767225600', now), 1767225600_000);
    assert.equal(parseSince('1767225600123', now), 1767225600123);
    assert.equal(parseSince('5m', now), now - 300_000);
    assert.equal(parseSince('1.5h', now), now - 5_400_000);
    assert.equal(parseSince('soon', now), null);
  });

  test('splitter: partial lines wait for their newline, CRLF, split UTF-8, overlong lines are cut', () => {
    const s = new LineSplitter();
    assert.deepEqual(s.push(Buffer.from('a\r\nb')), ['a']);
    assert.deepEqual(s.push(Buffer.from('c\n\n')), ['bc', '']);
    const euro = Buffer.from('€\n');
    assert.deepEqual(s.push(euro.subarray(0, 1)), []);
    assert.deepEqual(s.push(euro.subarray(1)), ['€']);
    assert.deepEqual(s.push(Buffer.from('tail')), []);
    assert.deepEqual(s.flush(), ['tail']);
    const long = s.push(Buffer.from('x'.repeat(MAX_LINE_CHARS * 2 + 5)));
    assert.deepEqual(long.map((l) => l.length), [MAX_LINE_CHARS, MAX_LINE_CHARS]);
    assert.deepEqual(s.flush(), ['xxxxx']);
  });
});

describe('log store', () => {
  const dir = () => mkdtempSync(join(tmpdir(), 'hearth-logstore-'));
  const entry = (i: number, t = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString()) => ({ t, stream: 'stdout' as const, data: `line ${i}` });

  test('rotates at the cap into one .1 file, so disk use stays bounded, and tails across both', () => {
    const d = dir();
    try {
      const lineBytes = formatLine(entry(10)).length;
      const store = new LogStore(join(d, 'w.log'), lineBytes * 10);
      const seen: string[] = [];
      store.subscribe((e) => seen.push(e.data));
      for (let i = 10; i < 45; i++) store.append([entry(i)]);
      const cur = statSync(join(d, 'w.log')).size;
      const old = statSync(join(d, 'w.log.1')).size;
      assert.ok(cur <= lineBytes * 10 && old <= lineBytes * 10, `${cur} + ${old}`);
      assert.equal(seen.length, 35, 'subscribers see every line');
      const tail = store.tail({ tail: 15 });
      assert.deepEqual(tail.map((e) => e.data), Array.from({ length: 15 }, (_, i) => `line ${30 + i}`));
      const all = store.tail();
      assert.equal(all.at(-1)!.data, 'line 44');
      assert.ok(all.length >= 10 && all.length <= 20, 'older generations are gone');
      const since = store.tail({ sinceMs: Date.UTC(2026, 0, 1, 0, 0, 40) });
      assert.deepEqual(since.map((e) => e.data), ['line 40', 'line 41', 'line 42', 'line 43', 'line 44']);
      assert.deepEqual(store.files().map((f) => f.name), ['w.log', 'w.log.1']);
      store.clear();
      assert.deepEqual(store.tail(), []);
      assert.deepEqual(store.files(), []);
      store.append([entry(50)]);
      assert.deepEqual(store.tail().map((e) => e.data), ['line 50'], 'writes go on after a clear');
      store.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test('one batch bigger than the cap still rotates between lines', () => {
    const d = dir();
    try {
      const lineBytes = formatLine(entry(10)).length;
      const store = new LogStore(join(d, 'w.log'), lineBytes * 4);
      store.append(Array.from({ length: 10 }, (_, i) => entry(10 + i)));
      assert.ok(statSync(join(d, 'w.log')).size <= lineBytes * 4);
      assert.deepEqual(store.tail().map((e) => e.data), ['line 14', 'line 15', 'line 16', 'line 17', 'line 18', 'line 19']);
      store.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test('reading backwards across chunk boundaries returns every line, newest first', () => {
    const d = dir();
    try {
      const lines = Array.from({ length: 5000 }, (_, i) => `${i} ${'y'.repeat(i % 97)}`);
      writeFileSync(join(d, 'f'), `${lines.join('\n')}\n`);
      const got: string[] = [];
      assert.equal(readLinesBackward(join(d, 'f'), (l) => { got.push(l); return true; }), true);
      assert.deepEqual(got, lines.reverse());
      assert.equal(readFileSync(join(d, 'f'), 'utf8').length > 128 * 1024, true, 'several 64 KiB chunks');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('users', () => {
  const passwd = parsePasswd('root:x:0:0:root:/root:/bin/bash\nnode:x:1000:1000::/home/node:/bin/sh\n# comment\nbroken\n');
  const groups = parseGroup('root:x:0:\nstaff:x:50:node\n');
  test('name, uid, name:group, uid:gid', () => {
    assert.deepEqual(resolveUser('node', passwd, groups), { uid: 1000, gid: 1000, name: 'node', home: '/home/node' });
    assert.deepEqual(resolveUser('0', passwd, groups), { uid: 0, gid: 0, name: 'root', home: '/root' });
    assert.deepEqual(resolveUser('node:staff', passwd, groups), { uid: 1000, gid: 50, name: 'node', home: '/home/node' });
    assert.deepEqual(resolveUser('4242', passwd, groups), { uid: 4242, gid: 4242, name: null, home: '/' });
    assert.deepEqual(resolveUser('4242:7', passwd, groups), { uid: 4242, gid: 7, name: null, home: '/' });
  });
  test('unknown names are validation errors', () => {
    assert.throws(() => resolveUser('ghost', passwd, groups), /ghost/);
    assert.throws(() => resolveUser('node:ghosts', passwd, groups), /ghosts/);
  });
});

describe('/proc and cgroup parsers', () => {
  test('net/dev: every interface but lo', () => {
    const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0: 9876543    5000    0    0    0     0          0         0   123000     900    0    0    0     0       0          0
`;
    assert.deepEqual(parseNetDev(text), { rx: 9876543, tx: 123000, interfaces: { eth0: { rx: 9876543, tx: 123000 } } });
  });

  test('pid stat: the command may hold spaces and parentheses', () => {
    const text = '4242 (node (worker) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 50 0 0 20 0 11 0 99999 1234567 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0';
    assert.deepEqual(parsePidStat(text), { pid: 4242, ppid: 1, pgrp: 4242, session: 4242, cpuTicks: 200, rssBytes: 2560 * 4096 });
    assert.equal(parsePidStat('garbage'), null);
  });

  test('stat cpu line and meminfo', () => {
    const stat = parseProcStatCpu('cpu  100 5 50 1000 10 1 2 3 0 0\ncpu0 50 2 25 500 5 0 1 1 0 0\ncpu1 50 3 25 500 5 1 1 2 0 0\n');
    assert.deepEqual(stat, { busyNs: (161 * 1e9) / 100, cpus: 2 });
    assert.deepEqual(parseMeminfo('MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\n'), { totalBytes: 1024000, availableBytes: 614400 });
  });

  test('own cgroup directory: inside a container (cgroup namespace) and on a host', () => {
    const mountinfo = [
      '30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct',
      '31 25 0:27 / /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory',
      '32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    ].join('\n');
    const mounts = parseCgroupMounts(mountinfo);
    const inContainer = parseSelfCgroup('5:memory:/\n4:cpu,cpuacct:/\n0::/\n');
    assert.equal(cgroupDir(mounts, inContainer, 'cpuacct'), '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(cgroupDir(mounts, inContainer, 'memory'), '/sys/fs/cgroup/memory');
    const onHost = parseSelfCgroup('5:memory:/user.slice/session-1.scope\n4:cpu,cpuacct:/user.slice\n0::/user.slice\n');
    assert.equal(cgroupDir(mounts, onHost, 'memory'), '/sys/fs/cgroup/memory/user.slice/session-1.scope');
    assert.equal(cgroupDir(mounts, onHost, ''), '/sys/fs/cgroup/unified/user.slice');
    // A bind-mounted subtree (root /docker/x) and a path below it.
    const sub = parseCgroupMounts('40 25 0:29 /docker/x /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory');
    assert.equal(cgroupDir(sub, parseSelfCgroup('5:memory:/docker/x/inner\n'), 'memory'), '/sys/fs/cgroup/memory/inner');
    assert.equal(cgroupDir(sub, parseSelfCgroup('5:memory:/../../elsewhere\n'), 'memory'), '/sys/fs/cgroup/memory');
    assert.equal(cgroupDir(mounts, inContainer, 'pids'), null);
  });

  test('limits: numbers, "max" and v1\'s no-limit sentinel; CPU quota in cores', () => {
    assert.equal(parseLimit('536870912\n'), 536870912);
    assert.equal(parseLimit('max\n'), null);
    assert.equal(parseLimit('9223372036854771712\n'), null);
    assert.equal(cpuLimitCores('200000\n', '100000\n', null), 2);
    assert.equal(cpuLimitCores('-1\n', '100000\n', null), null);
    assert.equal(cpuLimitCores(null, null, '150000 100000\n'), 1.5);
    assert.equal(cpuLimitCores(null, null, 'max 100000\n'), null);
  });
});
