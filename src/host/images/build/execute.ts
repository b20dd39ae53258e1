/**
 * Execute a Dockerfile build plan (src/core/dockerfile/) into the artifacts
 * dir: one layer per filesystem step (RUN, COPY, ADD, WORKDIR), each at
 * `layers/build-<key16>/rootfs`, keyed by its parent's key and everything
 * the step reads (its text after substitution, its env/user/cwd for RUN, the
 * bytes of the files it copies). An unchanged step is a cache hit (CACHED);
 * a changed line changes its key and so every key after it. Config steps
 * (ENV, LABEL, …) make no layer: they change the image config and the keys
 * of the RUN steps that see them.
 *
 * The result is an image record like a pulled image's (kind "oci", source
 * "build") plus a ref `hearth.local/<scope>/<name>:<tag>`; everything the
 * resolver, gc, the drivers and the catalog know about pulled images holds.
 * A failed build removes every layer it made and writes no record.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  DockerfileError, SCRATCH_CONFIG, parseDockerfile, planStage, splitStages, type BuildStep, type ImageConfig, type Stage,
} from '../../../core/dockerfile/index.ts';
import { ValidationFailed } from '../../../core/errors.ts';
import { buildOnce, exists } from '../atomic.ts';
import { hashKey, type KeyValue } from '../hash.ts';
import type { ImageManifest } from '../manifest.ts';
import { shortKey, type ArtifactPaths } from '../paths.ts';
import { writeImageRecord, writeRef } from '../oci/records.ts';
import type { ResolvedImage } from '../types.ts';
import { resolveInRoot } from '../rootfs.ts';
import { hashEntries, readContext, selectSource, treeOf, type BuildContext, type ContextLimits } from './context.ts';
import { copyTree, type Owner } from './copy.ts';
import { runStep, type RunLimits } from './sandbox.ts';

/** Bump when what a step produces for the same inputs changes. */
export const BUILD_VERSION = 1;

const BUILD_EMPTY_KEY = hashKey({ v: BUILD_VERSION, kind: 'empty' });

export type BuildEvent =
  | { type: 'step'; stage: number; line: number; source: string; status: 'cached' | 'running' | 'done'; seconds?: number }
  | { type: 'log'; line: number; text: string }
  | { type: 'done'; image: string; ref: string; digest: string; cached: boolean; seconds: number; layers: number };

export class BuildRunFailed extends ValidationFailed {
  constructor(readonly line: number, readonly exitCode: number, readonly tail: string[], timedOut: boolean) {
    super('dockerfile', `Dockerfile line ${line}: RUN ${timedOut ? 'timed out and was killed' : `failed with exit code ${exitCode}`}${tail.length ? `; last output:\n${tail.join('\n')}` : ''}`,
      timedOut ? 'raise HEARTH_BUILD_RUN_TIMEOUT_MS or make the step shorter' : 'RUN steps have no network: bring files in with COPY/ADD or start FROM an image that has them');
    this.name = 'BuildRunFailed';
  }
}

export interface BuildOptions {
  paths: ArtifactPaths;
  contextDir: string;
  dockerfile: string;
  /** `hearth.local/<scope>/<name>:<tag>`: who may use it is the caller's business (control/image-builds.ts). */
  ref: string;
  buildArgs?: Record<string, string>;
  /** Resolve a FROM or COPY --from image name (catalog, pulled, built, snapshot). */
  resolveBase: (name: string) => Promise<ResolvedImage>;
  onEvent?: (e: BuildEvent) => void;
  runcRoot: string;
  runLimits: RunLimits;
  contextLimits?: ContextLimits;
  /** Recorded in the image: the namespace that built it and whether it is published to all. */
  owner: { namespace: string | null; published: boolean };
}

interface StageState {
  /** Layer rootfs dirs, top first. */
  layers: string[];
  keys: string[];
  key: string;
  config: ImageConfig;
  versions: Record<string, string>;
}

function baseConfig(img: ResolvedImage): ImageConfig {
  return {
    env: [...img.env], workingDir: img.workingDir || '/', user: img.user || 'root', entrypoint: img.entrypoint ?? null, cmd: img.cmd ?? null,
    exposedPorts: [], labels: {},
  };
}

/** uid:gid of `user[:group]` in the tree's /etc/passwd and /etc/group (top layer that has them). */
async function resolveUser(layers: string[], spec: string, line: number): Promise<Owner> {
  const [u, g] = spec.split(':') as [string, string | undefined];
  const read = async (file: string) => {
    for (const l of layers) {
      const text = await fs.readFile(await resolveInRoot(l, file).catch(() => path.join(l, file)), 'utf8').catch(() => undefined);
      if (text !== undefined) return text;
    }
    return '';
  };
  const lookup = (text: string, name: string) => text.split('\n').map((x) => x.split(':')).find((f) => f[0] === name);
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) uid = Number(u);
  else {
    const f = lookup(await read('etc/passwd'), u);
    if (!f) throw new DockerfileError(line, `user ${u} is not in the image's /etc/passwd`);
    uid = Number(f[2]);
    gid = Number(f[3]);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const f = lookup(await read('etc/group'), g);
      if (!f) throw new DockerfileError(line, `group ${g} is not in the image's /etc/group`);
      gid = Number(f[2]);
    }
  }
  return { uid, gid: gid ?? uid };
}

/** An empty layer: the lower dir of a scratch stage's first RUN (overlay needs one). */
async function emptyLayer(paths: ArtifactPaths): Promise<string> {
  const built = await buildOnce(path.join(paths.layers, 'build-empty'), paths.tmp, async (tmp) => {
    await fs.mkdir(path.join(tmp, 'rootfs'), { mode: 0o755 });
  });
  return path.join(built.dir, 'rootfs');
}

/** Build. Returns the image record; throws DockerfileError / BuildRunFailed / ValidationFailed naming what is wrong. */
export async function buildImage(o: BuildOptions): Promise<ImageManifest> {
  const started = Date.now();
  const emit = o.onEvent ?? (() => undefined);
  const created: string[] = [];
  const ctx: BuildContext = await readContext(o.contextDir, o.contextLimits);
  const { stages, globalArgs } = splitStages(parseDockerfile(o.dockerfile), o.buildArgs ?? {});
  const done: StageState[] = [];
  try {
    let last: StageState | undefined;
    let allCached = true;
    for (const stage of stages) {
      const state = await stageBase(o, stage, done);
      const plan = planStage(stage, state.config, { buildArgs: o.buildArgs, globalArgs, stages });
      for (let i = 0; i < plan.steps.length; i++) {
        const step = plan.steps[i]!;
        state.config = plan.configs[i]!;
        if (step.kind === 'config') continue;
        const t0 = Date.now();
        const key = await stepKey(o, ctx, step, state, done);
        const dir = path.join(o.paths.layers, `build-${shortKey(key)}`);
        if (await exists(path.join(dir, 'layer.json'))) {
          emit({ type: 'step', stage: stage.index, line: step.line, source: step.source, status: 'cached' });
        } else {
          allCached = false;
          emit({ type: 'step', stage: stage.index, line: step.line, source: step.source, status: 'running' });
          const built = await buildOnce(dir, o.paths.tmp, async (tmp) => {
            const rootfs = path.join(tmp, 'rootfs');
            await fs.mkdir(rootfs, { mode: 0o755 });
            await execStep(o, ctx, step, state, done, rootfs, tmp);
            await fs.rm(path.join(tmp, 'bundle'), { recursive: true, force: true });
            await fs.writeFile(path.join(tmp, 'layer.json'), `${JSON.stringify({ schema: 1, name: `build-${shortKey(key)}`, key, step: step.source, line: step.line, built_at: new Date().toISOString() }, null, 2)}\n`);
          });
          if (!built.cached) created.push(built.dir);
          emit({ type: 'step', stage: stage.index, line: step.line, source: step.source, status: 'done', seconds: (Date.now() - t0) / 1000 });
        }
        state.layers = [path.join(dir, 'rootfs'), ...state.layers];
        state.keys = [key, ...state.keys];
        state.key = key;
      }
      state.config = plan.config;
      done.push(state);
      last = state;
    }
    const final = last!;
    if (final.layers.length === 0) final.layers = [await emptyLayer(o.paths)];
    const record = await writeRecord(o, final);
    emit({ type: 'done', image: record.id, ref: o.ref, digest: record.digest, cached: allCached, seconds: (Date.now() - started) / 1000, layers: record.layers.length });
    return record;
  } catch (e) {
    for (const dir of created) await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

async function stageBase(o: BuildOptions, stage: Stage, done: StageState[]): Promise<StageState> {
  const b = stage.base;
  if (b.kind === 'scratch') return { layers: [], keys: [], key: 'scratch', config: { ...SCRATCH_CONFIG, env: [...SCRATCH_CONFIG.env] }, versions: {} };
  if (b.kind === 'stage') {
    const s = done[b.index]!;
    return { ...s, layers: [...s.layers], keys: [...s.keys], config: { ...s.config, env: [...s.config.env], exposedPorts: [...s.config.exposedPorts], labels: { ...s.config.labels } } };
  }
  let img: ResolvedImage;
  try {
    img = await o.resolveBase(b.name);
  } catch (e) {
    throw new DockerfileError(stage.line, `FROM ${b.name}: ${(e as Error).message}`, (e as { hint?: string }).hint);
  }
  // Base layers are named by the image's digest (one per layer, so keys and layers stay aligned).
  return { layers: [...img.layers], keys: img.layers.map(() => img.digest), key: img.digest, config: baseConfig(img), versions: {} };
}

async function stepKey(o: BuildOptions, ctx: BuildContext, step: Exclude<BuildStep, { kind: 'config' }>, s: StageState, done: StageState[]): Promise<string> {
  const common = { v: BUILD_VERSION, parent: s.key, kind: step.kind };
  if (step.kind === 'workdir') return hashKey({ ...common, dir: step.dir, user: s.config.user });
  if (step.kind === 'run') return hashKey({ ...common, argv: step.argv, env: step.env, cwd: step.cwd, user: step.user, network: step.network });
  let content: KeyValue;
  if (step.from.kind === 'context') content = await hashEntries(ctx, step.sources.flatMap((src) => selectSource(ctx, src, step.line)));
  else if (step.from.kind === 'stage') content = done[step.from.index]!.key;
  else content = (await o.resolveBase(step.from.name).catch((e: Error) => { throw new DockerfileError(step.line, `COPY --from=${(step.from as { name: string }).name}: ${e.message}`); })).digest;
  return hashKey({ ...common, sources: step.sources, dest: step.dest, chown: step.chown, chmod: step.chmod, content });
}

async function execStep(o: BuildOptions, ctx: BuildContext, step: Exclude<BuildStep, { kind: 'config' }>, s: StageState, done: StageState[], rootfs: string, tmp: string): Promise<void> {
  const emit = o.onEvent ?? (() => undefined);
  if (step.kind === 'workdir') {
    const owner = s.config.user && s.config.user !== 'root' ? await resolveUser(s.layers, s.config.user, step.line) : null;
    await copyDirs(rootfs, step.dir, owner);
    return;
  }
  if (step.kind === 'run') {
    if (step.network !== 'none') throw new DockerfileError(step.line, 'RUN --network=default is not available: builds run with no network (bring files in with COPY/ADD)');
    const lower = s.layers.length ? s.layers : [await emptyLayer(o.paths)];
    const user = await resolveUser(lower, step.user, step.line);
    const r = await runStep({
      id: `hb-${randomBytes(6).toString('hex')}`, argv: step.argv, env: step.env, cwd: step.cwd, uid: user.uid, gid: user.gid,
      lower, upper: rootfs, scratch: tmp, limits: o.runLimits, runcRoot: o.runcRoot, onLine: (text) => emit({ type: 'log', line: step.line, text }),
    });
    if (r.code !== 0 || r.timedOut) throw new BuildRunFailed(step.line, r.code, r.tail, r.timedOut);
    return;
  }
  const owner = step.chown ? await resolveUser(s.layers, step.chown, step.line) : null;
  const destIsDir = step.dest.endsWith('/');
  const destRel = step.dest.replace(/^\/+/, '').replace(/\/+$/, '');
  if (step.from.kind === 'context') {
    const roots = step.sources.flatMap((src) => selectSource(ctx, src, step.line));
    const multi = roots.length > 1 || step.sources.length > 1;
    if (multi && !destIsDir) throw new DockerfileError(step.line, `${step.add ? 'ADD' : 'COPY'} of several files needs a destination directory ending in /`);
    for (const e of roots) {
      const allowed = new Set(treeOf(ctx, e.rel).map((x) => x.rel));
      const to = e.type === 'dir' ? destRel : destIsDir ? (destRel ? `${destRel}/${path.posix.basename(e.rel)}` : path.posix.basename(e.rel)) : destRel;
      await copyTree(path.join(ctx.root, e.rel), rootfs, to, {
        line: step.line, owner, chmod: step.chmod, include: (rel) => allowed.has(e.rel ? `${e.rel}/${rel}` : rel),
      });
    }
    return;
  }
  const srcLayers = step.from.kind === 'stage' ? done[step.from.index]!.layers : (await o.resolveBase(step.from.name)).layers;
  for (const src of step.sources) {
    const found = await findInLayers(srcLayers, src);
    if (!found) throw new DockerfileError(step.line, `COPY --from source ${src} does not exist in that ${step.from.kind}`);
    const st = await fs.lstat(found);
    const to = st.isDirectory() ? destRel : destIsDir ? (destRel ? `${destRel}/${path.posix.basename(src)}` : path.posix.basename(src)) : destRel;
    await copyTree(found, rootfs, to, { line: step.line, owner, chmod: step.chmod });
  }
}

/** The top-most layer's copy of an image path (chroot-style symlink resolution, never the host's). */
async function findInLayers(layers: string[], rel: string): Promise<string | undefined> {
  for (const l of layers) {
    const p = await resolveInRoot(l, rel).catch(() => undefined);
    if (p && (await exists(p))) return p;
  }
  return undefined;
}

async function copyDirs(rootfs: string, dir: string, owner: Owner | null): Promise<void> {
  const target = path.join(rootfs, dir);
  await fs.mkdir(target, { recursive: true, mode: 0o755 });
  if (owner) await fs.chown(target, owner.uid, owner.gid);
}

async function writeRecord(o: BuildOptions, s: StageState): Promise<ImageManifest> {
  const c = s.config;
  const digest = hashKey({ v: BUILD_VERSION, layers: s.keys, env: c.env, workingDir: c.workingDir, user: c.user, entrypoint: c.entrypoint, cmd: c.cmd, exposed: c.exposedPorts, labels: c.labels });
  const id = `oci-${shortKey(digest)}`;
  const record: ImageManifest = {
    schema: 1, id, ref: o.ref,
    layers: s.layers.map((l) => path.relative(o.paths.root, l)),
    layer_digests: s.layers.map((_, i) => s.keys[i] ?? BUILD_EMPTY_KEY),
    env: c.env, workingDir: c.workingDir, user: c.user, digest, versions: s.versions, built_at: new Date().toISOString(), recipe_version: BUILD_VERSION,
    kind: 'oci', entrypoint: c.entrypoint, cmd: c.cmd, manifest_digest: null, source: { type: 'build', from: 'Dockerfile' },
    labels: c.labels, exposed_ports: c.exposedPorts, created: new Date().toISOString(),
    build: { ...o.owner, ref: o.ref },
  };
  await writeImageRecord(o.paths, record);
  await writeRef(o.paths, { ref: o.ref, image: id, digest, manifest_digest: null, updated_at: new Date().toISOString() });
  return record;
}
