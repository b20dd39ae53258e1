/**
 * API key management (Hearth extension): create (secret shown once, stored
 * hashed), list, revoke. Keys may be bound to one namespace.
 */
import type { ApiContext } from '../context.ts';
import type { RouteTable } from '../route-table.ts';
import { bodyObject, param } from '../parse.ts';
import { createApiKey } from '../../auth/keys.ts';
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
    const key = await createApiKey(ctx.db, { name, admin, namespace });
    reply.code(201);
    return { success: true, key: { client_id: key.clientId, name, namespace, admin }, clientId: key.clientId, clientSecret: key.clientSecret };
  });
  r.add('GET', '/keys', 'admin', async () => {
    const rows = await ctx.db.selectFrom('api_keys').select(['client_id', 'name', 'namespace', 'is_admin', 'created_at', 'revoked_at']).orderBy('created_at').execute();
    return { success: true, keys: rows.map((k) => ({ ...k, is_admin: k.is_admin === 1 })) };
  });
  r.add('DELETE', '/keys/:id', 'admin', async (req, _reply, p) => {
    const id = param(req.params, 'id');
    if (id === p.clientId) throw new ValidationFailed('id', 'a key cannot revoke itself');
    const res = await ctx.db.updateTable('api_keys').set({ revoked_at: new Date().toISOString() }).where('client_id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new NotFound('api key', id);
    return { success: true, revoked: true, client_id: id };
  });
}
