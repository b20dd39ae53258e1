/** `hearth setup` — prepare this host: packages, Node runtime, agent drive, images. */
import { parseFlags } from '../args/parse.ts';
import { ArgError } from '../args/listen.ts';
import { CATALOG, findRecipe } from '../../host/images/catalog.ts';
import { runSetup } from '../../host/setup/index.ts';

const USAGE = 'usage: hearth setup [--artifacts-dir DIR] [--images ID,ID…] [--skip-packages] [--json]\n  example: hearth setup --images debian-12,node-20 (`--images all` adds go-1.22, rust-1, postgres-16)';

export async function setupCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { 'artifacts-dir': 'string', images: 'string', 'skip-packages': 'boolean', json: 'boolean' }, USAGE);
  let images: string[] | undefined;
  if (typeof f.images === 'string') {
    images = f.images.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = images.filter((i) => i !== 'all' && !findRecipe(i));
    if (unknown.length) {
      throw new ArgError(`--images: unknown image ${unknown.map((u) => JSON.stringify(u)).join(', ')}`, `catalog images: ${CATALOG.map((c) => c.id).join(', ')}\n  ${USAGE}`);
    }
  }
  const report = await runSetup({
    ...(typeof f['artifacts-dir'] === 'string' ? { artifactsDir: f['artifacts-dir'] } : {}),
    ...(images ? { images } : {}),
    skipPackages: f['skip-packages'] === true,
    log: (line) => process.stderr.write(`${line}\n`),
    tty: process.stderr,
  });
  if (f.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const out: string[] = [];
    if (report.agent) out.push(`agent drive  ${report.agent.dir}`);
    for (const i of report.images) out.push(`${i.id.padEnd(12)} ${i.ref.padEnd(20)} ${Object.entries(i.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    for (const e of report.errors) out.push(`FAILED ${e.step}${e.target ? ` ${e.target}` : ''}: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}`);
    process.stdout.write(`${out.join('\n')}\n`);
  }
  return report.ok ? 0 : 1;
}
