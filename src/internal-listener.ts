/**
 * hearthd's one workspace-facing listener (src/core/internal-plane.ts): on
 * the bridge's gateway address, never on the host's other interfaces. A
 * request goes to the control plane or to the runtime gateway by its Host
 * header, through the very handlers the loopback listeners use, so every
 * rule holds the same: authentication, grants, the auth failure pacing (per
 * workspace address, since the peer is the workspace). What may reach it is
 * the firewall's business (open egress, or an egress list naming it).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { internalPlaneOf, internalUrls } from './core/internal-plane.ts';
import type { HostDriver } from './host/host-driver.ts';
import type { ApiApp } from './api/server.ts';
import type { Gateway } from './gateway/server.ts';

export interface InternalListener {
  urls: { api_internal: string; runtime_internal: string };
  /** Where it listens (on the gateway); workspaces use port 80, which the host redirects here. */
  address: string;
  close(): Promise<void>;
}

export async function listenForWorkspaces(host: HostDriver, api: ApiApp, gateway: Gateway, log: Logger): Promise<InternalListener | null> {
  const plane = host.internalPlane?.() ?? null;
  if (!plane) return null;
  const server = http.createServer((req, res) => {
    if (internalPlaneOf(req.headers.host) === 'runtime') gateway.server.emit('request', req, res);
    else api.app.routing(req, res);
  });
  server.on('upgrade', (req, socket, head) => {
    if (internalPlaneOf(req.headers.host) === 'runtime') gateway.server.emit('upgrade', req, socket, head);
    else socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  // Slow or idle peers do not hold hearthd's descriptors (the loopback listeners' defaults are the same).
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, plane.address, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  try {
    await plane.publish(port);
  } catch (err) {
    server.close();
    throw err;
  }
  log.info({ listen: `${plane.address}:${port}`, ...internalUrls() }, 'published to workspaces');
  return {
    urls: internalUrls(), address: `${plane.address}:${port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
