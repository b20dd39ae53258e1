/**
 * The edge's own answers (not the API's §2.1 JSON: browsers read these):
 * small HTML pages with a plain-text title line, so curl users get the
 * reason too. Pure; golden-tested in test/unit/edge-pages.test.ts.
 */
import http from 'node:http';

export type EdgePage = 400 | 404 | 408 | 413 | 431 | 502 | 503 | 504;

const TEXT: Record<EdgePage, { title: string; body: string }> = {
  400: { title: 'Bad request', body: 'The request could not be understood by the Hearth edge.' },
  404: { title: 'Nothing here', body: 'No workspace port is exposed at this address. If you expected one, it may have been revoked.' },
  408: { title: 'Request timeout', body: 'The request took too long to arrive.' },
  413: { title: 'Request too large', body: 'The request body is larger than this edge accepts.' },
  431: { title: 'Request headers too large', body: 'The request headers are larger than this edge accepts.' },
  502: { title: 'Nothing is listening', body: 'The workspace is running, but nothing answers on the exposed port. Start your server (listening on 0.0.0.0) and reload.' },
  503: { title: 'Workspace unavailable', body: 'The workspace behind this address is not running right now. Retry in a moment.' },
  504: { title: 'Gateway timeout', body: 'The workspace took too long to answer.' },
};

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The HTML of an edge page; `detail` is one extra sentence (escaped). */
export function edgePageHtml(status: EdgePage, detail?: string): string {
  const t = TEXT[status];
  return [
    '<!doctype html>',
    `<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${status} ${esc(t.title)}</title>`,
    '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:12vh auto;padding:0 1em;color:#222}h1{font-size:1.4em}small{color:#777}</style></head>',
    `<body><h1>${status} — ${esc(t.title)}</h1><p>${esc(t.body)}</p>${detail ? `<p>${esc(detail)}</p>` : ''}<small>Hearth edge</small></body></html>`,
    '',
  ].join('\n');
}

/** A whole HTTP/1.1 response for a raw socket (clientError paths, upgrades). */
export function edgePageRaw(status: EdgePage, detail?: string, extraHeaders: Record<string, string> = {}): string {
  const body = edgePageHtml(status, detail);
  const head = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}`,
    'content-type: text/html; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'cache-control: no-store',
    'connection: close',
    ...Object.entries(extraHeaders).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}
