#!/usr/bin/env node
// The whole test suite, exactly as CI runs it (`npm test`):
//   1. install npm packages from the lock file when node_modules is missing;
//   2. type check and lint;
//   3. as root: `hearth setup` (idempotent; builds images and the agent drive,
//      CACHED after the first run) — outside any test network namespace,
//      since it fetches Debian packages;
//   4. run unit, integration and acceptance tests with node's test runner.
//      As root, the run happens inside a network namespace made for it, so
//      bridges, nftables tables, NAT and every workspace the tests create
//      live there and no test traffic can reach any other network.
// The last line is "N passed, N failed, N skipped".
//
// Env: HEARTH_TEST_FILES="a.test.ts b.test.ts" runs only those files;
//      HEARTH_TEST_SKIP_CHECK=1 skips type check and lint.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const isRoot = process.getuid?.() === 0;

function step(title) {
  process.stderr.write(`\n== ${title}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

if (!fs.existsSync(path.join(root, 'node_modules', '.package-lock.json'))) {
  step('npm ci (node_modules missing)');
  if (run('npm', ['ci', '--no-audit', '--no-fund']) !== 0) process.exit(1);
}

if (!process.env.HEARTH_TEST_SKIP_CHECK) {
  step('type check');
  if (run('npx', ['tsc', '--noEmit', '-p', '.']) !== 0) process.exit(1);
  step('lint');
  if (run('npx', ['eslint', 'src', 'test', 'bench']) !== 0) process.exit(1);
}

if (isRoot) {
  step('hearth setup (host packages, agent drive, images)');
  if (run(process.execPath, ['bin/hearth.mjs', 'setup']) !== 0) process.exit(1);
} else {
  process.stderr.write('\nnot root: integration and acceptance tests will skip (they need runc, bridges and nftables)\n');
}

function findTests(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
    .map((e) => path.relative(root, path.join(e.parentPath ?? e.path, e.name)))
    .sort();
}
const files = process.env.HEARTH_TEST_FILES
  ? process.env.HEARTH_TEST_FILES.split(/\s+/).filter(Boolean)
  : [...findTests('test/unit'), ...findTests('test/integration'), ...findTests('test/acceptance'), ...findTests('test/browser')];

const tapFile = path.join(os.tmpdir(), `hearth-test-${process.pid}.tap`);
const nodeArgs = [
  '--import', 'tsx', '--test', '--test-concurrency=1',
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  '--test-reporter=tap', `--test-reporter-destination=${tapFile}`,
  ...files,
];

step(`tests (${files.length} files)`);
let status;
if (isRoot) {
  const ns = `hth-test-${process.pid}`;
  run('ip', ['netns', 'add', ns]);
  run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  try {
    // nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup hierarchies runc needs.
    status = run('nsenter', [`--net=/run/netns/${ns}`, process.execPath, ...nodeArgs], { env: { ...process.env, HEARTH_TEST_NETNS: ns } });
  } finally {
    // Workspace namespaces are named netns of their own; the tests delete them.
    // Deleting the run's namespace takes its bridge, nft tables and veths with it.
    run('ip', ['netns', 'del', ns]);
  }
} else {
  status = run(process.execPath, nodeArgs);
}

let pass = 0, fail = 0, skip = 0;
try {
  const tap = fs.readFileSync(tapFile, 'utf8');
  const count = (k) => Number((tap.match(new RegExp(`^# ${k} (\\d+)$`, 'm')) ?? [])[1] ?? 0);
  pass = count('pass'); fail = count('fail') + count('cancelled'); skip = count('skipped') + count('todo');
  fs.rmSync(tapFile, { force: true });
} catch {
  fail = Math.max(fail, 1);
}
if (status !== 0 && fail === 0) fail = 1;
process.stdout.write(`\n${pass} passed, ${fail} failed, ${skip} skipped\n`);
process.exit(status === 0 && fail === 0 ? 0 : 1);
