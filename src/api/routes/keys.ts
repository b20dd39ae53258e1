/**
 * API key management (Hearth extension): create (secret shown once, stored
 * hashed), list, revoke. Keys may be bound to one namespace.
 */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { bodyObject, param } from '../parse.ts';
import { NotFound, ValidationFailed } from '../../core/errors.ts';

export function keyRoutes(r: RouteTable, ctx: ApiContext): void {
  r.add('POST', '/keys', 'admin', async (req, reply, p) => {
    const b = bodyObject(req.body);
    const name = typeof b.name === 'string' && b.name ? b.name.slice(0, 200) : 'api key';
    let namespace: string | null = null;
    if (b.namespace !== undefined && b.namespace !== null) {
      if (typeof b.namespace !== 'string') throw new ValidationFailed('namespace', 'namespace must be a slug or id');
      namespace = (await ctx.namespaces.find(p, b.namespace)).slug;
    }
    const admin = b.admin === true && namespace === null;
    const key = await ctx.keys.create({ name, admin, namespace });
    reply.code(201);
    return { success: true, key: { client_id: key.clientId, name, namespace, admin }, clientId: key.clientId, clientSecret: key.clientSecret };
  });
  r.add('GET', '/keys', 'admin', async () => {
    return { success: true, keys: await ctx.keys.list() };
  });
  r.add('DELETE', '/keys/:id', 'admin', async (req, _reply, p) => {
    const id = param(req.params, 'id');
    if (id === p.clientId) throw new ValidationFailed('id', 'a key cannot revoke itself');
    if (!(await ctx.keys.revoke(id))) throw new NotFound('api key', id);
    return { success: true, revoked: true, client_id: id };
  });
}
