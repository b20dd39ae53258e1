/**
 * The image catalog (§19): `GET /workspace/images?search=&category=`.
 * Catalog builds, the seed's short names (with what they run right now and
 * the versions really inside) and every pulled or imported image.
 */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { queryString, type Json } from '../parse.ts';

export const IMAGE_CATEGORIES = [
  { id: 'all', label: 'All' }, { id: 'os', label: 'Operating systems' }, { id: 'runtime', label: 'Runtimes' },
  { id: 'devtools', label: 'Developer tools' }, { id: 'database', label: 'Databases' },
  { id: 'ai', label: 'AI' }, { id: 'browser', label: 'Browsers' }, { id: 'infra', label: 'Infrastructure' },
];

export function imageRoutes(r: RouteTable, ctx: ApiContext): void {
  r.add('GET', '/workspace/images', 'workspace:read', async (req) => {
    const q = req.query as Json;
    const search = queryString(q, 'search')?.toLowerCase();
    const category = queryString(q, 'category');
    let images = await ctx.workspaces.catalog();
    if (category && category !== 'all') images = images.filter((i) => i.category === category);
    if (search) {
      images = images.filter((i) => [i.id, i.image, i.label, i.desc, i.note ?? '', i.resolves_to ?? '', ...(i.capabilities ?? []), ...i.aliases, ...Object.entries(i.versions).flat()]
        .some((s) => s.toLowerCase().includes(search)));
    }
    return { success: true, images, categories: IMAGE_CATEGORIES };
  });
}
