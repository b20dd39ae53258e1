/** Frame-boundary tracking of relayed WebSockets, tokens in requests, admission (gateway pure parts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameBoundaries, closeFrame } from '../../src/gateway/ws-frames.ts';
import { requestToken, withoutToken, TokenCache } from '../../src/gateway/tokens.ts';
import { judge } from '../../src/gateway/access.ts';
import { TokenSigner } from '../../src/auth/jwt.ts';
import type { Workspace } from '../../src/control/workspaces/row.ts';

const HEAD = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');

/** A server → client frame (unmasked) with `n` payload bytes. */
function frame(opcode: number, n: number): Buffer {
  const len = n < 126 ? Buffer.from([n]) : n < 65536 ? Buffer.from([126, n >> 8, n & 0xff]) : (() => {
    const b = Buffer.alloc(9);
    b[0] = 127;
    b.writeBigUInt64BE(BigInt(n), 1);
    return b;
  })();
  return Buffer.concat([Buffer.from([0x80 | opcode]), len, Buffer.alloc(n, 0x61)]);
}

test('frame boundaries: head, small/16-bit/64-bit lengths, any chunking', () => {
  const stream = Buffer.concat([HEAD, frame(2, 5), frame(1, 300), frame(2, 70_000), frame(9, 0)]);
  const ends = [HEAD.length];
  for (const f of [frame(2, 5), frame(1, 300), frame(2, 70_000), frame(9, 0)]) ends.push(ends[ends.length - 1]! + f.length);
  for (const size of [1, 2, 3, 7, 13, 512, 65_536, stream.length]) {
    const fb = new FrameBoundaries();
    const seen: number[] = [];
    let pos = 0;
    while (pos < stream.length) {
      const chunk = stream.subarray(pos, pos + size);
      // Feed byte by byte within the chunk only to record boundaries; the chunked call is what we test.
      let off = 0;
      while (off < chunk.length) {
        const n = fb.advance(chunk.subarray(off), true);
        if (n === 0 && fb.atBoundary) {
          // at a boundary at the start: step over the next byte without stopping
          off += fb.advance(chunk.subarray(off, off + 1));
        } else {
          off += n;
        }
        if (fb.atBoundary && !seen.includes(pos + off)) seen.push(pos + off);
      }
      pos += chunk.length;
    }
    assert.deepEqual(seen, ends, `chunk size ${size}`);
    assert.equal(fb.isWebSocket, true);
    assert.equal(fb.sawClose, false);
  }
});

test('frame boundaries: mid-frame is not a boundary; a close frame from the agent is noticed; a refused upgrade is not a WebSocket', () => {
  const fb = new FrameBoundaries();
  fb.advance(HEAD);
  assert.equal(fb.atBoundary, true);
  const f = frame(2, 1000);
  fb.advance(f.subarray(0, 10));
  assert.equal(fb.atBoundary, false);
  assert.equal(fb.advance(Buffer.concat([f.subarray(10), frame(2, 3)]), true), f.length - 10, 'stops exactly where the frame ends');
  assert.equal(fb.atBoundary, true);
  fb.advance(closeFrame(1000, 'bye'));
  assert.equal(fb.sawClose, true);

  const refused = new FrameBoundaries();
  refused.advance(Buffer.from('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n'));
  assert.equal(refused.isWebSocket, false);
  assert.equal(refused.atBoundary, false);
});

test('closeFrame: unmasked, code, reason', () => {
  assert.deepEqual([...closeFrame(1008, 'runtime token revoked')], [0x88, 23, 0x03, 0xf0, ...Buffer.from('runtime token revoked')]);
  assert.equal(closeFrame(1001, 'x'.repeat(500)).length, 2 + 2 + 123, 'control frame payload ≤ 125 bytes');
});

test('requestToken / withoutToken: header first, query second, token never forwarded', () => {
  assert.equal(requestToken('Bearer abc.def', '/ws?token=zzz'), 'abc.def');
  assert.equal(requestToken('bearer   abc ', '/'), 'abc');
  assert.equal(requestToken(undefined, '/ws?x=1&token=q%2Bt'), 'q+t');
  assert.equal(requestToken(undefined, '/ws'), null);
  assert.equal(requestToken('Basic Zm9v', '/files'), null);
  assert.equal(withoutToken('/ws?token=abc'), '/ws');
  assert.equal(withoutToken('/proxy/api?token=abc&x_oblien_target=3000&q=1'), '/proxy/api?x_oblien_target=3000&q=1');
  assert.equal(withoutToken('/files/read?path=%2Fetc%2Fhosts'), '/files/read?path=%2Fetc%2Fhosts', 'untouched when there is no token');
});

test('TokenCache: verifies once, refuses expired and non-runtime tokens, stays bounded', async () => {
  const signer = new TokenSigner('s'.repeat(48));
  let verifies = 0;
  let now = Date.now();
  const counting = { verify: async (t: string) => { verifies++; return signer.verify(t); } };
  const cache = new TokenCache(counting, 2, () => now);
  const { token } = await signer.sign({ kind: 'runtime', ws: 'ws_a', gen: 3, issuer: { key: 'hk_a', token: 'jti_1' } }, 60);
  assert.deepEqual({ ...(await cache.verify(token))!, expMs: 0 }, { ws: 'ws_a', gen: 3, expMs: 0, issuer: { key: 'hk_a', token: 'jti_1' } });
  await cache.verify(token);
  assert.equal(verifies, 1, 'second use hits the cache');
  now += 61_000;
  assert.equal(await cache.verify(token), null, 'an expired cached token is refused');
  now = Date.now();
  const access = await signer.sign({ kind: 'access', sub: 'k', scope: 'account' }, 60);
  assert.equal(await cache.verify(access.token), null, 'control-plane tokens are not runtime tokens');
  const other = await new TokenSigner('t'.repeat(48)).sign({ kind: 'runtime', ws: 'ws_a', gen: 3 }, 60);
  assert.equal(await cache.verify(other.token), null, 'a token signed with another key');
  const expired = await signer.sign({ kind: 'runtime', ws: 'ws_a', gen: 3 }, -5);
  assert.equal(await cache.verify(expired.token), null);
  for (const ws of ['ws_b', 'ws_c', 'ws_d']) await cache.verify((await signer.sign({ kind: 'runtime', ws, gen: 1 }, 60)).token);
  assert.ok(cache.size <= 2);
});

test('judge: revoked vs unavailable vs admitted', () => {
  const ws = { id: 'ws_a', state: 'running', runtimeEnabled: true, runtimeTokenGen: 2, slotIndex: 4 } as Workspace;
  const grant = { ws: 'ws_a', gen: 2, expMs: Date.now() + 60_000, issuer: { key: 'hk_a', token: null } };
  assert.equal(judge(ws, grant, true), null);
  assert.equal(judge(ws, { ...grant, gen: 1 }, true)?.kind, 'revoked', 'rotated');
  assert.equal(judge({ ...ws, runtimeEnabled: false }, grant, true)?.kind, 'revoked', 'disabled');
  assert.equal(judge(null, grant, true)?.kind, 'revoked', 'gone');
  assert.equal(judge({ ...ws, state: 'deleting' }, grant, true)?.kind, 'revoked');
  assert.equal(judge(ws, { ...grant, expMs: Date.now() - 1 }, true)?.kind, 'revoked', 'expired while a session lives');
  assert.deepEqual(judge({ ...ws, state: 'stopped' }, grant, true), { kind: 'unavailable', message: 'workspace ws_a is stopped', state: 'stopped' });
  assert.equal(judge({ ...ws, state: 'paused' }, grant, true)?.kind, 'unavailable');
  assert.equal(judge(ws, grant, false)?.kind, 'revoked', 'its issuer was revoked');
});
