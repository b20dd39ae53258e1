/** Watcher routes (spec §22.7): the SDK reads `res.watcher` / `res.watchers`. */
import { readJson } from '../http/body.ts';
import type { Ctx, Handler } from '../http/context.ts';
import { listParam } from '../../core/agent-protocol/params.ts';
import { resolvePath } from '../files/paths.ts';
import type { Router } from '../router.ts';
import type { WatcherService } from './service.ts';

export function registerWatcherRoutes(router: Router<Handler>, watchers: WatcherService): void {
  router.add('POST', '/watchers', async ({ req }: Ctx) => {
    const body = await readJson(req);
    const root = resolvePath(body.path ?? body.root);
    const excludes = listParam(body.excludes ?? body.exclude, 'excludes') ?? [];
    const watcher = await watchers.create(root, excludes);
    setImmediate(() => watcher.announce());
    return { success: true, watcher: watcher.toJSON() };
  });

  router.add('GET', '/watchers', () => ({ success: true, watchers: watchers.list().map((w) => w.toJSON()) }));

  router.add('GET', '/watchers/:id', ({ params }: Ctx) => ({ success: true, watcher: watchers.get(params.id as string).toJSON() }));

  router.add('DELETE', '/watchers/:id', ({ params }: Ctx) => {
    watchers.delete(params.id as string);
    return { success: true, watcher_id: params.id };
  });
}
