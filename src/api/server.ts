/**
 * The control plane: a fastify app serving the contract's routes at the
 * origin root (the SDK drops any base-URL path, §1.1).
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { ApiContext } from './context.ts';
import { RouteTable } from './route-table.ts';
import { HttpError, errorBody, toHttpError } from './errors.ts';
import { workspaceRoutes } from './routes/workspaces.ts';
import { runtimeAccessRoutes } from './routes/runtime-access.ts';
import { accountRoutes } from './routes/account.ts';
import { imageRoutes } from './routes/images.ts';
import { snapshotRoutes } from './routes/snapshots.ts';
import { usageRoutes } from './routes/usage.ts';
import { lifecycleRoutes } from './routes/lifecycle.ts';
import { namespaceRoutes } from './routes/namespaces.ts';
import { creditRoutes } from './routes/credits.ts';
import { keyRoutes } from './routes/keys.ts';
import { publicAccessRoutes } from './routes/public-access.ts';
import { domainRoutes } from './routes/domains.ts';
import { sshRoutes } from './routes/ssh.ts';
import { workloadRoutes } from './routes/workloads.ts';
import { logRoutes } from './routes/logs.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { closeAllStreams } from './sse.ts';
import { resourceRoutes } from './routes/resources.ts';
import { notSupportedRoutes } from './routes/not-supported.ts';

export interface ApiApp {
  app: FastifyInstance;
  routes: RouteTable;
}

export function buildApi(ctx: ApiContext): ApiApp {
  const app = Fastify({
    loggerInstance: ctx.log.child({ plane: 'api' }) as unknown as FastifyBaseLogger,
    disableRequestLogging: false,
    genReqId: () => `req_${randomUUID().replace(/-/g, '').slice(0, 16)}`,
    bodyLimit: 1024 * 1024,
  });

  // The SDK sends `Content-Type: application/json` on every request, bodyless
  // POSTs included (§1.2): an empty body means {}.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new HttpError('bad_request', 'request body is not valid JSON'), undefined);
    }
  });

  app.setErrorHandler((err, req, reply) => {
    let httpErr: HttpError;
    const fe = err as { statusCode?: number; code?: string; message?: string };
    if (err instanceof HttpError) httpErr = err;
    else if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') httpErr = new HttpError('payload_too_large', 'request body too large (limit 1 MiB)');
    else if (fe.code?.startsWith('FST_ERR_CTP') || fe.statusCode === 400 || fe.statusCode === 415) httpErr = new HttpError('bad_request', fe.message ?? 'bad request');
    else httpErr = toHttpError(err);
    if (httpErr.status >= 500) req.log.error({ err }, 'request failed');
    if (httpErr.code === 'rate_limited' && typeof httpErr.details?.retry_after === 'number') reply.header('retry-after', String(httpErr.details.retry_after));
    reply.code(httpErr.status).send(errorBody(httpErr, req.id));
  });

  app.setNotFoundHandler((req, reply) => {
    const e = new HttpError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`);
    reply.code(404).send(errorBody(e, req.id));
  });

  const routes = new RouteTable(app, (req) => ctx.keys.authenticate(req.headers, req.ip), (p, id) => ctx.workspaces.find(p, id), ctx.streamRecheckMs);
  if (ctx.activity) {
    const activity = ctx.activity;
    routes.audit = ({ decl, principal, req, status, errorCode }) => {
      const id = (req.params as Record<string, unknown>).id;
      void activity.record({
        principal, action: `${decl.method} ${decl.url}`, path: req.url.split('?')[0]!, status, errorCode, requestId: req.id, ip: req.ip,
        workspaceId: decl.url.startsWith('/workspace/:id') && typeof id === 'string' ? decodeURIComponent(id) : null,
      });
    };
  }
  routes.add('GET', '/health', 'public', async () => ({ success: true, status: 'ok' }));
  const pub = ctx.publicServices;
  workspaceRoutes(routes, ctx, pub.publicAccess);
  runtimeAccessRoutes(routes, ctx);
  accountRoutes(routes, ctx);
  imageRoutes(routes, ctx);
  snapshotRoutes(routes, ctx);
  usageRoutes(routes, ctx);
  lifecycleRoutes(routes, ctx, { minIdleSeconds: ctx.minIdleSeconds ?? 120 });
  namespaceRoutes(routes, ctx);
  creditRoutes(routes, ctx);
  keyRoutes(routes, ctx);
  publicAccessRoutes(routes, pub.publicAccess);
  domainRoutes(routes, pub.publicAccess);
  sshRoutes(routes, pub.ssh);
  workloadRoutes(routes, ctx);
  logRoutes(routes, ctx);
  metricsRoutes(routes, ctx);
  resourceRoutes(routes, ctx);
  notSupportedRoutes(app);
  // Long-lived SSE replies are hijacked: end them, or close() would wait for them forever.
  app.addHook('preClose', async () => closeAllStreams(app));
  return { app, routes };
}
