import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImageBuildService, builtRef, parseTag, resolveBuiltName } from '../../src/control/image-builds.ts';
import { ImageNotFoundError } from '../../src/host/images/errors.ts';
import type { HostDriver } from '../../src/host/host-driver.ts';
import type { Principal } from '../../src/auth/principal.ts';

const owners = new Map<string, { namespace: string | null; published: boolean }>([
  ['hearth.local/ns-a/app:1', { namespace: 'a', published: false }],
  ['oci-aaaaaaaaaaaaaaaa', { namespace: 'a', published: false }],
  ['hearth.local/public/tool:latest', { namespace: null, published: true }],
]);
const host = { imageBuildOwner: async (n: string) => owners.get(n.trim().toLowerCase()) ?? null, buildImage: async () => { throw new Error('not here'); } } as unknown as HostDriver;
const ns = (namespace: string): Principal => ({ namespace, admin: false } as unknown as Principal);
const admin = { namespace: null, admin: true } as unknown as Principal;

test('a namespace uses its own built image by short name, and a published one', async () => {
  assert.equal(await resolveBuiltName(host, ns('a'), 'a', 'app:1'), 'hearth.local/ns-a/app:1');
  assert.equal(await resolveBuiltName(host, ns('b'), 'b', 'tool'), 'hearth.local/public/tool:latest');
  assert.equal(await resolveBuiltName(host, ns('b'), 'b', 'node-20'), 'node-20', 'anything else is left to the resolver');
});

test("another namespace's unpublished build is not found: not by short name, not by ref, not by id", async () => {
  assert.equal(await resolveBuiltName(host, ns('b'), 'b', 'app:1'), 'app:1', 'the short name names nothing of b');
  for (const name of ['hearth.local/ns-a/app:1', 'oci-aaaaaaaaaaaaaaaa', ' HEARTH.LOCAL/ns-a/app:1 ']) {
    await assert.rejects(resolveBuiltName(host, ns('b'), 'b', name), (e: unknown) => e instanceof ImageNotFoundError && /no such image/.test((e as Error).message), name);
  }
  assert.equal(await resolveBuiltName(host, admin, null, 'oci-aaaaaaaaaaaaaaaa'), 'oci-aaaaaaaaaaaaaaaa', 'the operator sees every build');
});

test('tags and refs: validated, and only the operator may publish or build for another namespace', () => {
  assert.deepEqual(parseTag('app'), { name: 'app', tag: 'latest' });
  assert.deepEqual(parseTag('team/app:1.2'), { name: 'team/app', tag: '1.2' });
  for (const bad of ['App:1', 'a b', 'app:', 'hearth.local/ns-x/app:1', '../x']) assert.throws(() => parseTag(bad), /image name|tag|Hearth adds it/, bad);
  assert.equal(builtRef('a', false, 'app', '1'), 'hearth.local/ns-a/app:1');
  assert.equal(builtRef(null, true, 'app', '1'), 'hearth.local/public/app:1');
  const svc = new ImageBuildService(host);
  assert.throws(() => svc.prepare(ns('a'), { tag: 'x:1', publish: true }), /only the operator may publish/);
  assert.throws(() => svc.prepare(ns('a'), { tag: 'x:1', namespace: 'b' }), /only for its own namespace/);
  assert.equal(svc.prepare(ns('a'), { tag: 'x:1' }).ref, 'hearth.local/ns-a/x:1');
  assert.equal(svc.prepare(admin, { tag: 'x:1', publish: true }).ref, 'hearth.local/public/x:1');
});

test("a build's FROM and COPY --from resolve names as a create by the same caller would", async () => {
  const seen: string[] = [];
  const capturing = {
    imageBuildOwner: host.imageBuildOwner,
    buildImage: async (req: { resolveName?: (n: string) => Promise<string> }) => {
      seen.push(await req.resolveName!('app:1'));
      await assert.rejects(req.resolveName!('hearth.local/ns-a/app:1'), ImageNotFoundError);
      await assert.rejects(req.resolveName!('snapshot:snap_1'), /operator builds only/);
      return { id: 'oci-bbbbbbbbbbbbbbbb', digest: 'sha256:b' };
    },
  } as unknown as HostDriver;
  const res = await new ImageBuildService(capturing).build(ns('b'), { tag: 'mine:1', contextDir: '/nonexistent', dockerfile: 'FROM app:1\n' });
  assert.deepEqual(seen, ['app:1'], "b's app:1 is not a's");
  assert.equal(res.ref, 'hearth.local/ns-b/mine:1');
});
