/**
 * Dockerfile builds for real: RUN in runc on an overlay of the parent
 * layers, COPY/ADD from a context with .dockerignore, multi-stage COPY
 * --from, the content-keyed layer cache, and every refusal with its line.
 * Base: the catalog's debian-12 from the shared artifacts dir (built by
 * `hearth setup`); the build's own layers go to a scratch artifacts dir
 * removed at the end, so nothing is left on the host.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isRoot } from '../helpers/root.ts';
import { resolveImage } from '../../src/host/images/store.ts';
import { artifactPaths, type ArtifactPaths } from '../../src/host/images/paths.ts';
import { BuildRunFailed, buildImage, type BuildEvent, type BuildOptions } from '../../src/host/images/build/execute.ts';
import { runStep, runLimits } from '../../src/host/images/build/sandbox.ts';
import { DockerfileError } from '../../src/core/dockerfile/index.ts';
import { ContextTooLargeError } from '../../src/host/images/build/context.ts';
import type { ImageManifest } from '../../src/host/images/manifest.ts';

const skip = isRoot ? false : 'needs root: runc, overlay mounts (CI runs as root)';
let root = '';
let paths: ArtifactPaths;
let runcRoot = '';

before(async () => {
  if (!isRoot) return;
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-build-'));
  paths = artifactPaths(root);
  runcRoot = path.join(root, 'runc');
});

after(async () => {
  if (!root) return;
  const mounts = execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).split('\n').filter((t) => t.startsWith(root));
  const containers = await fs.readdir(runcRoot).catch(() => [] as string[]);
  execFileSync('rm', ['-rf', '--one-file-system', root]);
  assert.deepEqual(mounts, [], 'mounts left behind');
  assert.deepEqual(containers, [], 'runc containers left behind');
});

const DOCKERFILE = `# every instruction Hearth builds
ARG BASE=debian-12
FROM \${BASE} AS build
ARG GREETING=hello
ENV APP_HOME=/srv/app MODE="two words"
WORKDIR $APP_HOME
COPY --chown=1000:1000 src/ ./src/
ADD notes.txt /opt/
RUN echo "$GREETING from $MODE" > /greeting && useradd -u 1000 -m app && ls /srv/app/src > /listing && ip -o link | wc -l > /links
USER app
RUN id -u > /tmp/whoami && stat -c %u /srv/app/src/app.js >> /tmp/whoami
EXPOSE 8080 9090/udp
LABEL org.example.name="demo app"
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting"]

FROM debian-12
COPY --from=build /greeting /listing /links /out/
COPY --from=build /tmp/whoami /out/
COPY . /ctx/
USER 1000
WORKDIR /work
ENV FINAL=1
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /out/greeting; echo user=$(id -u) cwd=$(pwd) final=$FINAL"]
`;

async function context(files: Record<string, string>, extra?: (dir: string) => Promise<void>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(root, 'ctx-'));
  for (const [rel, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), text);
  }
  await extra?.(dir);
  return dir;
}

function options(contextDir: string, dockerfile: string, ref: string, events: BuildEvent[] = [], more: Partial<BuildOptions> = {}): BuildOptions {
  return {
    paths, contextDir, dockerfile, ref, resolveBase: (n) => resolveImage(n), onEvent: (e) => events.push(e),
    runcRoot, runLimits: { ...runLimits(), timeoutMs: 120_000 }, owner: { namespace: 'ns1', published: false }, ...more,
  };
}

/** A file of the image, read from its top-most layer that has it. */
async function readImageFile(m: ImageManifest, rel: string): Promise<string | undefined> {
  for (const l of m.layers) {
    const text = await fs.readFile(path.join(paths.root, l, rel), 'utf8').catch(() => undefined);
    if (text !== undefined) return text;
  }
  return undefined;
}

const steps = (events: BuildEvent[]) => events.filter((e): e is Extract<BuildEvent, { type: 'step' }> => e.type === 'step' && e.status !== 'running').map((e) => [e.line, e.status]);

let ctxDir = '';
let first: ImageManifest;

test('a Dockerfile using every instruction builds, and its image has what each step made', { skip }, async () => {
  ctxDir = await context({
    'src/app.js': 'console.log(1)\n', 'notes.txt': 'notes\n', 'secret.txt': 'do not ship\n', 'logs/a.log': 'x\n', '.dockerignore': 'secret.txt\nlogs\n',
  }, async (dir) => fs.symlink('/etc/shadow', path.join(dir, 'outside-link')));
  const events: BuildEvent[] = [];
  first = await buildImage(options(ctxDir, DOCKERFILE, 'hearth.local/ns-ns1/every:1', events));
  assert.equal(await readImageFile(first, 'out/greeting'), 'hello from two words\n', 'ARG and ENV reach RUN');
  assert.equal(await readImageFile(first, 'out/listing'), 'app.js\n');
  assert.equal(await readImageFile(first, 'out/links'), '1\n', 'RUN has loopback only: no network');
  assert.equal(await readImageFile(first, 'out/whoami'), '1000\n1000\n', 'USER applies to RUN; --chown to COPY');
  assert.equal(await readImageFile(first, 'ctx/src/app.js'), 'console.log(1)\n');
  assert.equal(await readImageFile(first, 'ctx/secret.txt'), undefined, '.dockerignore is honoured');
  assert.equal(await readImageFile(first, 'ctx/logs/a.log'), undefined);
  // A symlink in the context is copied as a symlink, never followed to the host's file.
  const link = first.layers.map((l) => path.join(paths.root, l, 'ctx/outside-link'));
  const targets = await Promise.all(link.map((l) => fs.readlink(l).catch(() => null)));
  assert.ok(targets.includes('/etc/shadow'));
  assert.deepEqual({ env: first.env.filter((e) => e.startsWith('FINAL')), user: first.user, wd: first.workingDir, ep: first.entrypoint, cmd: first.cmd }, {
    env: ['FINAL=1'], user: '1000', wd: '/work', ep: ['/bin/sh', '-c'], cmd: ['cat /out/greeting; echo user=$(id -u) cwd=$(pwd) final=$FINAL'],
  });
  assert.equal(first.source?.type, 'build');
  assert.deepEqual(first.build, { namespace: 'ns1', published: false, ref: 'hearth.local/ns-ns1/every:1' });
  // Every filesystem step ran (none cached on a cold build).
  assert.ok(steps(events).every(([, s]) => s === 'done'), JSON.stringify(steps(events)));

  // The image runs: its entrypoint + cmd in a real container on its layers.
  const lines: string[] = [];
  const upper = await fs.mkdtemp(path.join(paths.tmp, 'run-'));
  await fs.mkdir(path.join(upper, 'up'));
  const r = await runStep({
    id: `hb-test-${process.pid}`, argv: [...first.entrypoint!, ...first.cmd!], env: first.env, cwd: first.workingDir, uid: 1000, gid: 1000,
    lower: first.layers.map((l) => path.join(paths.root, l)), upper: path.join(upper, 'up'), scratch: upper, limits: runLimits(), runcRoot, onLine: (l) => lines.push(l),
  }).finally(() => undefined);
  await fs.rm(upper, { recursive: true, force: true });
  assert.equal(r.code, 0, lines.join('\n'));
  assert.deepEqual(lines, ['hello from two words', 'user=1000 cwd=/work final=1']);
});

test('a rebuild with nothing changed reuses every layer; a changed line rebuilds from there', { skip }, async () => {
  const again: BuildEvent[] = [];
  const second = await buildImage(options(ctxDir, DOCKERFILE, 'hearth.local/ns-ns1/every:1', again));
  assert.equal(second.id, first.id);
  assert.ok(steps(again).every(([, s]) => s === 'cached'), JSON.stringify(steps(again)));
  assert.equal(again.at(-1)?.type === 'done' && again.at(-1)!.type === 'done' ? (again.at(-1) as { cached: boolean }).cached : null, true);

  const changed = DOCKERFILE.replace('RUN id -u > /tmp/whoami', 'RUN id -un > /tmp/name && id -u > /tmp/whoami');
  const ev: BuildEvent[] = [];
  const third = await buildImage(options(ctxDir, changed, 'hearth.local/ns-ns1/every:2', ev));
  const s = steps(ev);
  const before11 = s.filter(([l]) => (l as number) < 11);
  const from11 = s.filter(([l]) => (l as number) >= 11 && (l as number) < 17);
  assert.ok(before11.length >= 4 && before11.every(([, st]) => st === 'cached'), JSON.stringify(s));
  assert.ok(from11.length >= 1 && from11.every(([, st]) => st === 'done'), JSON.stringify(s));
  assert.notEqual(third.id, first.id);
  // A changed file in the context rebuilds the COPY that reads it (and what follows), not the steps before.
  await fs.writeFile(path.join(ctxDir, 'src/app.js'), 'console.log(2)\n');
  const ev2: BuildEvent[] = [];
  await buildImage(options(ctxDir, DOCKERFILE, 'hearth.local/ns-ns1/every:3', ev2));
  const s2 = steps(ev2);
  assert.deepEqual(s2.find(([l]) => l === 6), [6, 'cached'], 'WORKDIR before the COPY stays cached');
  assert.deepEqual(s2.find(([l]) => l === 7), [7, 'done'], 'the COPY of the changed file rebuilds');
});

async function refusedBuild(files: Record<string, string>, dockerfile: string, check: (e: unknown) => boolean, extra?: (dir: string) => Promise<void>, more: Partial<BuildOptions> = {}): Promise<void> {
  const dir = await context(files, extra);
  const layersBefore = (await fs.readdir(paths.layers).catch(() => [] as string[])).sort();
  const imagesBefore = (await fs.readdir(paths.images).catch(() => [] as string[])).sort();
  await assert.rejects(buildImage(options(dir, dockerfile, `hearth.local/ns-ns1/bad-${path.basename(dir).toLowerCase()}:1`, [], more)), (e: unknown) => {
    assert.ok(check(e), `unexpected error: ${(e as Error).stack}`);
    return true;
  });
  // A failed build leaves nothing behind: no new layer, no record, no scratch.
  assert.deepEqual((await fs.readdir(paths.layers).catch(() => [] as string[])).sort(), layersBefore);
  assert.deepEqual((await fs.readdir(paths.images).catch(() => [] as string[])).sort(), imagesBefore);
  assert.deepEqual((await fs.readdir(paths.tmp).catch(() => [] as string[])).filter((n) => !n.startsWith('run-')), []);
}

const lineError = (line: number, re: RegExp) => (e: unknown) => e instanceof DockerfileError && e.line === line && re.test(e.message) && e.message.startsWith(`Dockerfile line ${line}: `);

test('each bad Dockerfile is refused with its line, and leaves nothing behind', { skip }, async () => {
  await refusedBuild({}, 'FROM debian-12\nRUN true\nFROBNICATE x\n', lineError(3, /unknown instruction FROBNICATE/));
  await refusedBuild({ 'a.txt': 'a' }, 'FROM debian-12\nCOPY a.txt /a\nCOPY missing.txt /m\n', lineError(3, /COPY source missing\.txt is not in the build context/));
  await refusedBuild({}, 'FROM no-such-image-here\n', lineError(1, /FROM no-such-image-here: unknown image/));
  // A failing RUN: its exit code and its last output; the layers made before it are removed too.
  await refusedBuild({ 'f': 'x' }, `FROM debian-12\nCOPY f /new-${Date.now()}\nRUN echo first; echo boom; exit 3\n`, (e) =>
    e instanceof BuildRunFailed && e.line === 3 && e.exitCode === 3 && /exit code 3; last output:\nfirst\nboom$/.test(e.message));
  await refusedBuild({ 'big.bin': 'x'.repeat(4096) }, 'FROM debian-12\n', (e) => e instanceof ContextTooLargeError && /more than 1024 bytes/.test(e.message),
    undefined, { contextLimits: { maxBytes: 1024, maxFiles: 100 } });
});

test('COPY cannot reach outside the context: ../, absolute paths, symlinks', { skip }, async () => {
  // `..` and absolute paths are read relative to the context root (Docker's rule): the host's files are never named.
  await refusedBuild({ 'x': '1' }, 'FROM debian-12\nCOPY ../../../../etc/passwd /p\n', lineError(2, /COPY source \.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd is not in the build context/));
  await refusedBuild({ 'x': '1' }, 'FROM debian-12\nCOPY /etc/passwd /p\n', lineError(2, /COPY source \/etc\/passwd is not in the build context/));
  await refusedBuild({ 'x': '1' }, 'FROM debian-12\nCOPY shadow-link /p\n', lineError(2, /symlink to \/etc\/shadow, outside the build context/),
    (dir) => fs.symlink('/etc/shadow', path.join(dir, 'shadow-link')));
  await refusedBuild({ 'x': '1' }, 'FROM debian-12\nCOPY etc-link/passwd /p\n', lineError(2, /goes through the symlink etc-link/),
    (dir) => fs.symlink('/etc', path.join(dir, 'etc-link')));
  await refusedBuild({ 'x': '1' }, 'FROM debian-12\nCOPY up-link /p\n', lineError(2, /symlink to \.\.\/\.\., outside the build context/),
    (dir) => fs.symlink('../..', path.join(dir, 'up-link')));
  // Two sources where the first plants a symlink into the destination and the second writes below it:
  // the symlink is replaced by the directory, nothing is written through it.
  await fs.mkdir(path.join(root, 'victim'), { recursive: true });
  const dir = await context({ 'b/x/passwd': 'pwned\n' }, async (d) => {
    await fs.mkdir(path.join(d, 'a'));
    await fs.symlink(path.join(root, 'victim'), path.join(d, 'a/x'));
  });
  const m = await buildImage(options(dir, 'FROM debian-12\nCOPY a/ b/ /dst/\n', 'hearth.local/ns-ns1/planted:1'));
  assert.equal(await readImageFile(m, 'dst/x/passwd'), 'pwned\n');
  assert.deepEqual(await fs.readdir(path.join(root, 'victim')), [], 'nothing written through the planted symlink');
});
