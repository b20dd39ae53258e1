/**
 * The console's browser code, bundled by esbuild from src/console/web/ in
 * memory the first time it is asked for (no build step at install, nothing
 * written to disk). Each file is named by a hash of its content, so browsers
 * may cache it forever and a new hearthd never serves a stale bundle.
 */
import path from 'node:path';
import { createHash } from 'node:crypto';
import { build } from 'esbuild';

export interface Asset {
  body: Buffer;
  type: string;
}

export interface ConsoleBundle {
  /** `app-<hash>.js`, `app-<hash>.css` → content. */
  assets: Map<string, Asset>;
  script: string;
  style: string;
  /** Total bytes of the assets, and gzip is left to whoever measures it. */
  bytes: number;
  buildMs: number;
}

const WEB_DIR = path.join(import.meta.dirname, 'web');

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

export async function buildConsoleBundle(): Promise<ConsoleBundle> {
  const t0 = performance.now();
  const out = await build({
    entryPoints: { app: path.join(WEB_DIR, 'main.ts') },
    bundle: true, write: false, minify: true, format: 'esm', target: 'es2022', platform: 'browser',
    outdir: '/console-out', sourcemap: false, legalComments: 'none', logLevel: 'silent',
    loader: { '.css': 'css' },
  });
  const assets = new Map<string, Asset>();
  let script = '';
  let style = '';
  let bytes = 0;
  for (const f of out.outputFiles) {
    const ext = path.extname(f.path);
    const hash = createHash('sha256').update(f.contents).digest('hex').slice(0, 16);
    const name = `${path.basename(f.path, ext)}-${hash}${ext}`;
    assets.set(name, { body: Buffer.from(f.contents), type: TYPES[ext] ?? 'application/octet-stream' });
    bytes += f.contents.length;
    if (ext === '.js') script = name;
    if (ext === '.css') style = name;
  }
  return { assets, script, style, bytes, buildMs: Math.round(performance.now() - t0) };
}

/** One build per process, started on first use; a failed build is retried on the next request. */
export class BundleCache {
  private pending: Promise<ConsoleBundle> | null = null;

  get(): Promise<ConsoleBundle> {
    if (!this.pending) {
      this.pending = buildConsoleBundle();
      this.pending.catch(() => { this.pending = null; });
    }
    return this.pending;
  }
}
