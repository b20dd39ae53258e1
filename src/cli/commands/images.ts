/**
 * `hearth images` — the image store from the command line:
 *   list                  what the host offers (catalog, aliases and what they run now, pulled/imported images)
 *   pull REF              pull from a registry (Docker Hub names through HEARTH_REGISTRY_MIRROR if set)
 *   import FILE           load a `docker save` archive or an OCI layout tarball (air-gapped hosts)
 *   build -t NAME[:TAG]   build an image from a Dockerfile and a context directory (no registry):
 *         [-f FILE] DIR   one cached layer per step, RUN in runc with no network, progress on stderr
 *   gc                    remove unreferenced layers, dangling names, stale scratch, and microVM
 *                         templates no current key can name (another agent drive, kernel or version)
 * Results go to stdout (JSON with --json); progress goes to stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildImage } from '../../host/images/build/execute.ts';
import { runLimits } from '../../host/images/build/sandbox.ts';
import { resolveImage } from '../../host/images/resolve.ts';
import { builtRef, parseTag } from '../../control/image-builds.ts';
import { ArgError } from '../args/listen.ts';
import { parseFlags, type FlagSpec } from '../args/parse.ts';
import { createReporter, formatSeconds, type Reporter } from '../../host/setup/progress.ts';
import { collectGarbage, ensureAgentDrive, importArchive, listCatalog, pullByName, artifactPaths, type PullEvent } from '../../host/images/index.ts';
import { ensureVmArtifacts } from '../../host/drivers/microvm/boot-media/artifacts.ts';
import { vmPaths } from '../../host/drivers/microvm/boot-media/paths.ts';
import { collectStaleTemplates, type TemplateGcReport } from '../../host/drivers/microvm/templates.ts';

const USAGE = [
  'usage: hearth images list [--json] [--artifacts-dir DIR]',
  '       hearth images pull REF [--json] [--artifacts-dir DIR]',
  '       hearth images import FILE [--tag NAME:TAG] [--json] [--artifacts-dir DIR]',
  '       hearth images build -t NAME[:TAG] [-f Dockerfile] [--build-arg K=V]… [--namespace NS | --publish] [--json] DIR',
  '       hearth images gc [--untagged] [--dry-run] [--json] [--artifacts-dir DIR]',
  '  examples: hearth images pull 127.0.0.1:5000/team/app:1.0',
  '            hearth images import ./app.tar --tag app:1.0',
  '            hearth images build -t myapp:1 .   (then create with image: "myapp:1"; --publish: every namespace)',
  '  a registry on loopback, link-local or private addresses is used only when listed:',
  '            HEARTH_PRIVATE_REGISTRIES=127.0.0.1:5000 hearth images pull 127.0.0.1:5000/team/app:1.0',
  '  bounds: HEARTH_IMAGE_MAX_COMPRESSED_BYTES, HEARTH_IMAGE_MAX_UNCOMPRESSED_BYTES, HEARTH_IMAGE_MAX_ENTRIES, HEARTH_IMAGE_MAX_PATH_DEPTH',
].join('\n');

const COMMON: FlagSpec = { json: 'boolean', 'artifacts-dir': 'string' };

function split(argv: string[], want: number, what: string): { args: string[]; flags: string[] } {
  const args: string[] = [];
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      flags.push(a);
      // a string flag's value follows unless written --flag=value
      if (!a.includes('=') && ['--artifacts-dir', '--tag'].includes(a) && argv[i + 1] !== undefined) flags.push(argv[++i]!);
    } else args.push(a);
  }
  if (args.length !== want) throw new ArgError(args.length < want ? `missing ${what}` : `unexpected argument ${JSON.stringify(args[want])}`, USAGE);
  return { args, flags };
}

/**
 * Stale microVM templates, judged against the artifacts a template built now
 * would use (resolving them may build the current agent disk, as setup does).
 * A host without the guest kernel has no current artifacts: nothing is judged.
 */
async function templateGc(artifactsDir: string | undefined, dryRun: boolean, log: (l: string) => void): Promise<TemplateGcReport> {
  const none: TemplateGcReport = { removed: [], kept: 0, freedBytes: 0 };
  if (!fs.existsSync(vmPaths(artifactsDir).templates)) return none;
  let arts;
  try {
    arts = await ensureVmArtifacts(await ensureAgentDrive({ artifactsDir }), { artifactsDir, offline: true });
  } catch (e) {
    log(`microVM templates left alone: the current guest artifacts are unknown (${(e as Error).message.split('\n')[0]}); run hearth setup`);
    return none;
  }
  return collectStaleTemplates({ artifactsDir, current: { kernel: arts.kernel.vmlinuz, initrd: arts.initramfs, agentDisk: arts.agentDisk }, dryRun, log });
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Turns pull events into progress lines: every layer state change, download progress at most every 500 ms. */
export function pullProgress(r: Reporter): (e: PullEvent) => void {
  const got = new Map<number, number>();
  let total = 0;
  let layers = 0;
  let started = Date.now();
  let last = 0;
  return (e) => {
    if (e.type === 'resolved') {
      total = e.bytes;
      layers = e.layers;
      started = Date.now();
      r.tool(`${e.ref}: ${e.layers} layer(s), ${formatBytes(e.bytes)} to fetch (${e.digest.slice(0, 19)}…)`);
      return;
    }
    if (e.type !== 'layer') return;
    const label = `layer ${e.index + 1}/${layers} ${e.digest.slice(7, 19)}`;
    if (e.state === 'downloading') {
      got.set(e.index, e.bytes);
      const now = Date.now();
      if (now - last < 500 && e.bytes !== e.total) return;
      last = now;
      const sum = [...got.values()].reduce((a, b) => a + b, 0);
      const rate = sum / Math.max(0.001, (now - started) / 1000);
      const pct = total ? Math.floor((sum / total) * 100) : 100;
      r.tool(`${String(pct).padStart(3)}% ${formatBytes(sum)}/${formatBytes(total)} ${formatBytes(rate)}/s  (${label} ${formatBytes(e.bytes)}/${formatBytes(e.total)})`);
    } else {
      r.tool(`${label}: ${e.state === 'cached' ? 'already here' : e.state}`);
    }
  };
}

/** `hearth images build`: an operator build on this host, named for a namespace (or the operator, or published to all). */
async function buildCommand(argv: string[], log: (l: string) => void): Promise<number> {
  const buildArgs: Record<string, string> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (flag: string) => (a.includes('=') && a.startsWith('--') ? a.slice(a.indexOf('=') + 1) : argv[++i]) ?? (() => { throw new ArgError(`${flag} needs a value`, USAGE); })();
    if (a === '-t' || a === '--tag' || a.startsWith('--tag=')) rest.push(`--tag=${value('--tag')}`);
    else if (a === '-f' || a === '--file' || a.startsWith('--file=')) rest.push(`--file=${value('--file')}`);
    else if (a === '--build-arg' || a.startsWith('--build-arg=')) {
      const kv = value('--build-arg');
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new ArgError(`--build-arg ${JSON.stringify(kv)} must be KEY=value`, USAGE);
      buildArgs[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else rest.push(a);
  }
  const args = rest.filter((a) => !a.startsWith('--'));
  const f = parseFlags(rest.filter((a) => a.startsWith('--')), { ...COMMON, tag: 'string', file: 'string', namespace: 'string', publish: 'boolean' }, USAGE);
  if (args.length !== 1) throw new ArgError(args.length ? `unexpected argument ${JSON.stringify(args[1])}` : 'missing DIR (the build context)', USAGE);
  if (typeof f.tag !== 'string') throw new ArgError('missing -t NAME[:TAG]', USAGE);
  const dir = args[0]!;
  const file = typeof f.file === 'string' ? f.file : path.join(dir, 'Dockerfile');
  const dockerfile = await fs.promises.readFile(file, 'utf8').catch((e: Error) => { throw new ArgError(`cannot read ${file}: ${e.message}`, USAGE); });
  const { name, tag } = parseTag(f.tag);
  const namespace = typeof f.namespace === 'string' ? f.namespace : null;
  const ref = builtRef(namespace, f.publish === true, name, tag);
  const paths = artifactPaths(f['artifacts-dir'] as string | undefined);
  const r = createReporter({ log, tty: process.stderr });
  const started = Date.now();
  const record = await buildImage({
    paths, contextDir: dir, dockerfile, ref, buildArgs, resolveBase: (n) => resolveImage(n, { artifactsDir: paths.root }),
    runcRoot: '/run/hearth/build-cli', runLimits: runLimits(), owner: { namespace, published: f.publish === true },
    onEvent: (e) => {
      if (e.type === 'step' && e.status !== 'running') r.tool(`line ${String(e.line).padStart(3)} ${e.status === 'cached' ? 'CACHED' : `done ${formatSeconds(e.seconds ?? 0)}`}  ${e.source.slice(0, 100)}`);
      else if (e.type === 'step') r.tool(`line ${String(e.line).padStart(3)} ...     ${e.source.slice(0, 100)}`);
      else if (e.type === 'log') r.tool(`  | ${e.text}`);
    },
  });
  r.close();
  const out = { name: `${name}:${tag}`, ref, id: record.id, digest: record.digest, layers: record.layers.length, seconds: (Date.now() - started) / 1000 };
  process.stdout.write(f.json ? `${JSON.stringify(out, null, 2)}\n` : `${out.name} ${ref} ${record.id} ${record.digest}\n`);
  return 0;
}

export async function imagesCommand(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (e) {
    // Domain errors (bad archive, registry trouble) explain themselves: message and hint, no stack.
    if (e instanceof ArgError || !(e instanceof Error) || !('hint' in e)) throw e;
    const hint = (e as { hint?: string }).hint;
    process.stderr.write(`hearth images: ${e.message}\n${hint ? `  hint: ${hint}\n` : ''}`);
    return 1;
  }
}

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  switch (sub) {
    case 'list': {
      const f = parseFlags(rest, COMMON, USAGE);
      const artifactsDir = f['artifacts-dir'] as string | undefined;
      const images = await listCatalog({ artifactsDir });
      if (f.json) {
        process.stdout.write(`${JSON.stringify({ artifacts: artifactPaths(artifactsDir).root, images }, null, 2)}\n`);
        return 0;
      }
      const lines = images.map((i) => {
        const versions = Object.entries(i.versions).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
        const state = i.available ? (i.pull ? 'on use' : 'ready') : 'missing';
        const what = i.resolves_to && i.resolves_to !== i.id ? ` → ${i.resolves_to}` : '';
        const size = i.size ? ` ${formatBytes(i.size)}` : '';
        return `${state.padEnd(8)} ${(i.id + what).padEnd(52)} ${(i.source ?? '').padEnd(9)} ${versions}${size}${i.note ? `\n         ${i.note}` : ''}`;
      });
      process.stdout.write(`${'STATE'.padEnd(8)} ${'IMAGE'.padEnd(52)} ${'SOURCE'.padEnd(9)} VERSIONS\n${lines.join('\n')}\n`);
      return 0;
    }
    case 'pull': {
      const { args, flags } = split(rest, 1, 'REF (e.g. 127.0.0.1:5000/team/app:1.0)');
      const f = parseFlags(flags, COMMON, USAGE);
      const r = createReporter({ log, tty: process.stderr });
      const res = await r.step(`pull ${args[0]}`, () => pullByName(args[0]!, { artifactsDir: f['artifacts-dir'] as string | undefined, onPull: pullProgress(r) }),
        (p, s) => `${p.cached ? 'already here' : `${formatBytes(p.downloaded)} in ${formatSeconds(s)}`} → ${p.record.id} (${p.record.layers.length} layers, ${formatBytes(p.record.size ?? 0)} unpacked)`);
      r.close();
      const out = { ref: res.name, id: res.record.id, digest: res.record.digest, manifest_digest: res.record.manifest_digest, cached: res.cached, downloaded: res.downloaded, seconds: res.seconds, layers: res.record.layers.length };
      process.stdout.write(f.json ? `${JSON.stringify(out, null, 2)}\n` : `${res.name} ${res.record.id} ${res.record.digest}\n`);
      return 0;
    }
    case 'import': {
      const { args, flags } = split(rest, 1, 'FILE (a `docker save` archive or an OCI layout tarball)');
      const f = parseFlags(flags, { ...COMMON, tag: 'string' }, USAGE);
      const r = createReporter({ log, tty: process.stderr });
      const res = await r.step(`import ${args[0]}`, () => importArchive(args[0]!, {
        paths: artifactPaths(f['artifacts-dir'] as string | undefined), tag: f.tag as string | undefined, onEvent: pullProgress(r),
      }), (x, s) => `${x.format}: ${x.images.length} image(s) in ${formatSeconds(s)}`);
      r.close();
      const out = { format: res.format, images: res.images.map((i) => ({ id: i.record.id, digest: i.record.digest, refs: i.refs, layers: i.record.layers.length, size: i.record.size })) };
      if (f.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      else for (const i of out.images) process.stdout.write(`${i.id} ${i.digest} ${i.refs.join(' ') || '(no name: use --tag)'}\n`);
      return 0;
    }
    case 'build':
      return buildCommand(rest, log);
    case 'gc': {
      const f = parseFlags(rest, { ...COMMON, untagged: 'boolean', 'dry-run': 'boolean' }, USAGE);
      const artifactsDir = f['artifacts-dir'] as string | undefined;
      const dryRun = f['dry-run'] === true;
      const images = await collectGarbage({ artifactsDir, untagged: f.untagged === true, dryRun, log });
      const templates = await templateGc(artifactsDir, dryRun, log);
      const report = { ...images, templates: templates.removed, freedBytes: images.freedBytes + templates.freedBytes };
      if (f.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const n = report.layers.length + report.images.length + report.refs.length + report.derived.length + report.scratch.length + report.templates.length;
        process.stdout.write(`${report.dryRun ? 'would free' : 'freed'} ${formatBytes(report.freedBytes)} (${n} item(s); kept ${report.kept.length} in use or too young)\n`);
      }
      return 0;
    }
    default:
      throw new ArgError(sub ? `unknown subcommand ${JSON.stringify(sub)}` : 'missing subcommand', USAGE);
  }
}
