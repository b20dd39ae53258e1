/**
 * Fuzzing the unpacker with random real tar streams: mixes of directories,
 * files with xattrs, symlinks (to the canary beside the root, `..`, `/`, each
 * other), hard links, whiteouts, opaque markers, device nodes and times,
 * over a small set of names so entries keep replacing each other. Whatever
 * the stream, nothing outside the layer root may change, no xattr may be
 * set outside it, and a refusal is a typed error.
 *
 * HEARTH_FUZZ_SEED picks the seed (default fixed, so CI is reproducible;
 * `random` for a new one), HEARTH_FUZZ_CASES the number of streams
 * (default 100, a few seconds). A failure names its seed and case.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { readTar } from '../../src/host/images/oci/tar.ts';
import { unpackLayer } from '../../src/host/images/oci/unpack.ts';
import { DEFAULT_IMAGE_LIMITS } from '../../src/host/images/oci/limits.ts';
import { ImageLimitError, UnsafeLayerError } from '../../src/host/images/errors.ts';
import { tar, type TarSpec } from '../helpers/oci-images.ts';
import { makeSandbox, removeSetfattrShim } from '../helpers/unpack-sandbox.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

after(removeSetfattrShim);

const seedEnv = process.env.HEARTH_FUZZ_SEED;
const SEED = seedEnv === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(seedEnv ?? 0x4ea27);
const CASES = Number(process.env.HEARTH_FUZZ_CASES ?? 100);
const isRoot = process.getuid?.() === 0;
const CAP = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

const rng = seededRandom;

function stream(r: () => number, canary: string): TarSpec[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const names = ['d', 'e', 'f', 'sub', 'd/e', 'd/f', 'd/sub', 'd/e/f', 'e/f', 'sub/g', 'd/sub/g'];
  const decorate = (p: string) => pick([p, p, p, `./${p}`, `/${p}`, `${p.split('/')[0]}/../${p}`, `${p}/`]);
  // Mostly the canary (the host), so that swaps of a directory for a symlink out of the root are frequent.
  const linkTargets = [canary, canary, canary, `${canary}/sub`, '../canary', '../canary', '../canary/sub', '../../', '..', '/', '.', 'd', 'e', '../canary/f', ...names];
  const tops = ['d', 'e', 'sub', 'd/sub'];
  const out: TarSpec[] = [];
  const n = 3 + Math.floor(r() * 18);
  for (let i = 0; i < n; i++) {
    const name = pick(names);
    const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
    const base = name.slice(name.lastIndexOf('/') + 1);
    const mtime = pick([0, 1, 42, 1_700_000_000]);
    const k = r();
    if (k < 0.18) out.push({ type: 'dir', path: `${decorate(name)}/`, mtime, mode: pick([0o755, 0o700, 0o777]) });
    else if (k < 0.34) {
      const xattrs: Record<string, string | Buffer> = {};
      if (r() < 0.4) xattrs['user.fuzz'] = 'v';
      if (r() < 0.2) xattrs['security.capability'] = CAP;
      if (r() < 0.2) xattrs['trusted.overlay.opaque'] = 'y';
      out.push({ type: 'file', path: decorate(name), content: 'data', mtime, mode: pick([0o644, 0o4755]), xattrs });
    } else if (k < 0.56) out.push({ type: 'symlink', path: decorate(r() < 0.6 ? pick(tops) : name), target: pick(linkTargets) });
    else if (k < 0.66) out.push({ type: 'hardlink', path: decorate(name), target: pick([...names, '../canary/f', `${canary}/f`, 'd/../../canary/f']) });
    else if (k < 0.78) out.push({ type: 'file', path: `${dir ? `${dir}/` : ''}.wh.${pick([base, 'f', 'g', 'sub'])}` });
    else if (k < 0.86) out.push({ type: 'file', path: `${dir ? `${dir}/` : ''}.wh..wh..opq` });
    else if (k < 0.92) out.push({ type: 'char', path: decorate(name), major: pick([0, 1]), minor: pick([0, 3]) });
    else if (k < 0.95) out.push({ type: 'fifo', path: decorate(name) });
    else out.push({ type: 'file', path: pick(['../canary/f', `../${base}`, 'd/../../x', `${'a/'.repeat(6)}x`]), content: 'escape?' });
  }
  // Often the stream ends by swapping a directory it filled for a symlink out of the root: the attack on deferred work.
  if (r() < 0.5) out.push({ type: 'symlink', path: pick(tops), target: pick([canary, '../canary', '../canary/sub', '../../canary']) });
  return out;
}

test(`random tar streams never touch anything outside the layer root (seed ${SEED}, ${CASES} cases)`, { skip: !isRoot && 'needs root (whiteouts are device nodes)' }, async (t) => {
  const r = rng(SEED);
  const outcomes = { unpacked: 0, unsafe: 0, limit: 0 };
  for (let c = 0; c < CASES; c++) {
    const sb = await makeSandbox();
    const entries = stream(r, sb.canary);
    const where = `seed ${SEED} case ${c}: HEARTH_FUZZ_SEED=${SEED} and ${JSON.stringify(entries.map((e) => [e.type, e.path, 'target' in e ? e.target : '']))}`;
    try {
      try {
        const limits = { ...DEFAULT_IMAGE_LIMITS, maxPathDepth: 5 };
        await unpackLayer(readTar((async function* () { yield tar(entries); })()), sb.root, { chown: true, limits });
        outcomes.unpacked++;
      } catch (e) {
        if (e instanceof UnsafeLayerError) outcomes.unsafe++;
        else if (e instanceof ImageLimitError) outcomes.limit++;
        else assert.fail(`${where}: untyped failure ${(e as Error).stack}`);
      }
      assert.deepEqual(await sb.changes(), [], `${where}: something outside the root changed`);
      assert.deepEqual(await sb.xattrEscapes(), [], `${where}: an xattr was set outside the root`);
      // Inside the root: no device node but the 0:0 whiteouts.
      // (An lstat walk: fs.readdir's recursive mode follows symlinks, and these point everywhere.)
      const walk = async (dir: string): Promise<void> => {
        for (const n of await fs.readdir(dir)) {
          const f = path.join(dir, n);
          const st = await fs.lstat(f);
          assert.ok(!st.isBlockDevice() && !(st.isCharacterDevice() && st.rdev !== 0) && !st.isFIFO(), `${where}: ${f} is a device node or FIFO`);
          if (st.isDirectory()) await walk(f);
        }
      };
      await walk(sb.root);
    } finally {
      await sb.cleanup();
    }
  }
  t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
  // Both outcomes are exercised: a generator that only ever produced refusals would prove little.
  assert.ok(outcomes.unpacked > CASES / 20 && outcomes.unsafe > CASES / 20, JSON.stringify(outcomes));
});
