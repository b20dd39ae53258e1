/**
 * The agent's home, from inside: the official SDK running in a permanent
 * workspace, with a namespace token in its env, reaches Hearth at
 * api.hearth.internal and runtime.hearth.internal, creates a sandbox, runs
 * code in it through the data plane and deletes it. An air-gapped
 * workspace reaches neither name nor the listener behind them unless its
 * egress list names them, and nothing else of the host either. Real
 * `hearth serve`, real DNS forwarder, real nftables redirect.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import { Oblien, Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';

let h: HearthInstance;
let admin: Oblien;
let endpoints: { api: string; runtime: string; api_internal: string; runtime_internal: string };
/** The official SDK as one ESM file, so a workspace runs it without npm. */
let sdkBundle: string;

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  admin = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  endpoints = JSON.parse(await fs.readFile(path.join(h.dataDir, 'endpoints.json'), 'utf8'));
  const out = await build({
    stdin: { contents: "export { Oblien, Runtime } from 'oblien';", resolveDir: process.cwd() },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', write: false, logLevel: 'silent',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  sdkBundle = out.outputFiles[0]!.text;
});
after(async () => { if (h) await h.stop(); });

async function runtimeOf(id: string): Promise<Runtime> {
  const { token } = await admin.workspaces.apiAccess.enable(id) as { token: string };
  return new Runtime({ token, baseUrl: h.runtime });
}

/** What the agent in its home runs: the seed's pattern, through the SDK only. */
const AGENT = `
import { Oblien, Runtime } from './oblien.mjs';
const client = new Oblien({ token: process.env.AGENT_TOKEN, baseUrl: process.env.AGENT_API });
const sandbox = await client.workspaces.create({ image: 'debian-12', config: { ttl: '5m', allow_internet: false, cpus: 1, memory_mb: 256 } });
const { token } = await client.workspaces.apiAccess.enable(sandbox.id);
const rt = new Runtime({ token, baseUrl: process.env.AGENT_RUNTIME });
const r = await rt.exec.run(['sh', '-c', 'echo $((6 * 7)) from $(hostname)']);
await client.workspaces.delete(sandbox.id);
const fs = await import('node:fs');
fs.writeFileSync('/app/result.json', JSON.stringify({ id: sandbox.id, namespace: sandbox.namespace, stdout: r.stdout, exit: r.exit_code }));
`;

/** A TCP connect from inside the workspace: 'open', or why not (no name, refused, timed out). */
const PROBE = `
const [host, port] = process.argv.slice(2);
const net = await import('node:net');
const dns = await import('node:dns/promises');
let addr = host;
if (!/^\\d/.test(host)) {
  try { addr = (await dns.lookup(host, { family: 4 })).address; } catch (e) { console.log('no-name'); process.exit(0); }
}
const s = net.connect({ host: addr, port: Number(port) });
s.setTimeout(1500, () => { console.log('timeout'); process.exit(0); });
s.on('connect', () => { console.log('open ' + addr); process.exit(0); });
s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
`;

test('endpoints.json names the internal addresses', { skip: needsRoot }, () => {
  assert.equal(endpoints.api_internal, 'http://api.hearth.internal');
  assert.equal(endpoints.runtime_internal, 'http://runtime.hearth.internal');
});

test('the official SDK inside a permanent workspace creates a sandbox, runs code in it and deletes it', { skip: needsRoot }, async () => {
  await admin.namespaces.create({ name: 'Agents', slug: 'agents' } as never);
  const t = await admin.tokens.create({ scope: 'namespace', namespace: 'agents', ttl: 3600, permissions: { create: true, destroy: true, runtime: true, manage: true } } as never) as { token: string };
  const home = await admin.workspaces.create({
    image: 'node-20', namespace: 'agents', mode: 'permanent',
    config: {
      cpus: 1, memory_mb: 512, env: { AGENT_TOKEN: t.token, AGENT_API: endpoints.api_internal, AGENT_RUNTIME: endpoints.runtime_internal },
      // The agent is the home's workload (the workspace env is its env); it starts once its code is in place.
      workloads: [{ name: 'agent', cmd: ['sh', '-c', 'while [ ! -f /app/go ]; do sleep 0.1; done; exec node /app/agent.mjs 2>/app/agent.err'] }],
    },
  } as never) as Record<string, any>;
  const rt = await runtimeOf(home.id);
  await rt.files.write({ fullPath: '/app/oblien.mjs', content: sdkBundle });
  await rt.files.write({ fullPath: '/app/agent.mjs', content: AGENT });
  await rt.files.write({ fullPath: '/app/go', content: '' });
  const out = await waitUntil('the agent to finish', async () => {
    const err = await rt.files.read({ filePath: '/app/agent.err' }).then((f) => f.content).catch(() => '');
    if (err) throw new Error(`the agent failed:\n${err}`);
    return rt.files.read({ filePath: '/app/result.json' }).then((f) => JSON.parse(String(f.content))).catch(() => null);
  }, 60_000, 200).catch(async (e) => {
    const seen = await rt.exec.run(['sh', '-c', 'ls -la /app; ps -ef; cat /app/agent.err']);
    throw new Error(`${(e as Error).message}\n${seen.stdout}\n${h.logs.join("").split("\n").filter((l) => /workload/i.test(l)).join("\n")}`);
  });
  assert.equal(out.exit, 0);
  assert.match(out.stdout, /^42 from /, 'the sandbox ran the code');
  assert.equal(out.namespace, 'agents', 'the sandbox is in the token\'s namespace');
  await assert.rejects(admin.workspaces.get(out.id), 'the agent deleted its sandbox');
  // Requests from inside are authenticated like any other.
  const anon = await rt.exec.run(['node', '-e', `fetch('${endpoints.api_internal}/workspace').then(r => console.log(r.status))`]);
  assert.equal(anon.stdout!.trim(), '401');
});

test('an air-gapped workspace reaches neither address; one whose egress names them reaches only them', { skip: needsRoot }, async () => {
  const gapped = await admin.workspaces.create({ image: 'node-20', config: { ttl: '10m', allow_internet: false, cpus: 1, memory_mb: 256 } } as never) as Record<string, any>;
  const listed = await admin.workspaces.create({
    image: 'node-20', config: { ttl: '10m', allow_internet: false, egress: ['api.hearth.internal', 'runtime.hearth.internal'], cpus: 1, memory_mb: 256 },
  } as never) as Record<string, any>;
  const gw = gapped.info.internal_ip.replace(/\.\d+$/, '.1');
  const probe = async (rt: Runtime, host: string, port: number) => {
    await rt.files.write({ fullPath: '/tmp/probe.mjs', content: PROBE });
    return (await rt.exec.run(['node', '/tmp/probe.mjs', host, String(port)])).stdout!.trim();
  };
  const g = await runtimeOf(gapped.id);
  assert.equal(await probe(g, 'api.hearth.internal', 80), 'no-name', 'Hearth\'s DNS does not name it to an air-gapped workspace');
  assert.equal(await probe(g, 'runtime.hearth.internal', 80), 'no-name');
  assert.equal(await probe(g, gw, 80), 'timeout', 'the gateway\'s port 80 is closed to it');
  const l = await runtimeOf(listed.id);
  assert.equal(await probe(l, 'api.hearth.internal', 80), `open ${gw}`);
  assert.equal(await probe(l, 'runtime.hearth.internal', 80), `open ${gw}`);
  const health = await l.exec.run(['node', '-e', "fetch('http://runtime.hearth.internal/health').then(async r => console.log(r.status)).catch(e => console.log(String(e)))"]);
  assert.match(health.stdout!.trim(), /^\d{3}$/, 'an HTTP answer from the data plane');
  // Nothing else of the host: not hearthd's loopback listeners' ports on the gateway, not SSH, not another workspace's agent.
  const apiPort = new URL(h.api).port;
  assert.equal(await probe(l, gw, Number(apiPort)), 'timeout', 'hearthd\'s API port is not reachable on the gateway');
  assert.equal(await probe(l, gw, 22), 'timeout');
  assert.equal(await probe(l, gapped.info.internal_ip, 9990), 'timeout', 'no workspace reaches another\'s agent');
});
