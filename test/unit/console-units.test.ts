/** The console's pure parts and its bundle: cookie flags, the CSRF comparison, and that the browser code builds. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clearedCookies, csrfMatches, parseCookies, sessionCookies } from '../../src/console/cookies.ts';
import { buildConsoleBundle } from '../../src/console/bundle.ts';

test('the session cookie is HttpOnly and SameSite=Strict on /console; the CSRF cookie is readable and Strict too', () => {
  assert.deepEqual(sessionCookies('sid', 'tok', 60), [
    'hearth_console=sid; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict',
    'hearth_csrf=tok; Path=/console; Max-Age=60; SameSite=Strict',
  ]);
  assert.deepEqual(clearedCookies(), [
    'hearth_console=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict',
    'hearth_csrf=; Path=/console; Max-Age=0; SameSite=Strict',
  ]);
});

test('cookies parse as the browser sends them; the first of a repeated name wins; a malformed value is dropped', () => {
  assert.deepEqual(parseCookies('a=1; hearth_console=x%20y; a=2; bad=%E0%A4%A; =nameless; flag'), { a: '1', hearth_console: 'x y' });
  assert.deepEqual(parseCookies(undefined), {});
});

test('CSRF: header, cookie and session token must all be the same non-empty value', () => {
  const cases: [string, string | undefined, string | undefined, boolean][] = [
    ['t', 't', 't', true],
    ['t', 't', undefined, false], // no header: a cross-site form post
    ['t', undefined, 't', false],
    ['t', 'u', 'u', false], // a cookie planted with a value of the attacker's choosing
    ['t', 't', 'tt', false],
    ['', '', '', false],
  ];
  for (const [session, cookie, header, ok] of cases) assert.equal(csrfMatches(session, cookie, header), ok, JSON.stringify({ session, cookie, header }));
});

test('the browser code bundles: one script and one stylesheet, named by content hash', { timeout: 60_000 }, async () => {
  const b = await buildConsoleBundle();
  assert.match(b.script, /^app-[0-9a-f]{16}\.js$/);
  assert.match(b.style, /^app-[0-9a-f]{16}\.css$/);
  assert.deepEqual([...b.assets.keys()].sort(), [b.script, b.style].sort());
  const js = b.assets.get(b.script)!.body.toString();
  assert.ok(!/https?:\/\/(cdn|unpkg|jsdelivr)/.test(js), 'nothing is fetched from a CDN');
  assert.ok(b.assets.get(b.style)!.body.toString().includes('.xterm'), 'xterm\'s stylesheet is in');
});
