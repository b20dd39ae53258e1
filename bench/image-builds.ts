/**
 * Dockerfile build speed on this host: a 5-step Dockerfile on debian-12
 * (COPY, RUN, ENV, WORKDIR, RUN) built cold (every layer made; RUN in runc),
 * fully cached (every layer reused), and with its last line changed (only
 * that step rebuilt), beside the floor a from-scratch image pays: mmdebstrap
 * of debian-12's own package set from the host's Debian sources (network:
 * the Debian archive only, through mmdebstrap). Needs root and a built
 * debian-12 (`hearth setup`). Prints JSON.
 * Usage: node --import tsx bench/image-builds.ts [--runs 10] [--no-mmdebstrap]
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import { percentiles } from './netns.ts';
import { buildImage } from '../src/host/images/build/execute.ts';
import { runLimits } from '../src/host/images/build/sandbox.ts';
import { resolveImage } from '../src/host/images/resolve.ts';
import { artifactPaths } from '../src/host/images/paths.ts';
import { BASE_PACKAGES, DEBIAN_SUITE } from '../src/host/images/catalog.ts';
import { hostSources } from '../src/host/images/sources.ts';
import { DPKG_EXCLUDES } from '../src/host/images/rootfs.ts';

const runs = (() => {
  const i = process.argv.indexOf('--runs');
  return i > 0 ? Number(process.argv[i + 1]) : 10;
})();
const withMmdebstrap = !process.argv.includes('--no-mmdebstrap');

const dockerfile = (last: string) => `FROM debian-12
COPY app/ /app/
RUN cd /app && for i in 1 2 3 4 5 6 7 8; do cat data.txt; done | gzip -c > /app/data.gz && useradd -m builder
ENV APP=/app MODE=bench
WORKDIR /app
RUN ${last}
CMD ["ls", "-l", "/app"]
`;

async function main(): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-bench-build-'));
  const paths = artifactPaths(root);
  const ctx = path.join(root, 'ctx');
  await fs.mkdir(path.join(ctx, 'app'), { recursive: true });
  await fs.writeFile(path.join(ctx, 'app/data.txt'), 'x'.repeat(1024 * 1024));
  await fs.writeFile(path.join(ctx, 'app/main.sh'), '#!/bin/sh\necho hi\n');
  const opts = (text: string, tag: string) => ({
    paths, contextDir: ctx, dockerfile: text, ref: `hearth.local/operator/bench:${tag}`, resolveBase: (n: string) => resolveImage(n),
    runcRoot: path.join(root, 'runc'), runLimits: runLimits(), owner: { namespace: null, published: false },
  });
  try {
    await resolveImage('debian-12');
    const t0 = performance.now();
    await buildImage(opts(dockerfile('sha256sum data.gz > sums'), 'cold'));
    const cold = performance.now() - t0;
    const cached: number[] = [];
    for (let i = 0; i < runs; i++) {
      const a = performance.now();
      await buildImage(opts(dockerfile('sha256sum data.gz > sums'), 'cold'));
      cached.push(performance.now() - a);
    }
    const changed: number[] = [];
    for (let i = 0; i < Math.min(runs, 5); i++) {
      const a = performance.now();
      await buildImage(opts(dockerfile(`sha256sum data.gz > sums-${i}`), `changed${i}`));
      changed.push(performance.now() - a);
    }
    let mmdebstrap: { seconds: number; packages: string[] } | { skipped: string } = { skipped: '--no-mmdebstrap' };
    if (withMmdebstrap) {
      const src = await hostSources(DEBIAN_SUITE);
      const out = path.join(root, 'mmdebstrap');
      const a = performance.now();
      execFileSync('mmdebstrap', ['--variant=minbase', '--mode=root', '--format=directory', `--include=${[...BASE_PACKAGES].sort().join(',')}`,
        ...src.aptOptions.map((o) => `--aptopt=${o}`), ...DPKG_EXCLUDES.map((o) => `--dpkgopt=${o}`), '--quiet', DEBIAN_SUITE, out, '-'], { input: src.text, stdio: ['pipe', 'ignore', 'inherit'] });
      mmdebstrap = { seconds: Math.round((performance.now() - a) / 10) / 100, packages: BASE_PACKAGES };
    }
    const r = (x: number) => Math.round(x * 10) / 10;
    process.stdout.write(`${JSON.stringify({
      bench: 'image-builds',
      dockerfile: 'FROM debian-12 + COPY (1 MiB), RUN (gzip 8 MiB, useradd), ENV, WORKDIR, RUN (sha256sum)',
      cold_ms: r(cold),
      cached_ms: percentiles(cached),
      last_line_changed_ms: percentiles(changed),
      cached_over_cold: r(percentiles(cached).p50 / cold * 1000) / 1000,
      mmdebstrap_same_packages: mmdebstrap,
      note: 'cold and changed builds run RUN steps in runc with no network; cached = parse + context hash + layer lookups; mmdebstrap includes downloading the packages',
      runs, cpus: os.cpus().length,
    }, null, 2)}\n`);
  } finally {
    execFileSync('rm', ['-rf', '--one-file-system', root]);
  }
}

await main();
