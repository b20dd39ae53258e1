/**
 * The control-plane API as the unit tests drive it: a real fastify app over
 * a real in-memory SQLite store, the real services and the real API keys,
 * in front of FakeHost (no sandboxes: what a host does is not under test
 * here). `call` goes through fastify's inject, headers and all.
 */
import pino from 'pino';
import type { Db } from '../../src/store/db.ts';
import { openTestStore } from '../helpers/store.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import { SnapshotService } from '../../src/control/snapshots.ts';
import { ApiKeys, createApiKey } from '../../src/auth/keys.ts';
import { WorkspaceService, DEFAULT_SERVICE_OPTIONS } from '../../src/control/workspaces/index.ts';
import { NamespaceService } from '../../src/control/namespaces.ts';
import { UsageReports } from '../../src/control/usage.ts';
import { buildApi, type ApiApp } from '../../src/api/server.ts';
import { agentClientFor } from '../../src/control/workloads.ts';
import { defaultPublicServices } from '../../src/control/public-services.ts';
import { FakeHost } from './fake-host.ts';

export interface ApiHarness {
  db: Db;
  api: ApiApp;
  host: FakeHost;
  /** Headers of the admin API key made at start. */
  admin: Record<string, string>;
  call(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; json: Record<string, any> }>;
  close(): Promise<void>;
}

export async function startApi(secret = 'api-harness'): Promise<ApiHarness> {
  const db = await openTestStore();
  const host = new FakeHost();
  const log = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
  const namespaces = new NamespaceService(db, log, () => workspaces);
  const workspaces: WorkspaceService = new WorkspaceService(db, host, log, DEFAULT_SERVICE_OPTIONS, { admission: namespaces });
  const signer = new TokenSigner(secret);
  const api = buildApi({
    workspaces, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host),
    publicServices: defaultPublicServices({ db, workspaces, log }), signer, keys: new ApiKeys(db, signer),
    snapshots: new SnapshotService(db, host, workspaces, log), log, runtimeUrl: () => null,
  });
  const key = await createApiKey(db, { name: 'admin', admin: true });
  return {
    db, api, host,
    admin: { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret },
    async call(method, url, headers, body) {
      const res = await api.app.inject({ method, url, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
      return { status: res.statusCode, json: res.json() as Record<string, any> };
    },
    async close() {
      await api.app.close();
      await db.destroy();
    },
  };
}
