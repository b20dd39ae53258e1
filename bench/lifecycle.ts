/**
 * Wake from idle sleep → first byte, and hearthd restart → reconciled with N
 * running workspaces. Prints JSON. Usage: node --import tsx bench/lifecycle.ts [--workspaces 100] [--wakes 10]
 * Floors: a workspace create→ready (a wake is a start of an existing sandbox),
 * and hearthd startup with no workspaces.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Oblien, Runtime } from 'oblien';
import { inOwnNetns, percentiles } from './netns.ts';
import { startHearth } from '../test/helpers/hearth.ts';
import { waitUntil } from '../test/helpers/wait.ts';

const script = fileURLToPath(import.meta.url);
const arg = (name: string, d: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const N = arg('workspaces', 100);
const WAKES = arg('wakes', 10);

async function main(): Promise<void> {
  const h = await startHearth({ extraArgs: ['--min-idle-seconds', '1', '--log-level', 'info'] });
  try {
    const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
    // Wake → first byte.
    const ws = await client.workspaces.create({ image: 'debian-12', mode: 'permanent' } as never) as any;
    const { token } = await client.workspaces.apiAccess.enable(ws.id) as { token: string };
    const rt = new Runtime({ token, baseUrl: h.runtime });
    const wakes: number[] = [];
    for (let i = 0; i < WAKES; i++) {
      await client.workspaces.lifecycle.setIdle(ws.id, { suspend_after: 1 } as never);
      await waitUntil('sleep', async () => ((await client.workspaces.get(ws.id)) as any).status === 'sleeping', 30_000, 50);
      await client.workspaces.lifecycle.setIdle(ws.id, { suspend_after: 0 } as never);
      const t = performance.now();
      await rt.exec.run(['true']);
      wakes.push(performance.now() - t);
    }
    await client.workspaces.delete(ws.id);

    // Restart with no workspaces (floor), then with N running.
    let t = performance.now();
    await h.crashAndRestart();
    const emptyRestart = performance.now() - t;
    const ids: string[] = [];
    for (let i = 0; i < N; i += 10) {
      const batch = await Promise.all(Array.from({ length: Math.min(10, N - i) }, () => client.workspaces.create({ image: 'debian-12', mode: 'permanent', config: { memory_mb: 128 } } as never))) as any[];
      ids.push(...batch.map((w) => w.id));
    }
    t = performance.now();
    await h.crashAndRestart();
    const fullRestart = performance.now() - t;
    // The restart's own account (hearthd logs at info): how many were adopted and what each phase cost.
    const lines = h.logs.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>);
    const last = (msg: string) => lines.filter((l) => l.msg === msg).at(-1);
    const reconcileLine = last('reconciled the store with the host');
    const networkLine = last('network policies in place');
    process.stdout.write(JSON.stringify({
      bench: 'lifecycle', driver: 'container', unit: 'ms',
      wake_to_first_byte: percentiles(wakes),
      hearthd_restart_empty: Math.round(emptyRestart),
      hearthd_restart_with_workspaces: {
        workspaces: ids.length, ms: Math.round(fullRestart), adopted: reconcileLine?.reconciled?.adopted ?? null,
        reconcile_ms: reconcileLine?.ms ?? null, network_sync_ms: networkLine?.ms ?? null,
      },
      targets: { wake_p50_ms: 300, restart_100_ms: 5000 },
    }, null, 2) + '\n');
  } finally {
    await h.stop();
  }
}

if (inOwnNetns(script)) await main();
