/**
 * Placement rules (src/core/placement.ts), one table per rule: exclusions
 * (draining, down, driver, each resource at its overcommit limit, a host a
 * create failed on), then the ranking (namespace spread before image
 * locality before load before name), and a generated check that whatever is
 * chosen never goes past any host's allowance.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_OVERCOMMIT, freeOf, isDown, loadAfter, place, type HostView, type PlacementRequest } from '../../src/core/placement.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const NOW = 1_800_000_000_000;

function host(name: string, over: Partial<HostView> = {}): HostView {
  return {
    name, status: 'active', heartbeatAt: NOW - 1000,
    capacity: { cpus: 8, memoryMb: 16_384, diskMb: 100_000 }, overcommit: DEFAULT_OVERCOMMIT,
    drivers: ['container', 'microvm'], images: [], allocated: { cpus: 0, memoryMb: 0, diskMb: 0 }, namespaces: {},
    ...over,
  };
}

const req = (over: Partial<PlacementRequest> = {}): PlacementRequest => ({
  cpus: 1, memoryMb: 1024, diskMb: 4096, driver: 'container', image: 'debian-12', namespace: 'acme', ...over,
});

test('exclusions: each host says why it cannot take the workspace', () => {
  const cases: [string, Partial<HostView>, Partial<PlacementRequest>, string | null][] = [
    ['fits', {}, {}, null],
    ['draining', { status: 'draining' }, {}, 'draining'],
    ['down: heartbeat older than 30 s', { heartbeatAt: NOW - 30_001 }, {}, 'down'],
    ['up: heartbeat exactly 30 s old', { heartbeatAt: NOW - 30_000 }, {}, null],
    ['no such driver', { drivers: ['container'] }, { driver: 'microvm' }, 'driver'],
    ['cpus at the overcommit limit (8 × 4 = 32)', { allocated: { cpus: 31, memoryMb: 0, diskMb: 0 } }, { cpus: 2 }, 'cpus'],
    ['cpus exactly filling the limit', { allocated: { cpus: 30, memoryMb: 0, diskMb: 0 } }, { cpus: 2 }, null],
    ['memory not overcommitted by default', { allocated: { cpus: 0, memoryMb: 16_000, diskMb: 0 } }, { memoryMb: 512 }, 'memory'],
    ['memory overcommitted 1.5×', { allocated: { cpus: 0, memoryMb: 16_000, diskMb: 0 }, overcommit: { ...DEFAULT_OVERCOMMIT, memory: 1.5 } }, { memoryMb: 512 }, null],
    ['disk full', { allocated: { cpus: 0, memoryMb: 0, diskMb: 99_000 } }, { diskMb: 4096 }, 'disk'],
    ['a host with no capacity at all', { capacity: { cpus: 0, memoryMb: 0, diskMb: 0 } }, {}, 'cpus'],
  ];
  for (const [what, h, r, expected] of cases) {
    const out = place(req(r), [host('h1', h)], { now: NOW });
    assert.equal(out.host === null ? out.reasons.h1 : null, expected, what);
    assert.equal(out.host, expected === null ? 'h1' : null, what);
  }
});

test('a host a create failed on is skipped, so a retry goes elsewhere', () => {
  const hosts = [host('a'), host('b')];
  assert.equal(place(req(), hosts, { now: NOW }).host, 'a');
  const retry = place(req(), hosts, { now: NOW, exclude: new Set(['a']) });
  assert.equal(retry.host, 'b');
  assert.deepEqual(retry.reasons, { a: 'excluded' });
  assert.equal(place(req(), hosts, { now: NOW, exclude: new Set(['a', 'b']) }).host, null);
});

test('ranking: namespace spread first, then image locality, then load, then name', () => {
  const cases: [string, HostView[], string][] = [
    ['equal hosts: by name', [host('b'), host('a')], 'a'],
    ['less loaded wins', [host('a', { allocated: { cpus: 16, memoryMb: 8192, diskMb: 0 } }), host('b')], 'b'],
    ['load is the largest fraction (memory here)', [host('a', { allocated: { cpus: 0, memoryMb: 12_000, diskMb: 0 } }), host('b', { allocated: { cpus: 20, memoryMb: 0, diskMb: 0 } })], 'b'],
    ['image present beats less load', [host('a', { allocated: { cpus: 16, memoryMb: 8192, diskMb: 0 }, images: ['debian-12'] }), host('b')], 'a'],
    ['spread beats image locality', [host('a', { images: ['debian-12'], namespaces: { acme: 2 } }), host('b', { namespaces: { acme: 1 } })], 'b'],
    ['another namespace does not count against spread', [host('a', { namespaces: { other: 9 }, images: ['debian-12'] }), host('b')], 'a'],
  ];
  for (const [what, hosts, expected] of cases) assert.equal(place(req(), hosts, { now: NOW }).host, expected, what);
  // Workspaces without a namespace spread among themselves.
  assert.equal(place(req({ namespace: null }), [host('a', { namespaces: { '': 3 } }), host('b', { namespaces: { '': 1 } })], { now: NOW }).host, 'b');
});

test('free resources and load', () => {
  const h = host('a', { allocated: { cpus: 10, memoryMb: 4096, diskMb: 200_000 } });
  assert.deepEqual(freeOf(h), { cpus: 22, memoryMb: 12_288, diskMb: 0 }, 'never below zero');
  assert.equal(loadAfter(host('a'), { cpus: 8, memoryMb: 0, diskMb: 0 }), 0.25);
  assert.equal(isDown(host('a', { heartbeatAt: NOW - 5000 }), NOW, 4000), true);
});

test('generated: many placements in a row never exceed any allowance, and fill hosts evenly', () => {
  const rnd = seededRandom(19);
  const hosts = [host('a'), host('b', { capacity: { cpus: 4, memoryMb: 8192, diskMb: 50_000 } }), host('c', { drivers: ['container'] })];
  let placed = 0;
  for (let i = 0; i < 500; i++) {
    const r = req({ cpus: 1 + Math.floor(rnd() * 4), memoryMb: 256 * (1 + Math.floor(rnd() * 8)), diskMb: 1024 * (1 + Math.floor(rnd() * 4)), namespace: `ns${Math.floor(rnd() * 5)}` });
    const out = place(r, hosts, { now: NOW });
    if (!out.host) {
      // Refused only when truly no host fits.
      for (const h of hosts) assert.ok(freeOf(h).cpus < r.cpus || freeOf(h).memoryMb < r.memoryMb || freeOf(h).diskMb < r.diskMb);
      continue;
    }
    placed++;
    const h = hosts.find((x) => x.name === out.host)!;
    h.allocated = { cpus: h.allocated.cpus + r.cpus, memoryMb: h.allocated.memoryMb + r.memoryMb, diskMb: h.allocated.diskMb + r.diskMb };
    h.namespaces = { ...h.namespaces, [r.namespace!]: (h.namespaces[r.namespace!] ?? 0) + 1 };
    for (const x of hosts) {
      assert.ok(x.allocated.cpus <= x.capacity.cpus * x.overcommit.cpu);
      assert.ok(x.allocated.memoryMb <= x.capacity.memoryMb * x.overcommit.memory);
      assert.ok(x.allocated.diskMb <= x.capacity.diskMb * x.overcommit.disk);
    }
  }
  assert.ok(placed > 10, `placed ${placed}`);
  assert.ok(hosts.every((h) => h.allocated.memoryMb > 0), 'every host took some');
});
