/**
 * What code in a container workspace can ask of the host kernel (the
 * isolation issue's depth items), tried from inside real workspaces of a
 * real `hearth serve` through the official SDK: the seccomp allow-list
 * refuses ptrace and its kin unless the workspace was created with
 * `config.allow_ptrace: true`, and refuses io_uring, new user namespaces,
 * keyrings and eBPF whatever the config says.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Oblien, type Runtime } from 'oblien';
import { startHearth, type HearthInstance } from '../helpers/hearth.ts';
import { needsRoot } from '../helpers/root.ts';
import { runtimeFor } from '../helpers/runtime-sdk.ts';

let h: HearthInstance;
let client: Oblien;
let plain: Runtime;
let debug: Runtime;

/** Each probe calls one syscall through libc and prints `<return> <errno>`. x86-64 numbers. */
const PROBES: Record<string, string> = {
  ptrace: 'libc.ptrace(0, 0, None, None)', // PTRACE_TRACEME
  process_vm_readv: 'libc.syscall(310, os.getpid(), None, 0, None, 0, 0)',
  io_uring_setup: 'libc.syscall(425, 1, ctypes.create_string_buffer(120))',
  unshare_user: 'libc.unshare(0x10000000)', // CLONE_NEWUSER
  keyctl: 'libc.syscall(250, 0, 0, 0, 0, 0)',
  bpf: 'libc.syscall(321, 0, None, 0)',
  getpid: 'libc.getpid() * 0',
};

async function probe(rt: Runtime, name: string): Promise<{ ret: number; errno: number }> {
  const code = `import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = ${PROBES[name]}\nprint(r, ctypes.get_errno())`;
  const r = await rt.exec.run(['python3', '-c', code]) as unknown as { exit_code: number; stdout: string; stderr: string };
  assert.equal(r.exit_code, 0, `${name}: ${r.stderr}`);
  const [ret, errno] = r.stdout.trim().split(' ').map(Number);
  return { ret: ret!, errno: errno! };
}

before(async () => {
  if (needsRoot) return;
  h = await startHearth();
  client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  const [a, b] = await Promise.all([{}, { allow_ptrace: true }].map((extra) =>
    client.workspaces.create({ image: 'python-3.11', driver: 'container', config: { ttl: '15m', ...extra } } as never) as Promise<{ id: string }>));
  plain = (await runtimeFor(client, h, a!.id)).rt;
  debug = (await runtimeFor(client, h, b!.id)).rt;
});
after(async () => {
  if (h) await h.stop();
});

const skip = needsRoot;
const EPERM = 1;

test('the probe itself works: an allowed syscall returns with errno 0', { skip }, async () => {
  assert.deepEqual(await probe(plain, 'getpid'), { ret: 0, errno: 0 });
});

test('ptrace and process_vm_readv are refused (EPERM) in a workspace that did not ask for them', { skip }, async () => {
  for (const name of ['ptrace', 'process_vm_readv']) assert.deepEqual(await probe(plain, name), { ret: -1, errno: EPERM }, name);
});

test('config.allow_ptrace: true lets ptrace through, and nothing else', { skip }, async () => {
  assert.deepEqual(await probe(debug, 'ptrace'), { ret: 0, errno: 0 });
  for (const name of ['io_uring_setup', 'unshare_user', 'keyctl', 'bpf']) assert.deepEqual(await probe(debug, name), { ret: -1, errno: EPERM }, name);
});

test('io_uring, new user namespaces, keyrings and eBPF are refused', { skip }, async () => {
  for (const name of ['io_uring_setup', 'unshare_user', 'keyctl', 'bpf']) assert.deepEqual(await probe(plain, name), { ret: -1, errno: EPERM }, name);
});

test('allow_ptrace must be a boolean', { skip }, async () => {
  await assert.rejects(client.workspaces.create({ image: 'python-3.11', config: { allow_ptrace: 'yes please' } } as never), /allow_ptrace must be true or false/);
});
