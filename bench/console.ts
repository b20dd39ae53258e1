/**
 * The web console: time from pressing "Sign in" to the workspaces table
 * painted with 200 rows, in Debian's Chromium against a real `hearth serve`,
 * beside its floor measured in the same run (the API's own GET /workspace
 * of the same 200 rows, over loopback, from Node); and the bundle's size
 * (raw and gzip) and build time.
 *
 * The 200 rows are cheap on purpose: one real workspace is created through
 * the SDK and stopped, and its store row is copied 199 times under new ids
 * (stopped, no network slot), so the list is 200 real rows the API lists
 * and shapes like any other, without booting 200 containers on 2 cores.
 * The copies are deleted from the store before hearthd stops.
 *
 * Prints JSON. Usage: node --import tsx bench/console.ts [--runs 10]
 */
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Oblien } from 'oblien';
import { chromium } from 'playwright-core';
import { inOwnNetns, percentiles } from './netns.ts';
import { startHearth } from '../test/helpers/hearth.ts';
import { buildConsoleBundle } from '../src/console/bundle.ts';

const script = fileURLToPath(import.meta.url);
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 10;
const ROWS = 200;

async function main(): Promise<void> {
  const bundle = await buildConsoleBundle();
  const bundleInfo = {
    script_bytes: bundle.assets.get(bundle.script)!.body.length,
    script_gzip_bytes: gzipSync(bundle.assets.get(bundle.script)!.body).length,
    style_bytes: bundle.assets.get(bundle.style)!.body.length,
    style_gzip_bytes: gzipSync(bundle.assets.get(bundle.style)!.body).length,
    total_bytes: bundle.bytes,
    build_ms: bundle.buildMs,
  };

  const h = await startHearth({ extraArgs: ['--edge-listen', 'off', '--edge-tls-listen', 'off', '--ssh-listen', 'off'] });
  const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  const db = new Database(path.join(h.dataDir, 'hearth.db'));
  const copies: string[] = [];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'], headless: true });
  try {
    const ws = await client.workspaces.create({ image: 'debian-12', name: 'bench-0', config: { ttl: '30m' } } as never) as Record<string, any>;
    await client.workspaces.stop(ws.id);
    const row = db.prepare('SELECT * FROM workspaces WHERE id = ?').get(ws.id) as Record<string, unknown>;
    const cols = Object.keys(row);
    const insert = db.prepare(`INSERT INTO workspaces (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
    db.transaction(() => {
      for (let i = 1; i < ROWS; i++) {
        const id = `ws_bench${String(i).padStart(4, '0')}`;
        copies.push(id);
        insert.run({ ...row, id, slug: null, name: `bench-${i}`, slot_index: null, idempotency_key: null, state: 'stopped' });
      }
    })();

    const headers = { 'x-client-id': h.clientId, 'x-client-secret': h.clientSecret };
    const floor: number[] = [];
    const paint: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const list = await (await fetch(`${h.api}/workspace?limit=500`, { headers })).json() as { workspaces: unknown[] };
      floor.push(performance.now() - t0);
      if (list.workspaces.length !== ROWS) throw new Error(`the API lists ${list.workspaces.length} workspaces, not ${ROWS}`);

      const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await ctx.newPage();
      await page.goto(`${h.api}/console/`);
      await page.getByLabel('Client ID').fill(h.clientId);
      await page.getByLabel('Client secret').fill(h.clientSecret);
      // Watch from inside the page, frame by frame, so no round trip to the driver is counted:
      // painted = 200 rows in the DOM, then the next animation frame (layout and paint done).
      // (A string, not a function: tsx would wrap a named inner function in a helper the page lacks.)
      const t1 = await page.evaluate(`(() => {
        window.painted = new Promise((resolve) => {
          const check = () => {
            if (document.querySelectorAll('table.workspaces tbody tr').length >= ${ROWS}) requestAnimationFrame(() => resolve(performance.now()));
            else requestAnimationFrame(check);
          };
          check();
        });
        return performance.now();
      })()`) as number;
      await page.getByRole('button', { name: 'Sign in' }).click();
      const t2 = await page.evaluate('window.painted') as number;
      paint.push(t2 - t1);
      await ctx.close();
    }
    const p = percentiles(paint);
    const f = percentiles(floor);
    process.stdout.write(JSON.stringify({
      bench: 'console', rows: ROWS, runs: RUNS,
      signin_to_list_painted_ms: p,
      floor_api_list_ms: f,
      ratio_p50: Math.round((p.p50 / f.p50) * 10) / 10,
      bundle: bundleInfo,
      how: `1 real workspace + ${ROWS - 1} store copies of its stopped row; Chromium ${browser.version()} headless, 1400x900`,
    }, null, 2) + '\n');
  } finally {
    await browser.close();
    if (copies.length) db.prepare(`DELETE FROM workspaces WHERE id IN (${copies.map(() => '?').join(',')})`).run(...copies);
    db.close();
    await h.stop();
  }
}

if (inOwnNetns(script)) await main();
