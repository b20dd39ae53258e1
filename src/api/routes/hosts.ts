/**
 * Hosts of the store (Hearth extension, issue 19), admin API keys only:
 * list them with health and load, drain one (no new placements; what runs
 * there keeps running) and undrain it.
 */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { param } from '../parse.ts';
import { NotFound } from '../../core/errors.ts';

export function hostRoutes(r: RouteTable, ctx: ApiContext): void {
  r.add('GET', '/hearth/hosts', 'admin', async () => ({ success: true, hosts: ctx.hosts ? await ctx.hosts.list() : [] }));
  for (const [verb, draining] of [['drain', true], ['undrain', false]] as const) {
    r.add('POST', `/hearth/hosts/:name/${verb}`, 'admin', async (req) => {
      const name = param(req.params, 'name');
      if (!ctx.hosts) throw new NotFound('host', name);
      return { success: true, host: await ctx.hosts.setDraining(name, draining) };
    });
  }
}
