import { test } from 'node:test';
import assert from 'node:assert/strict';
import { edgePageHtml, edgePageRaw } from '../../src/edge/pages.ts';

test('edge pages: literal HTML (golden), details escaped', () => {
  assert.equal(edgePageHtml(404), [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>404 Nothing here</title>',
    '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:12vh auto;padding:0 1em;color:#222}h1{font-size:1.4em}small{color:#777}</style></head>',
    '<body><h1>404 — Nothing here</h1><p>No workspace port is exposed at this address. If you expected one, it may have been revoked.</p><small>Hearth edge</small></body></html>',
    '',
  ].join('\n'));
  assert.match(edgePageHtml(502, 'port <3000> & co'), /<p>port &#60;3000&#62; &#38; co<\/p>/);
});

test('raw pages are complete HTTP/1.1 responses that close the connection', () => {
  const raw = edgePageRaw(431);
  const [head, body] = raw.split('\r\n\r\n');
  assert.match(head!, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  assert.match(head!, /\r\nconnection: close/);
  assert.equal(Number(/content-length: (\d+)/.exec(head!)![1]), Buffer.byteLength(body!));
  assert.match(edgePageRaw(503, undefined, { 'retry-after': '1' }), /\r\nretry-after: 1\r\n/);
});
