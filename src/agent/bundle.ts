/**
 * Bundle the guest agent for the agent drive. The image builder calls
 * bundleAgent(); the drive's own Node 20 binary then runs `agent.mjs`.
 *
 * Everything pure-JS (ws, tar, the agent) is inlined into one ESM file.
 * The one exception is the PTY addon, @lydell/node-pty: a native `.node`
 * file cannot live inside a JS bundle. It is marked external and its
 * package, plus the per-platform package holding the prebuilt `pty.node`,
 * is copied into `node_modules/` beside the output file:
 *
 *   <dir>/agent.mjs
 *   <dir>/node_modules/@lydell/node-pty/…              (JS loader, package.json)
 *   <dir>/node_modules/@lydell/node-pty-linux-x64/pty.node
 *
 * Node's resolver walks up from agent.mjs and finds it there, so the drive
 * needs no install step. `pty.node` links against libutil.so.1 and
 * libpthread.so.0 besides what node itself needs: the drive's lib/ must
 * carry AGENT_NATIVE_LIBS too (it is loaded through the drive's loader and
 * its `--library-path`). If the addon is missing, only terminals fail
 * (501), everything else works (see terminals/pty.ts).
 */
import { build } from 'esbuild';
import { cp, mkdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('./main.ts', import.meta.url));
/** The microVM guest launcher's entry (vm/launch.ts): bundled on its own into `vm/launch.mjs` on the VM agent disk. */
export const LAUNCHER_ENTRY = fileURLToPath(new URL('./vm/launch.ts', import.meta.url));
const PTY_PACKAGE = '@lydell/node-pty';

/** Shared libraries the PTY addon needs beyond Node's own (libc, libm, libstdc++, libgcc_s). */
export const AGENT_NATIVE_LIBS = ['libutil.so.1', 'libpthread.so.0'] as const;

export interface BundleOptions {
  /** Platform/arch of the workspace (default: linux-x64, the only one drives are built for). */
  platform?: string;
  arch?: string;
  /** Skip copying the PTY addon (a bundle for tests of non-terminal features). */
  skipNative?: boolean;
}

function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch (err) {
    throw new Error(`bundleAgent: cannot find ${name} (npm install it on the build host): ${(err as Error).message}`);
  }
}

async function copyPty(outDir: string, platform: string, arch: string): Promise<void> {
  const modules = join(outDir, 'node_modules', '@lydell');
  await rm(modules, { recursive: true, force: true });
  await mkdir(modules, { recursive: true });
  for (const name of [PTY_PACKAGE, `${PTY_PACKAGE}-${platform}-${arch}`]) {
    await cp(packageDir(name), join(outDir, 'node_modules', name), { recursive: true, dereference: true });
  }
}

export async function bundleAgent(outFile: string, opts: BundleOptions = {}): Promise<void> {
  await build({
    entryPoints: [ENTRY],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'silent',
    // node-pty is native (copied beside the bundle); ws's optional accelerators are native and absent.
    external: [PTY_PACKAGE, 'bufferutil', 'utf-8-validate'],
    // Bundled CommonJS dependencies (ws) call require(); ESM has none of its own.
    banner: { js: "import { createRequire as __hearthCreateRequire } from 'node:module'; const require = __hearthCreateRequire(import.meta.url);" },
  });
  if (!opts.skipNative) await copyPty(dirname(outFile), opts.platform ?? 'linux', opts.arch ?? 'x64');
}
