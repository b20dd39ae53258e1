/**
 * The control plane in-process for grant tests: SQLite :memory:, a fake host
 * whose every workspace is served by one REAL agent on loopback (so workload
 * and log routes do what they do in production), an admin API key, and scoped
 * tokens minted through POST /tokens exactly as a client gets them.
 */
import { agentClientFor } from '../../src/control/workloads.ts';
import { defaultPublicServices } from '../../src/control/public-services.ts';
import assert from 'node:assert/strict';
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
import { ERROR_STATUS } from '../../src/api/errors.ts';
import { FakeHost } from './fake-host.ts';
import { startTestAgent, type TestAgent } from '../helpers/agent-harness.ts';

export const ALL = { create: true, destroy: true, runtime: true, expose: true, manage: true } as const;
export type Grant = keyof typeof ALL;

class AgentBackedHost extends FakeHost {
  port = 0;
  override agentEndpoint() { return { ip: '127.0.0.1', port: this.port }; }
}

export interface Reply {
  status: number;
  json: Record<string, any>;
}

export interface GrantsHarness {
  db: Db;
  api: ApiApp;
  host: FakeHost;
  service: WorkspaceService;
  agent: TestAgent;
  admin: Record<string, string>;
  call(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  /** A workspace made by the admin key, served by the test agent. */
  workspace(body?: Record<string, unknown>): Promise<string>;
  /** Bearer headers of a token minted by the admin key. */
  token(body: Record<string, unknown>): Promise<Record<string, string>>;
  close(): Promise<void>;
}

/** The contract's error shape (§1.4, §2.1) on every reply, success included. */
export function assertContractShape(method: string, url: string, status: number, json: Record<string, unknown>): void {
  if (status >= 400) {
    assert.equal(json.success, false, `${method} ${url} ${status}: error body must carry success:false`);
    assert.equal(typeof json.code, 'string', `${method} ${url}: code`);
    assert.equal(typeof json.message, 'string', `${method} ${url}: message`);
    assert.equal(ERROR_STATUS[json.code as keyof typeof ERROR_STATUS], status, `${method} ${url}: status of ${String(json.code)}`);
  } else {
    assert.equal(json.success, true, `${method} ${url}: success body must carry success:true`);
  }
}

export async function startGrantsHarness(opts: { streamRecheckMs?: number } = {}): Promise<GrantsHarness> {
  const agent = await startTestAgent();
  const host = new AgentBackedHost();
  host.port = agent.agent.port;
  const db = await openTestStore();
  const log = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
  const namespaces = new NamespaceService(db, log, () => service);
  const service: WorkspaceService = new WorkspaceService(db, host, log, { ...DEFAULT_SERVICE_OPTIONS, fastPathMs: 2000, slotRestMs: 0 }, { admission: namespaces });
  const signer = new TokenSigner('grants-test');
  const api = buildApi({ workspaces: service, namespaces, usage: new UsageReports(db), meter: null, agent: agentClientFor(host), publicServices: defaultPublicServices({ db, workspaces: service, log }), signer, keys: new ApiKeys(db, signer), snapshots: new SnapshotService(db, host, service, log), log, runtimeUrl: () => 'http://gw', streamRecheckMs: opts.streamRecheckMs });
  const key = await createApiKey(db, { name: 'admin', admin: true });
  const admin = { 'x-client-id': key.clientId, 'x-client-secret': key.clientSecret };

  const call = async (method: string, url: string, body?: unknown, headers: Record<string, string> = admin): Promise<Reply> => {
    const res = await api.app.inject({
      method: method as 'GET', url, headers: { 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const json = res.json() as Record<string, any>;
    assertContractShape(method, url, res.statusCode, json);
    return { status: res.statusCode, json };
  };
  return {
    db, api, host, service, agent, admin, call,
    async workspace(body = {}) {
      const r = await call('POST', '/workspace', { image: 'debian-12', ...body });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      const id = r.json.workspace.id as string;
      await db.updateTable('workspaces').set({ agent_secret: agent.secret }).where('id', '=', id).execute();
      return id;
    },
    async token(body) {
      const r = await call('POST', '/tokens', { ttl: 3600, ...body });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return { authorization: `Bearer ${r.json.token as string}` };
    },
    async close() {
      await api.app.close();
      await agent.close();
      await db.destroy();
    },
  };
}

/** Whether a reply is the route table refusing the call for lack of this grant. */
export function refusedFor(r: Reply, grant: Grant): boolean {
  return r.status === 403 && r.json.code === 'forbidden' && String(r.json.message).includes(`permissions.${grant}`);
}
