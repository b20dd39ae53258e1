/** Terminal routes (spec §22.6). Input, output and resize travel only over /ws. */
import { AGENT_ROUTES } from '../../core/agent-protocol.ts';
import { validation } from '../../core/agent-protocol/errors.ts';
import { readJson } from '../http/body.ts';
import type { Ctx, Handler } from '../http/context.ts';
import { intParam, q } from '../../core/agent-protocol/params.ts';
import type { Router } from '../router.ts';
import { clampDim, DEFAULT_SCROLLBACK, MAX_SCROLLBACK, type TerminalService, type TerminalSpec } from './service.ts';
import { resolvePath } from '../files/paths.ts';

function parseTerminalSpec(body: Record<string, unknown>): TerminalSpec {
  let cmd: string[] | undefined;
  const rawCmd = body.cmd ?? (typeof body.shell === 'string' ? [body.shell] : undefined);
  if (rawCmd !== undefined) {
    if (typeof rawCmd === 'string') cmd = [rawCmd];
    else if (Array.isArray(rawCmd) && rawCmd.every((a) => typeof a === 'string') && rawCmd.length > 0) cmd = rawCmd as string[];
    else throw validation('cmd', 'cmd must be a non-empty array of strings');
  }
  const spec: TerminalSpec = {
    cols: clampDim(intParam(body.cols, 'cols', 0, 100_000), 80),
    rows: clampDim(intParam(body.rows, 'rows', 0, 100_000), 24),
    scrollbackSize: intParam(body.scrollback_size, 'scrollback_size', 0, MAX_SCROLLBACK) || DEFAULT_SCROLLBACK,
  };
  if (cmd) spec.cmd = cmd;
  if (body.cwd !== undefined) spec.cwd = resolvePath(body.cwd, 'cwd');
  if (body.env && typeof body.env === 'object' && !Array.isArray(body.env)) {
    spec.env = Object.fromEntries(Object.entries(body.env as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
  }
  return spec;
}

export function registerTerminalRoutes(router: Router<Handler>, terminals: TerminalService): void {
  router.add('POST', AGENT_ROUTES.terminals, async ({ req }: Ctx) => {
    const term = await terminals.create(parseTerminalSpec(await readJson(req)));
    return { success: true, ...term.toJSON() };
  });

  router.add('GET', AGENT_ROUTES.terminals, () => ({ success: true, terminals: terminals.list().map((t) => t.toJSON()) }));

  router.add('GET', AGENT_ROUTES.terminal, ({ params }: Ctx) => ({ success: true, ...terminals.get(params.id as string).toJSON() }));

  router.add('DELETE', AGENT_ROUTES.terminal, ({ params }: Ctx) => {
    const term = terminals.close(params.id as string);
    return { success: true, terminal_id: String(term.id) };
  });

  router.add('GET', '/terminals/:id/scrollback', ({ params, query }: Ctx) => {
    const term = terminals.get(params.id as string);
    const bytes = intParam(q(query, 'bytes'), 'bytes', 0, MAX_SCROLLBACK);
    const data = term.scrollback.tail(bytes || undefined);
    return { success: true, terminal_id: String(term.id), scrollback: data.toString('base64'), size: data.length, alive: term.alive, exit_code: term.exitCode ?? null };
  });

  // Swift-SDK extensions: clear and resize the scrollback buffer.
  router.add('DELETE', '/terminals/:id/scrollback', ({ params }: Ctx) => {
    const term = terminals.get(params.id as string);
    term.scrollback.clear();
    return { success: true, terminal_id: String(term.id), scrollback_size: term.scrollback.capacity };
  });

  router.add('PATCH', '/terminals/:id/scrollback', async ({ req, params }: Ctx) => {
    const term = terminals.get(params.id as string);
    const size = intParam((await readJson(req)).scrollback_size, 'scrollback_size', 0, 262_144);
    if (size === undefined) throw validation('scrollback_size', 'scrollback_size is required');
    term.scrollback.resize(size);
    return { success: true, terminal_id: String(term.id), scrollback_size: term.scrollback.capacity };
  });
}
