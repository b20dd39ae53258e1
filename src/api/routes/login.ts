/**
 * `oblien login --base-url <hearth>`: the CLI's browser sign-in, served by
 * hearthd. The CLI asks for a session token (POST /auth/token), opens a
 * session (POST /auth/session → the URL of an approval page here) and polls
 * GET /auth/session/:id/poll. On the page the user pastes an API key of
 * this Hearth; once it checks out, the session token the CLI holds
 * authenticates as that key (re-checked on every call, so revoking the key
 * ends the login too). Sessions live in hearthd's memory: a restart ends
 * them and the CLI says to log in again. Unapproved sessions expire after
 * ten minutes.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../../auth/principal.ts';
import { HttpError } from '../errors.ts';

const PENDING_MS = 10 * 60_000;
const MAX_SESSIONS = 1000;
type Authenticate = (headers: Record<string, string | string[] | undefined>, ip: string) => Promise<Principal>;

interface LoginSession {
  id: string;
  token: string;
  createdAt: number;
  key: { clientId: string; clientSecret: string } | null;
}

export class LoginSessions {
  private readonly byToken = new Map<string, LoginSession>();
  private readonly byId = new Map<string, LoginSession>();

  private sweep(): void {
    const now = Date.now();
    for (const s of this.byToken.values()) if (!s.key && now - s.createdAt > PENDING_MS) this.drop(s);
  }

  private drop(s: LoginSession): void {
    this.byToken.delete(s.token);
    this.byId.delete(s.id);
  }

  /** The principal behind a login session token, or null when the request carries none. */
  async principal(req: FastifyRequest, authenticate: Authenticate): Promise<Principal | null> {
    const auth = req.headers.authorization;
    if (typeof auth !== 'string' || !auth.startsWith('Bearer hlogin_')) return null;
    const s = this.byToken.get(auth.slice(7));
    if (!s?.key) throw new HttpError('invalid_credentials', 'this login is not approved (or hearthd restarted): run oblien login again');
    return authenticate({ 'x-client-id': s.key.clientId, 'x-client-secret': s.key.clientSecret }, req.ip);
  }

  routes(app: FastifyInstance, authenticate: Authenticate): void {
    app.post('/auth/token', async () => {
      this.sweep();
      if (this.byToken.size >= MAX_SESSIONS) throw new HttpError('rate_limited', 'too many login sessions open; try again in a few minutes');
      const s: LoginSession = { id: `login_${randomBytes(12).toString('hex')}`, token: `hlogin_${randomBytes(32).toString('base64url')}`, createdAt: Date.now(), key: null };
      this.byToken.set(s.token, s);
      this.byId.set(s.id, s);
      return { success: true, token: s.token };
    });
    const session = (req: FastifyRequest): LoginSession => {
      const auth = req.headers.authorization;
      const s = typeof auth === 'string' && auth.startsWith('Bearer ') ? this.byToken.get(auth.slice(7)) : undefined;
      if (!s) throw new HttpError('invalid_credentials', 'unknown login session token: start again with POST /auth/token');
      return s;
    };
    app.post('/auth/session', async (req) => {
      const s = session(req);
      const origin = `${req.protocol}://${req.headers.host ?? req.hostname}`;
      return { success: true, id: s.id, url: `${origin}/auth/approve/${s.id}` };
    });
    app.get('/auth/session/:sid/poll', async (req) => {
      const s = session(req);
      if (s.id !== (req.params as { sid: string }).sid) throw new HttpError('forbidden', 'this token does not own that session');
      if (!s.key && Date.now() - s.createdAt > PENDING_MS) { this.drop(s); return { success: true, status: 'expired' }; }
      return { success: true, status: s.key ? 'authenticated' : 'pending' };
    });
    app.get('/auth/approve/:sid', async (req, reply) => {
      const s = this.byId.get((req.params as { sid: string }).sid);
      reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'").header('x-frame-options', 'DENY');
      return approvalPage(s ? (s.key ? 'done' : 'form') : 'missing', (req.params as { sid: string }).sid);
    });
    // A plain form post (no script): the browser sends the key, hearthd checks it and binds the session.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))));
    app.post('/auth/approve/:sid', async (req, reply) => {
      const sid = (req.params as { sid: string }).sid;
      const s = this.byId.get(sid);
      const b = (req.body ?? {}) as Record<string, string>;
      reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'").header('x-frame-options', 'DENY');
      if (!s || (!s.key && Date.now() - s.createdAt > PENDING_MS)) return approvalPage('missing', sid);
      if (s.key) return approvalPage('done', sid);
      const clientId = String(b.client_id ?? '').trim();
      const clientSecret = String(b.client_secret ?? '').trim();
      try {
        await authenticate({ 'x-client-id': clientId, 'x-client-secret': clientSecret }, req.ip);
      } catch {
        reply.code(401);
        return approvalPage('form', sid, 'That API key was not accepted.');
      }
      // Approved once, by the first valid key (an approved session shows "done" above).
      s.key = { clientId, clientSecret };
      return approvalPage('done', sid);
    });
  }
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function approvalPage(state: 'form' | 'done' | 'missing', sid: string, error?: string): string {
  const body = state === 'done'
    ? '<p>Signed in. You can close this page and return to the terminal.</p>'
    : state === 'missing'
      ? '<p>This login session does not exist or has expired. Run <code>oblien login</code> again.</p>'
      : `<p>Approve the CLI login by pasting an API key of this Hearth (for example the admin key in <code>credentials.json</code> of hearthd's data dir).</p>
${error ? `<p style="color:#b00">${escape(error)}</p>` : ''}
<form method="post" action="/auth/approve/${escape(sid)}">
<label>Client ID<br><input name="client_id" autocomplete="off" size="48" required></label><br><br>
<label>Client secret<br><input name="client_secret" type="password" autocomplete="off" size="48" required></label><br><br>
<button type="submit">Approve login</button>
</form>`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>Hearth — CLI login</title></head><body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Hearth CLI login</h1>${body}</body></html>`;
}
