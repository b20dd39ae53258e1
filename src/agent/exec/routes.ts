/** Exec routes (spec §22.5). Thin: parse, call ExecService, shape the reply. */
import { AGENT_ROUTES } from '../../core/agent-protocol.ts';
import { readJson, readRaw } from '../http/body.ts';
import type { Ctx, Handler } from '../http/context.ts';
import { boolParam, q } from '../../core/agent-protocol/params.ts';
import { openSse, type SseStream } from '../http/reply.ts';
import { validation } from '../../core/agent-protocol/errors.ts';
import type { Router } from '../router.ts';
import { parseExecRequest } from './request.ts';
import type { ExecService } from './service.ts';
import type { ExecTask } from './task.ts';

const STDIN_BODY_LIMIT = 16 * 1024 * 1024;

const SIGNALS = new Set(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGSTOP', 'SIGCONT']);

function taskBody(task: ExecTask): object {
  return { success: true, ...task.toJSON(true) };
}

/** Stream a task's events to an SSE client: replay (when asked), then live, then exit. */
function pipeTask(task: ExecTask, sse: SseStream, replay: boolean): void {
  sse.event('task_id', { task_id: task.id });
  if (replay) {
    for (const c of task.output.replay()) sse.event(c.stream, { data: c.data.toString('base64') });
  }
  if (task.finished) {
    sse.event('exit', task.exitEvent());
    sse.end();
    return;
  }
  // Replay and subscription happen in the same tick: no chunk is lost or doubled.
  const unsubscribe = task.subscribe((ev) => {
    if (ev.type === 'output') sse.event(ev.stream, { data: ev.data.toString('base64') });
    else {
      sse.event('exit', task.exitEvent());
      sse.end();
    }
  });
  // The client leaving only stops the stream; the task runs on (spec §22.5).
  void sse.closed.then(unsubscribe);
}

export function registerExecRoutes(router: Router<Handler>, exec: ExecService): void {
  router.add('POST', '/exec', async ({ req }: Ctx) => {
    const spec = parseExecRequest(await readJson(req));
    const task = exec.start(spec, false);
    if (task.finished) return taskBody(task);
    // Build the body inside the exit callback: keep_logs:false clears output right after.
    return new Promise<object>((resolve) => {
      task.subscribe((ev) => { if (ev.type === 'exit') resolve(taskBody(task)); });
    });
  });

  router.add('POST', AGENT_ROUTES.execStream, async ({ req, res }: Ctx) => {
    const spec = parseExecRequest(await readJson(req));
    const task = exec.start(spec, true);
    pipeTask(task, openSse(res), true);
    return undefined;
  });

  router.add('GET', AGENT_ROUTES.execStream, ({ query, res }: Ctx) => {
    const id = q(query, 'task_id') ?? q(query, 'id');
    if (!id) throw validation('task_id', 'task_id is required');
    const task = exec.get(id);
    pipeTask(task, openSse(res), true);
    return undefined;
  });

  router.add('GET', '/exec', () => ({ success: true, tasks: exec.list().map((t) => t.toJSON(false)) }));

  router.add('DELETE', '/exec', () => ({ success: true, deleted: exec.removeAll() }));

  router.add('GET', AGENT_ROUTES.execTask, ({ params }: Ctx) => taskBody(exec.get(params.taskId as string)));

  router.add('DELETE', AGENT_ROUTES.execTask, ({ params, query }: Ctx) => {
    const id = params.taskId as string;
    const signal = (q(query, 'signal') ?? 'SIGKILL').toUpperCase();
    const name = signal.startsWith('SIG') ? signal : `SIG${signal}`;
    if (!SIGNALS.has(name)) throw validation('signal', `unsupported signal ${signal}`);
    exec.remove(id, name as NodeJS.Signals);
    return { success: true, task_id: id };
  });

  router.add('POST', AGENT_ROUTES.execInput, async ({ req, params, query }: Ctx) => {
    const task = exec.get(params.taskId as string);
    const data = await readRaw(req, STDIN_BODY_LIMIT);
    const eof = boolParam(q(query, 'eof'), 'eof') ?? false;
    const written = await task.write(data, eof);
    return { success: true, task_id: task.id, bytes_written: written };
  });
}
