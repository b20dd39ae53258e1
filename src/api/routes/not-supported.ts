/**
 * Oblien products other than workspaces (contract §28), and the workspace
 * features this server does not offer yet, answer one clear error instead
 * of a 404: `not_supported` (501) with the product's name and what to use
 * instead. The answer is the same with or without credentials: it reveals
 * nothing but the server's feature set.
 */
import type { FastifyInstance } from 'fastify';
import { HttpError, errorBody } from '../errors.ts';

export interface Unsupported {
  /** Base path: the base itself and everything below it answer. */
  base: string;
  product: string;
  hint: string;
}

export const UNSUPPORTED: readonly Unsupported[] = [
  { base: '/pages', product: 'Pages (static sites)', hint: 'serve the site from a workspace and expose its port: workspaces.publicAccess.expose(id, { port })' },
  { base: '/domain/routes/:hostname', product: 'the edge routing table', hint: 'route a hostname to a workspace port with workspaces.publicAccess.expose(id, { port, domain })' },
  { base: '/edge/proxies', product: 'edge proxies', hint: 'run the proxy in a workspace and expose its port' },
  { base: '/edge/verifications', product: 'edge proxy verifications', hint: 'custom domains of workspaces are verified by workspaces.domain.verify' },
  { base: '/edge/tunnels', product: 'edge tunnels (oblien tunnel, oblien serve)', hint: 'run the service in a workspace and expose its port with workspaces.publicAccess.expose(id, { port })' },
  { base: '/analytics', product: 'analytics', hint: 'read a workspace\'s metrics with workspaces.metrics and its edge logs with workspaces.logs' },
  { base: '/cdn', product: 'the CDN', hint: 'serve files from a workspace and expose its port' },
  { base: '/billing', product: 'billing', hint: 'usage and credits are reported by workspaces.usage and /credits' },
  { base: '/webhooks', product: 'webhooks', hint: 'follow workspace events with workspaces.logs.stream and poll workspaces.get(id)' },
  { base: '/notifications', product: 'push notifications', hint: 'send notifications from inside a workspace to your own service' },
  { base: '/workspace/:id/desktop', product: 'the workspace desktop', hint: 'run a desktop inside the workspace yourself and reach it over SSH port forwarding (workspaces.ssh.enable)' },
];

/** Registers every base (and everything below it) for every method. */
export function notSupportedRoutes(app: FastifyInstance, list: readonly Unsupported[] = UNSUPPORTED): void {
  for (const u of list) {
    for (const url of [u.base, `${u.base}/*`]) {
      app.route({
        method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'], url,
        handler: async (req, reply) => {
          const e = new HttpError('not_supported', `${u.product} is not offered by this server (self-hosted Hearth serves workspaces)`, { product: u.product, path: req.url.split('?')[0] }, u.hint);
          reply.code(e.status).send(errorBody(e, req.id));
        },
      });
    }
  }
}
