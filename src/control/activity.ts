/**
 * The account's activity log behind usage.activity (GET /workspace/activity):
 * one row per state-changing control-plane call — who (API key client id,
 * or the key behind a token), what (the route and the workspace it named),
 * when, and the result (status, error code). Written after the answer is
 * sent, so logging never slows or fails a call; read back within the
 * caller's scope only.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database, Db } from '../store/db.ts';
import type { Principal } from '../auth/principal.ts';

export interface ActivityLogTable {
  id: string;
  at: string;
  actor: string;
  actor_kind: string;
  namespace: string | null;
  workspace_id: string | null;
  action: string;
  path: string;
  status: number;
  result: string;
  error_code: string | null;
  request_id: string | null;
  ip: string | null;
}

type ActivityDb = Kysely<Database & { activity_log: ActivityLogTable }>;

export interface ActivityEntry {
  principal: Principal;
  /** The route as declared: "POST /workspace/:id/stop". */
  action: string;
  path: string;
  workspaceId: string | null;
  status: number;
  errorCode: string | null;
  requestId: string | null;
  ip: string | null;
}

/** Entries older than this are dropped on write (the log is a history, not an archive). */
const KEEP_DAYS = 90;

export class ActivityLog {
  private readonly db: ActivityDb;
  private writes = 0;

  constructor(db: Db, private readonly log: Logger) {
    this.db = db.withTables<{ activity_log: ActivityLogTable }>();
  }

  /** Record one call; never throws (a failed write is logged). */
  async record(e: ActivityEntry): Promise<void> {
    try {
      await this.db.insertInto('activity_log').values({
        id: `act_${randomUUID().replace(/-/g, '').slice(0, 20)}`, at: new Date().toISOString(),
        actor: e.principal.clientId, actor_kind: e.principal.kind, namespace: e.principal.namespace,
        workspace_id: e.workspaceId ?? e.principal.workspaceId, action: e.action, path: e.path.slice(0, 500),
        status: e.status, result: e.status < 400 ? 'ok' : 'error', error_code: e.errorCode, request_id: e.requestId, ip: e.ip,
      }).execute();
      if (++this.writes % 500 === 0) {
        const cutoff = new Date(Date.now() - KEEP_DAYS * 86_400_000).toISOString();
        await this.db.deleteFrom('activity_log').where('at', '<', cutoff).execute();
      }
    } catch (err) {
      this.log.warn({ err, action: e.action }, 'activity log write failed');
    }
  }

  /** Newest first, within what `p` may see: its workspace, its namespace, or (account keys) everything. */
  async list(p: Principal, q: { limit: number; offset: number; workspaceId?: string }): Promise<Record<string, unknown>[]> {
    let query = this.db.selectFrom('activity_log').selectAll();
    if (p.workspaceId !== null) query = query.where('workspace_id', '=', p.workspaceId);
    else if (p.namespace !== null) query = query.where('namespace', '=', p.namespace);
    if (q.workspaceId) query = query.where('workspace_id', '=', q.workspaceId);
    const rows = await query.orderBy('at', 'desc').orderBy('id', 'desc').limit(q.limit).offset(q.offset).execute();
    return rows.map((r) => ({
      id: r.id, created_at: r.at, actor: r.actor, actor_kind: r.actor_kind, namespace: r.namespace, workspace_id: r.workspace_id,
      action: r.action, path: r.path, status: r.status, result: r.result, error_code: r.error_code, request_id: r.request_id, ip_address: r.ip,
    }));
  }
}
