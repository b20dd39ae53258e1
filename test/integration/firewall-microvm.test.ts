/**
 * The same firewall for microVM workspaces: their taps are ports of the same
 * bridge, named from the slot like veths, so the same rules must hold. A
 * compact subset of firewall-matrix.test.ts (VMs boot under TCG here, so two
 * of them): default deny, ingress applied live, the agent port, forged
 * source address and MAC, host ports, Hearth's resolver.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';

const PROBE = readFileSync(new URL('../helpers/net-probe.py', import.meta.url), 'utf8');
let h: HearthInstance | undefined;
let client: Oblien;
const vm: { id: string; ip: string; rt: Runtime }[] = [];
let skip: string | false = needsRoot;

async function run(i: number, argv: string[]): Promise<string> {
  const r = await vm[i]!.rt.exec.run(argv, { timeoutSeconds: 30 } as never);
  assert.equal(r.exit_code, 0, r.stderr);
  return r.stdout ?? '';
}
const probe = async (i: number, checks: unknown[]) => JSON.parse(await run(i, ['python3', '/tmp/probe.py', 'multi', JSON.stringify(checks)])) as string[];

before(async () => {
  if (skip) return;
  try {
    h = await startHearth({ driver: 'microvm' });
  } catch (e) {
    skip = `microvm driver unavailable here: ${(e as Error).message.split('\n')[0]}`;
    return;
  }
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  const made = await Promise.all([0, 1].map(() => client.workspaces.create({ image: 'python-3.11', config: {} } as never))) as unknown as { id: string; info: { internal_ip: string } }[];
  for (const w of made) {
    await client.workspaces.waitUntilReady(w.id, { timeoutMs: 180_000 } as never);
    const { token } = await client.workspaces.apiAccess.enable(w.id) as { token: string };
    vm.push({ id: w.id, ip: w.info.internal_ip, rt: new Runtime({ token, baseUrl: h.runtime }) });
  }
  for (const i of [0, 1]) {
    await vm[i]!.rt.files.write({ fullPath: '/tmp/probe.py', content: PROBE });
    await run(i, ['python3', '/tmp/probe.py', 'serve', '8080', '8081', '/tmp/udp.log']);
  }
});
after(async () => { if (h) await h.stop(); });

test('microvm: the isolation matrix holds for taps exactly as for veths', { skip: needsRoot }, async (t) => {
  if (skip) { t.skip(skip); return; }
  const [a, b] = [vm[0]!, vm[1]!];
  assert.deepEqual(await probe(0, [['tcp', b.ip, 8080], ['udp', b.ip, 8081, 'x']]), ['timeout', 'timeout'], 'default deny');
  await client.workspaces.network.update(b.id, { ingress: [a.ip] } as never);
  assert.deepEqual(await probe(0, [['tcp', b.ip, 8080], ['udp', b.ip, 8081, 'legit'], ['tcp', b.ip, 9990]]), [`ok:${a.ip}`, `ok:${a.ip}`, 'timeout'], 'ingress live; never the agent');
  assert.deepEqual(await probe(1, [['tcp', a.ip, 8080]]), ['timeout'], 'one way');

  // Forged source address (B accepts it: only anti-spoofing can stop it) and forged MAC. The
  // address A forges is a third workspace's: only a live workspace may be named in ingress.
  const c = await client.workspaces.create({ image: 'python-3.11', driver: 'container', config: { ttl: '10m' } } as never) as unknown as { id: string; info: { internal_ip: string } };
  const other = c.info.internal_ip;
  await client.workspaces.network.update(b.id, { ingress: [a.ip, other] } as never);
  await run(0, ['python3', '/tmp/probe.py', 'spoofip', other, b.ip, '8081', 'forged-ip']);
  const gwMac = ['02', '48', ...a.ip.split('.').map((p, i) => (i === 3 ? 1 : Number(p)).toString(16).padStart(2, '0'))].join(':');
  await run(0, ['python3', '/tmp/probe.py', 'spoofmac', '02:48:de:ad:be:ef', gwMac, a.ip, b.ip, '8081', 'forged-mac']);
  await new Promise((r) => setTimeout(r, 500));
  const log = await run(1, ['cat', '/tmp/udp.log']);
  assert.match(log, /legit /);
  assert.doesNotMatch(log, /forged-/);

  const gw = a.ip.replace(/\.\d+$/, '.1');
  assert.deepEqual(await probe(0, [['tcp', gw, Number(new URL(h!.api).port)], ['tcp', gw, 22]]), ['timeout', 'timeout'], 'host ports');
  assert.match(await run(0, ['cat', '/etc/resolv.conf']), new RegExp(`nameserver ${gw.replace(/\./g, '\\.')}`), 'Hearth\'s forwarder is the resolver');
});
