/**
 * The console's two cookies. `hearth_console` holds the session id:
 * HttpOnly (page scripts never see it) and SameSite=Strict (no other site's
 * page can make the browser send it). `hearth_csrf` holds the session's CSRF
 * token and is readable by the page, which echoes it in the X-CSRF-Token
 * header of every state-changing request (double submit); the server also
 * compares it with the token stored with the session. Pure.
 */
import { timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'hearth_console';
export const CSRF_COOKIE = 'hearth_csrf';
export const CSRF_HEADER = 'x-csrf-token';
const PATH = '/console';

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!name || name in out) continue;
    try {
      out[name] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      // A malformed value is no value.
    }
  }
  return out;
}

export function sessionCookies(sessionId: string, csrf: string, maxAgeS: number): string[] {
  return [
    `${SESSION_COOKIE}=${sessionId}; Path=${PATH}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict`,
    `${CSRF_COOKIE}=${csrf}; Path=${PATH}; Max-Age=${maxAgeS}; SameSite=Strict`,
  ];
}

export function clearedCookies(): string[] {
  return [
    `${SESSION_COOKIE}=; Path=${PATH}; Max-Age=0; HttpOnly; SameSite=Strict`,
    `${CSRF_COOKIE}=; Path=${PATH}; Max-Age=0; SameSite=Strict`,
  ];
}

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** Header, cookie and the session's own token must all be the same non-empty value. */
export function csrfMatches(sessionCsrf: string, cookie: string | undefined, header: string | undefined): boolean {
  if (!cookie || !header || !sessionCsrf) return false;
  return same(header, cookie) && same(header, sessionCsrf);
}
