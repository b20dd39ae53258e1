import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCreateRequest, normalizeEnv, mergeConfig, defaultConfig, DEFAULT_BOUNDS, slugFromName } from '../../src/core/workspace-spec.ts';
import { ValidationFailed } from '../../src/core/errors.ts';
import { DurationError } from '../../src/core/duration.ts';

test('the SDK create body of the seed sandbox flow normalizes to a temporary air-gapped workspace', () => {
  const req = parseCreateRequest({ image: 'python-3.12', config: { ttl: '5m', remove_on_exit: true, allow_internet: false, cpus: 1 }, wait_ready: false });
  assert.equal(req.mode, 'temporary');
  assert.equal(req.config.ttl_seconds, 300);
  assert.equal(req.config.ttl, '5m');
  assert.equal(req.config.remove_on_exit, true);
  assert.equal(req.config.allow_internet, false);
  assert.equal(req.config.cpus, 1);
  assert.equal(req.config.memory_mb, 512);
});

test('permanent workspace keeps requested resources; MCP aliases are accepted', () => {
  const a = parseCreateRequest({ image: 'node-20', mode: 'permanent', config: { cpus: 2, memory_mb: 4096 } });
  assert.deepEqual([a.mode, a.config.cpus, a.config.memory_mb], ['permanent', 2, 4096]);
  const b = parseCreateRequest({ image: 'node-20', vcpus: 3, ram_mb: 1024, disk_mb: 2048, config: {} });
  assert.deepEqual([b.config.cpus, b.config.memory_mb, b.config.disk_size_mb], [3, 1024, 2048]);
});

test('bad input is refused naming the field', () => {
  const cases: [unknown, string][] = [
    [{}, 'image'], [{ image: '' }, 'image'], [{ image: 'x', config: { cpus: -1 } }, 'cpus'],
    [{ image: 'x', config: { cpus: 999 } }, 'cpus'], [{ image: 'x', config: { memory_mb: 10 } }, 'memory_mb'],
    [{ image: 'x', config: { memory_mb: 100.5 } }, 'memory_mb'], [{ image: 'x', mode: 'forever' }, 'mode'],
    [{ image: 'x', mode: 'permanent', config: { ttl: '5m' } }, 'ttl'], [{ image: 'x', config: [] }, 'config'],
    [{ image: 'x', config: { ingress: ['not-an-ip'] } }, 'ingress'], [{ image: 'x', config: { egress: ['bad host!'] } }, 'egress'],
    [{ image: 'x', config: { allow_internet: 'nope' } }, 'allow_internet'], [{ image: 'x', slug: 'A B' }, 'slug'],
    [{ image: 'x', slug: 'quota' }, 'slug'], [{ image: 'x', config: { ttl_action: 'explode', ttl: '1m' } }, 'ttl_action'],
    ['string body', 'body'],
  ];
  for (const [body, field] of cases) {
    assert.throws(() => parseCreateRequest(body), (e: unknown) => e instanceof ValidationFailed && e.field === field, JSON.stringify(body));
  }
  assert.throws(() => parseCreateRequest({ image: 'x', config: { ttl: 'soon' } }), DurationError);
});

test('env accepts the three shapes of the contract', () => {
  assert.deepEqual(normalizeEnv(['A=1', 'B=x=y']), ['A=1', 'B=x=y']);
  assert.deepEqual(normalizeEnv({ PORT: '3000', N: 2 }), ['PORT=3000', 'N=2']);
  assert.deepEqual(normalizeEnv([{ key: 'K', value: 'v' }]), ['K=v']);
  assert.throws(() => normalizeEnv(['NOEQUALS']), ValidationFailed);
  assert.throws(() => normalizeEnv({ 'bad-name': 'x' }), ValidationFailed);
});

test('update merges config and clears ttl with null', () => {
  const base = mergeConfig(defaultConfig(), { ttl: '10m', egress: ['10.88.0.5', 'example.org'] }, DEFAULT_BOUNDS);
  assert.equal(base.ttl_seconds, 600);
  const next = mergeConfig(base, { ttl: null, network_config: { allow_internet: false } }, DEFAULT_BOUNDS);
  assert.equal(next.ttl_seconds, null);
  assert.equal(next.allow_internet, false);
  assert.deepEqual(next.egress, ['10.88.0.5', 'example.org']);
});

test('slugs derive from names', () => {
  assert.equal(slugFromName('Production API'), 'production-api');
  assert.equal(slugFromName('!!'), null);
  assert.equal(slugFromName('quota'), null);
});

test('pids_limit, idle, outbound_ip and allow_ptrace are validated the same on create and on update', () => {
  const field = (fn: () => unknown) => {
    try { fn(); } catch (e) { return e instanceof ValidationFailed ? e.field : `not a validation error: ${String(e)}`; }
    return 'accepted';
  };
  const bad: Record<string, unknown>[] = [
    { pids_limit: 8 }, { pids_limit: 1_000_000 }, { pids_limit: 'lots' }, { pids_limit: 100.5 },
    { idle: { suspend_after: 5 } }, { idle: { suspend_after: '10m', stop_after: 60 } }, { idle: 'sometimes' },
    { outbound_ip: '203.0.113.999' }, { outbound_ip: 'eth0' }, { outbound_ip: 7 },
    { allow_ptrace: 'yes' },
  ];
  for (const config of bad) {
    const key = Object.keys(config)[0]!;
    const onCreate = field(() => parseCreateRequest({ image: 'debian-12', config }));
    const onUpdate = field(() => mergeConfig(defaultConfig(), config, DEFAULT_BOUNDS));
    assert.match(onCreate, new RegExp(`^${key}`), `create ${JSON.stringify(config)}`);
    assert.equal(onUpdate, onCreate, `update ${JSON.stringify(config)} is refused like create`);
  }
  const good = mergeConfig(defaultConfig(), { pids_limit: 256, idle: { suspend_after: '10m', stop_after: '2h' }, outbound_ip: '192.0.2.10', allow_ptrace: true }, DEFAULT_BOUNDS);
  assert.deepEqual([good.pids_limit, good.idle, good.outbound_ip, good.allow_ptrace], [256, { suspend_after: 600, stop_after: 7200 }, '192.0.2.10', true]);
  assert.equal(mergeConfig(good, { idle: null, outbound_ip: null }, DEFAULT_BOUNDS).idle, null);
  assert.equal((mergeConfig(defaultConfig(), { idle: { suspend_after: 30 } }, { ...DEFAULT_BOUNDS, minIdleSeconds: 30 }).idle as { suspend_after: number }).suspend_after, 30, 'the operator may lower the idle floor');
});
