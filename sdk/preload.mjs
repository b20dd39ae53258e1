// hearth/sdk/preload — keeps code written for Oblien's cloud unchanged:
//   HEARTH_RUNTIME_URL=http://127.0.0.1:7071 node --import hearth/sdk/preload app.js
// The SDK's data plane uses only the global fetch and WebSocket with the fixed
// origin https://workspace.oblien.com (contract §17.1, strategy 2); this
// rewrites that origin to Hearth's gateway. On Node 20, which has no global
// WebSocket, it installs the `ws` package's.
import WebSocketImpl from 'ws';

const target = process.env.HEARTH_RUNTIME_URL;
if (!target) throw new Error('hearth/sdk/preload: set HEARTH_RUNTIME_URL to Hearth\'s data-plane URL (endpoints.json "runtime")');
const httpBase = target.replace(/\/+$/, '');
const wsBase = httpBase.replace(/^http/, 'ws');
const ORIGINS = [['https://workspace.oblien.com', httpBase], ['wss://workspace.oblien.com', wsBase]];

function rewrite(url) {
  const s = String(url);
  for (const [from, to] of ORIGINS) if (s === from || s.startsWith(from + '/') || s.startsWith(from + '?')) return to + s.slice(from.length);
  return s;
}

const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  if (input instanceof Request) return realFetch(new Request(rewrite(input.url), input), init);
  return realFetch(rewrite(input instanceof URL ? input.href : input), init);
};

const BaseWebSocket = globalThis.WebSocket ?? WebSocketImpl;
globalThis.WebSocket = class HearthWebSocket extends BaseWebSocket {
  constructor(url, protocols) {
    super(rewrite(url), protocols);
  }
};
