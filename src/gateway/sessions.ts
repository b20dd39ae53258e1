/**
 * Live data-plane sessions (WebSockets and in-flight HTTP exchanges, which
 * include exec streams and downloads) by workspace. A request is admitted
 * once; a session lives on, so a sweep re-judges every workspace that has
 * any, once a second, and ends the sessions whose token (or the credential
 * that minted it) was revoked or whose workspace is no longer running. Polling the store (one primary-key
 * read per workspace with sessions) also covers every path that stops a
 * workspace — API, TTL reaper, reconcile, another process — without each
 * having to notify the gateway.
 */
import type { Workspace } from '../control/workspaces/row.ts';
import { judge, type Denial } from './access.ts';
import type { RuntimeGrant } from './tokens.ts';

export interface Session {
  grant: RuntimeGrant;
  /** End the session because of `denial` (revoked token, stopped workspace) or gateway shutdown (undefined). */
  end(denial: Denial | undefined): void;
}

export const SWEEP_MS = 1000;

export class SessionRegistry {
  private readonly byWorkspace = new Map<string, Set<Session>>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    private readonly lookup: (id: string) => Promise<Workspace | null>,
    private readonly issuerAlive: (issuer: RuntimeGrant['issuer']) => Promise<boolean>,
    private readonly intervalMs = SWEEP_MS,
  ) {}

  /** Track `s` until the returned function is called. */
  add(s: Session): () => void {
    let set = this.byWorkspace.get(s.grant.ws);
    if (!set) {
      set = new Set();
      this.byWorkspace.set(s.grant.ws, set);
    }
    set.add(s);
    this.ensureTimer();
    return () => {
      const cur = this.byWorkspace.get(s.grant.ws);
      if (!cur) return;
      cur.delete(s);
      if (cur.size === 0) this.byWorkspace.delete(s.grant.ws);
      if (this.byWorkspace.size === 0) this.stopTimer();
    };
  }

  get size(): number {
    let n = 0;
    for (const set of this.byWorkspace.values()) n += set.size;
    return n;
  }

  /** Re-judge every session now (the timer calls this; tests and shutdown may too). */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (const [id, set] of [...this.byWorkspace]) {
        let ws: Workspace | null;
        try {
          ws = await this.lookup(id);
        } catch {
          continue; // the store hiccuped: judge again next round
        }
        for (const s of [...set]) {
          let alive: boolean;
          try {
            alive = await this.issuerAlive(s.grant.issuer);
          } catch {
            continue;
          }
          const denial = judge(ws, s.grant, alive);
          if (denial) s.end(denial);
        }
      }
    } finally {
      this.sweeping = false;
    }
  }

  /** End every session (gateway shutdown). */
  closeAll(): void {
    this.stopTimer();
    for (const set of [...this.byWorkspace.values()]) for (const s of [...set]) s.end(undefined);
    this.byWorkspace.clear();
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => { void this.sweep(); }, this.intervalMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
