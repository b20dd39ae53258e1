/**
 * The `logs` sub-resource (spec §18) inside the agent, under `/_hearth/logs`:
 * sources `boot` (the agent's own console lines, boot.ts) and `cmd` (the
 * output of the workload that runs the workspace's `config.cmd`), any
 * workload by id or name, the log files themselves, and SSE streams.
 *
 * The boot stream closes after its backlog (the agent answering means the
 * boot is over; the MCP server collects the whole stream, so it must end).
 * The cmd stream follows while the command runs or is about to restart.
 */
import { LOGS_PREFIX } from '../../core/agent-protocol.ts';
import { readFileSync, statSync } from 'node:fs';
import type { Handler } from '../http/context.ts';
import { AgentError, notFound, validation } from '../../core/agent-protocol/errors.ts';
import { q } from '../../core/agent-protocol/params.ts';
import type { Router } from '../router.ts';
import type { Supervisor } from '../workloads/supervisor.ts';
import { sinceParam, streamWorkloadLogs, tailParam } from '../workloads/routes.ts';
import type { BootLog } from './boot.ts';
import type { LogEntry } from './line.ts';
import { openDataSse } from '../../core/agent-protocol/sse.ts';
import type { LogFileInfo, LogStore } from './store.ts';

/** getFile answers in JSON: bigger files are refused (fetch them with the runtime's files API). */
const MAX_FILE_BYTES = 32 * 1024 * 1024;

export interface LogRouteDeps {
  boot: BootLog;
  supervisor: Supervisor;
}

/** A LogStreamEvent (§18): `message` and `timestamp`, plus where it came from. */
function eventView(e: LogEntry, source: string): Record<string, unknown> {
  return { timestamp: e.t || null, message: e.data, stream: e.stream, source };
}

export function registerLogRoutes(router: Router<Handler>, deps: LogRouteDeps): void {
  const { boot, supervisor } = deps;
  const P = LOGS_PREFIX;

  /** `source` → the store holding it: boot, cmd, or a workload by id or name. */
  const storeFor = (source: string): { store: LogStore | null; name: string } => {
    if (source === 'boot') return { store: boot.store, name: 'boot' };
    if (source === 'cmd') return { store: supervisor.cmdWorkload()?.logs ?? null, name: 'cmd' };
    try {
      const w = supervisor.find(source);
      return { store: w.logs, name: w.id };
    } catch {
      throw validation('source', `unknown log source ${JSON.stringify(source)}: use "boot", "cmd" or a workload id`);
    }
  };

  const defaultSource = (): string => (supervisor.cmdWorkload() ? 'cmd' : 'boot');

  router.add('GET', P, (ctx) => {
    const source = q(ctx.query, 'source') || defaultSource();
    const { store, name } = storeFor(source);
    const entries = store ? store.tail({ tail: tailParam(ctx.query, 500), sinceMs: sinceParam(ctx.query) }) : [];
    return { success: true, source: name, logs: entries.map((e) => eventView(e, name)), total: entries.length };
  });

  router.add('DELETE', P, () => {
    const cleared: string[] = [];
    for (const store of [boot.store, supervisor.cmdWorkload()?.logs]) {
      if (!store) continue;
      cleared.push(...store.files().map((f) => f.name));
      store.clear();
    }
    return { success: true, cleared };
  });

  /** Every log file the agent keeps, by unique name. */
  const files = (): LogFileInfo[] => {
    const seen = new Set<string>();
    const out: LogFileInfo[] = [];
    for (const store of [boot.store, ...supervisor.list().map((w) => w.logs)]) {
      for (const f of store.files()) {
        if (seen.has(f.name)) continue;
        seen.add(f.name);
        out.push(f);
      }
    }
    return out;
  };

  router.add('GET', `${P}/files`, () => ({
    success: true,
    files: files().map(({ name, size, modified }) => ({ name, size, modified })),
  }));

  router.add('GET', `${P}/files/:name`, (ctx) => {
    const name = ctx.params.name as string;
    const f = files().find((x) => x.name === name);
    if (!f) throw notFound(`log file ${JSON.stringify(name)} not found`, { kind: 'log file', id: name });
    const size = statSync(f.path).size;
    if (size > MAX_FILE_BYTES) throw new AgentError('file_too_large', `${name} is ${size} bytes; read it with the files API`, { size, limit: MAX_FILE_BYTES });
    return { success: true, name, size, modified: f.modified, content: readFileSync(f.path, 'utf8') };
  });

  router.add('GET', `${P}/stream/boot`, (ctx) => {
    const sse = openDataSse(ctx.res);
    for (const e of boot.store.tail({ tail: tailParam(ctx.query, undefined), sinceMs: sinceParam(ctx.query) })) sse.send(eventView(e, 'boot'));
    sse.end();
    return undefined;
  });

  router.add('GET', `${P}/stream/cmd`, (ctx) => {
    const w = supervisor.cmdWorkload();
    const tail = tailParam(ctx.query, 200);
    if (!w) {
      openDataSse(ctx.res).end();
      return undefined;
    }
    // Same seam-free backlog + follow as a workload's stream, shaped as LogStreamEvents.
    streamWorkloadLogs(ctx, w, { tail, sinceMs: sinceParam(ctx.query), follow: 'auto', view: (e) => eventView(e, 'cmd') });
    return undefined;
  });
}
