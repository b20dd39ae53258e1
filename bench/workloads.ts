/**
 * Workloads, logs and metrics, measured with the official SDK against a
 * real `hearth serve` and a container workspace, in a network namespace of
 * its own (bench/netns.ts):
 *  - workloads.create → answer (the process is spawned before the answer);
 *  - restart reaction: exit of a crashing process → first line of the next
 *    one, minus the configured back-off (the supervisor's own cost: spawn,
 *    pipes, bookkeeping);
 *  - log line latency: a workload prints its own clock every 20 ms, the
 *    client reads the lines through logsStream (agent → hearthd relay → SDK);
 *  - metrics: stats() round trip (warm) and statsStream's first event.
 * Prints JSON. Usage: node --import tsx bench/workloads.ts [--runs 30]
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Oblien } from 'oblien';
import { inOwnNetns, percentiles } from './netns.ts';
import { startHearth } from '../test/helpers/hearth.ts';

const script = fileURLToPath(import.meta.url);
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 30;

async function main(): Promise<void> {
  const h = await startHearth();
  const client = new Oblien({ clientId: h.clientId, clientSecret: h.clientSecret, baseUrl: h.api });
  const out: Record<string, unknown> = { runs: RUNS };
  try {
    const ws = await client.workspaces.create({ image: 'debian-12', config: { ttl: '30m', cpus: 1, memory_mb: 512 } } as never) as any;
    const wl = client.workspaces.workloads;

    const create: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await wl.create(ws.id, { name: `c${i}`, cmd: ['sleep', '1000'], restart_policy: 'never' });
      create.push(performance.now() - t0);
    }
    out.create_ms = percentiles(create);
    await wl.deleteAll(ws.id);

    // Restart reaction: back-off fixed at 100 ms (the floor), no doubling.
    const crash = await wl.create(ws.id, { name: 'crash', cmd: ['sh', '-c', 'echo start; exit 1'], restart_policy: 'on-failure', max_restarts: RUNS, restart_delay: 0.1, restart_backoff: false }) as any;
    for (;;) {
      const s = await wl.status(ws.id, crash.id) as any;
      if (s.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const logs = ((await wl.logs(ws.id, crash.id)) as any).logs as { data: string; stream: string; timestamp: string }[];
    const reaction: number[] = [];
    let exitAt: number | null = null;
    for (const e of logs) {
      if (e.stream === 'system' && e.data.startsWith('exited with code')) exitAt = Date.parse(e.timestamp);
      if (e.stream === 'stdout' && e.data === 'start' && exitAt !== null) {
        reaction.push(Date.parse(e.timestamp) - exitAt - 100);
        exitAt = null;
      }
    }
    out.restart_overhead_ms = { ...percentiles(reaction), note: 'exit seen → next process\'s first line, minus the 100 ms back-off (agent clock, ms resolution)' };
    await wl.delete(ws.id, crash.id);

    // Log latency through the relay.
    const ticker = await wl.create(ws.id, { name: 'ticker', cmd: ['sh', '-c', `i=0; while [ $i -lt ${RUNS * 5} ]; do i=$((i+1)); echo "$(date +%s%3N)"; sleep 0.02; done`], restart_policy: 'never' }) as any;
    const lat: number[] = [];
    for await (const e of wl.logsStream(ws.id, ticker.id) as AsyncIterable<any>) {
      if (e.stream !== 'stdout') continue;
      lat.push(Date.now() - Number(e.data));
    }
    out.log_line_latency_ms = { ...percentiles(lat.slice(5)), note: 'printed (date +%s%3N in the workload) → received by the SDK through hearthd; includes `date` fork time' };
    await wl.delete(ws.id, ticker.id);

    const stats: number[] = [];
    await client.workspaces.metrics.stats(ws.id);
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await client.workspaces.metrics.stats(ws.id);
      stats.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 250));
    }
    out.metrics_stats_ms = { ...percentiles(stats), note: 'warm: the agent reuses its previous sample for the rates' };
    const t0 = performance.now();
    for await (const _ev of client.workspaces.metrics.statsStream(ws.id) as AsyncIterable<unknown>) break;
    out.metrics_stream_first_event_ms = Math.round(performance.now() - t0);
    await client.workspaces.delete(ws.id);
  } finally {
    await h.stop();
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  // The SDK's SSE reader holds its last stream open (no abort signal): leave now.
  process.exit(0);
}

if (inOwnNetns(script)) await main();
