/**
 * One acceptance suite for every isolation driver (Hono's
 * common.case.test.ts): the official `oblien` SDK, unmodified, against a
 * real `hearth serve --driver <d>`. Each driver passes a skip list whose
 * entries state their reason; a skip naming a case that does not exist
 * fails the run, so the list cannot rot.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Oblien, Runtime, NotFoundError, ValidationError } from 'oblien';
import { connect } from 'hearth/sdk';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { waitUntil } from '../helpers/wait.ts';
import { leftovers } from '../helpers/leaks.ts';

type Case = (ctx: { h: HearthInstance; client: Oblien; driver: string }) => Promise<void>;

async function runtimeFor(client: Oblien, h: HearthInstance, id: string): Promise<Runtime> {
  const { token } = await client.workspaces.apiAccess.enable(id) as { token: string };
  return new Runtime({ token, baseUrl: h.runtime });
}

/**
 * Create, then (for slow drivers) wait for the workspace the SDK itself would poll for.
 * A workspace that fails is deleted before the error is rethrown: the failure is this
 * case's, and the leak checks of the cases after it must not inherit its leftovers.
 */
async function createReady(client: Oblien, body: Record<string, unknown>): Promise<Record<string, any>> {
  let id: string | undefined;
  try {
    const ws = await client.workspaces.create(body as never) as Record<string, any>;
    id = ws.id;
    if (ws.ready) return ws;
    return await waitUntil(`workspace ${ws.id} to be ready`, async () => {
      const got = await client.workspaces.get(ws.id) as Record<string, any>;
      if (got.status === 'failed') throw new Error(`workspace failed: ${JSON.stringify(got.provision_error ?? got)}`);
      return got.ready ? got : null;
    }, 120_000, 250);
  } catch (e) {
    id ??= (e as { details?: { workspace_id?: string } }).details?.workspace_id;
    if (id) await client.workspaces.delete(id).catch(() => undefined);
    throw e;
  }
}

const CASES: Record<string, Case> = {
  async 'throwaway sandbox: create with TTL, write a file, run it with node, delete'({ h, client }) {
    const sandbox = await createReady(client, { image: 'node-20', config: { ttl: '5m', remove_on_exit: true, allow_internet: false } });
    assert.equal(sandbox.mode, 'temporary');
    assert.match(sandbox.info.internal_ip, /^10\.\d+\.\d+\.\d+$/);
    const rt = await runtimeFor(client, h, sandbox.id);
    const code = 'const os = require("os"); console.log(JSON.stringify({ sum: 6 * 7, v: process.version }));';
    const w = await rt.files.write({ fullPath: '/app/index.js', content: code });
    assert.equal(w.success, true);
    const result = await rt.exec.run(['node', '/app/index.js']);
    assert.equal(result.exit_code, 0, result.stderr);
    const out = JSON.parse(result.stdout!);
    assert.equal(out.sum, 42);
    assert.match(out.v, /^v20\./);
    assert.equal((await rt.files.read({ filePath: '/app/index.js' })).content, code);
    const failing = await rt.exec.run(['sh', '-c', 'echo oops >&2; exit 3']);
    assert.equal(failing.exit_code, 3);
    assert.equal(failing.stderr, 'oops\n');
    await client.workspaces.delete(sandbox.id);
    await assert.rejects(client.workspaces.get(sandbox.id), NotFoundError);
    await assert.rejects(rt.exec.run(['true']), /revoked|not found|deleted/i, 'a deleted workspace\'s token stops working');
  },

  async 'requested size is visible to the workspace as its own hardware'({ h, client }) {
    const ws = await createReady(client, { name: 'sized-vm', image: 'debian-12', mode: 'permanent', config: { cpus: 2, memory_mb: 1024 } });
    const rt = await runtimeFor(client, h, ws.id);
    const r = await rt.exec.run(['sh', '-c', 'nproc; grep MemTotal /proc/meminfo; hostname']);
    const [cpus, mem, hostname] = r.stdout!.trim().split('\n');
    assert.equal(Number(cpus), 2);
    const kb = Number(/(\d+)/.exec(mem!)![1]);
    assert.ok(kb > 800 * 1024 && kb <= 1024 * 1024, `MemTotal ${kb} kB is the VM's 1024 MiB less the kernel's share`);
    assert.equal(hostname, 'sized-vm');
    await client.workspaces.delete(ws.id);
  },

  async 'isolation: own kernel, own memory, host processes invisible'({ h, client }) {
    const ws = await createReady(client, { image: 'debian-12', config: { ttl: '5m', memory_mb: 512 } });
    const rt = await runtimeFor(client, h, ws.id);
    const r = await rt.exec.run(['sh', '-c', 'uname -r; grep MemTotal /proc/meminfo; for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done']);
    const [kernel, mem, ...procs] = r.stdout!.split('\n');
    assert.notEqual(kernel, execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(), 'the guest runs its own kernel');
    assert.match(kernel!, /cloud-amd64$/);
    const kb = Number(/(\d+)/.exec(mem!)![1]);
    const hostKb = Number(/MemTotal:\s+(\d+)/.exec(execFileSync('cat', ['/proc/meminfo'], { encoding: 'utf8' }))![1]);
    assert.ok(kb <= 512 * 1024 && kb < hostKb / 4, `guest MemTotal ${kb} kB is the VM's, not the host's ${hostKb} kB`);
    const joined = procs.join('\n');
    assert.doesNotMatch(joined, /hearth\.mjs|qemu-system|runc/, 'no host process is visible inside');
    assert.ok(procs.filter((p) => p.trim()).length < 30, `a fresh VM runs a handful of processes, saw ${procs.length}`);
    await client.workspaces.delete(ws.id);
  },

  async 'bad input gets the contract errors and creates nothing'({ h, client }) {
    const before = (await client.workspaces.list({ limit: 500 } as never) as Record<string, any>).total;
    await assert.rejects(client.workspaces.create({ image: 'no-such-image-9' } as never), (e: any) => e instanceof ValidationError && /no-such-image-9/.test(e.message));
    await assert.rejects(client.workspaces.create({ image: 'node-20', config: { ttl: 'forever' } } as never), ValidationError);
    assert.equal((await client.workspaces.list({ limit: 500 } as never) as Record<string, any>).total, before);
    assert.deepEqual(await leftovers({ dataDir: h.dataDir, linkPrefix: h.linkPrefix, bridge: h.bridge }), []);
  },

  async 'a TTL workspace disappears on time and leaves nothing on the host'({ h, client }) {
    const ws = await createReady(client, { image: 'debian-12', config: { ttl: '3s', remove_on_exit: true } });
    await waitUntil('the TTL workspace to be deleted', async () => {
      try {
        await client.workspaces.get(ws.id);
        return false;
      } catch (e) {
        if (e instanceof NotFoundError) return true;
        throw e;
      }
    }, 30_000, 200);
    assert.deepEqual(await leftovers({ dataDir: h.dataDir, linkPrefix: h.linkPrefix, bridge: h.bridge }), []);
    const qemus = execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`hearth-${ws.id},`));
    assert.deepEqual(qemus, [], 'no QEMU of the deleted workspace is left');
  },

  async 'a workload and its logs outlive a workspace stop/start'({ client }) {
    const ws = await createReady(client, { image: 'debian-12', mode: 'permanent' });
    const w = await client.workspaces.workloads.create(ws.id, { name: 'keeper', cmd: ['sh', '-c', 'echo started-$$; while true; do sleep 1; done'], restart_policy: 'always' }) as Record<string, any>;
    const first = await waitUntil('the workload to run', async () => {
      const s = await client.workspaces.workloads.get(ws.id, w.id) as Record<string, any>;
      return s.status === 'running' ? s : null;
    }, 30_000, 200);
    // Running is not yet written: under TCG the shell's first line can come well after the start.
    await waitUntil('the first run to write its line', async () => (/started-\d+/.test(JSON.stringify(await client.workspaces.workloads.logs(ws.id, w.id))) ? true : null), 30_000, 200);
    await client.workspaces.stop(ws.id);
    await client.workspaces.start(ws.id);
    await waitUntil('the workspace to be running again', async () => ((await client.workspaces.get(ws.id) as Record<string, any>).ready ? true : null), 120_000, 250);
    const back = await waitUntil('the always workload to be back', async () => {
      const s = await client.workspaces.workloads.get(ws.id, w.id).catch(() => null) as Record<string, any> | null;
      return s?.status === 'running' ? s : null;
    }, 60_000, 250);
    assert.equal(back.name, 'keeper', 'the definition survived the restart');
    assert.ok(Date.parse(back.started_at) > Date.parse(first.started_at), 'a new process of the same workload');
    const logs = await client.workspaces.workloads.logs(ws.id, w.id) as Record<string, any>;
    const lines = JSON.stringify(logs);
    assert.ok((lines.match(/started-\d+/g) ?? []).length >= 2, `the log keeps the run before the restart and the one after: ${lines.slice(0, 400)}`);
    await client.workspaces.delete(ws.id);
  },

  async 'hearth/sdk: seed code using client.workspaces.runtime(id) works unchanged'({ h }) {
    const c = connect({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
    const ws = await createReady(c as unknown as Oblien, { image: 'debian-12', config: { ttl: '5m' } });
    const rt = await c.workspaces.runtime(ws.id);
    assert.equal(await rt.health(), true);
    const r = await rt.exec.run(['cat', '/etc/debian_version']);
    assert.match(r.stdout!, /^12\./);
    await c.workspaces.delete(ws.id);
  },
};

/** Register the suite for one driver. `skip` maps case name → reason. */
export function driverSuite(driver: 'container' | 'microvm', skip: Record<string, string>, opts: { extraArgs?: string[] } = {}): void {
  for (const name of Object.keys(skip)) {
    if (!(name in CASES)) throw new Error(`skip list of ${driver} names a case that does not exist: ${JSON.stringify(name)}`);
  }
  describe(driver, () => {
  let h: HearthInstance | undefined;
  let client: Oblien;
  let unavailable: string | false = false;
  before(async () => {
    if (needsRoot) return;
    try {
      h = await startHearth({ driver, ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}) });
    } catch (e) {
      if (/cannot run on this host/.test((e as Error).message)) {
        unavailable = `${driver} cannot run on this host: run hearth setup (${(e as Error).message.split('\n')[0]})`;
        return;
      }
      throw e;
    }
    client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  });
  after(async () => { if (h) await h.stop(); });
  for (const [name, fn] of Object.entries(CASES)) {
    const reason = skip[name];
    test(`${driver}: ${name}`, { skip: needsRoot || (reason ? `${driver}: ${reason}` : false) }, async (t) => {
      if (unavailable) return t.skip(unavailable);
      await fn({ h: h!, client, driver });
    });
  }
  });
}
