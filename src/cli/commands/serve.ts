/** `hearth serve` — run hearthd until SIGTERM/SIGINT. */
import fs from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { parseFlags } from '../args/parse.ts';
import { parseListen, ArgError } from '../args/listen.ts';
import { PUBLIC_PLANE_FLAGS, PUBLIC_PLANE_USAGE, parsePublicPlaneFlags } from '../args/public-plane.ts';
import { Hearthd } from '../../hearthd.ts';
import { createLocalHost } from '../../host/local-host.ts';
import { DEFAULT_NETWORK_PLAN } from '../../host/network/slot.ts';
import { parsePrivateAllowed } from '../../core/network-policy.ts';
import { defaultPoolCap } from '../../core/warm-pool.ts';
import os from 'node:os';

const USAGE = 'usage: hearth serve [--data-dir DIR] [--store postgresql://…] [--listen HOST:PORT] [--runtime-listen HOST:PORT] [--driver auto|container|microvm] [--bridge NAME --subnet CIDR --link-prefix P] [--artifacts-dir DIR] [--outbound-ip IP] [--egress-allow-private CIDR,...] [--dns-upstream IP[:PORT],...] [--no-dns] [--default-image NAME] [--warm-pool N] ' + PUBLIC_PLANE_USAGE;

export async function serveCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    ...PUBLIC_PLANE_FLAGS,
    'data-dir': 'string', store: 'string', listen: 'string', 'runtime-listen': 'string', driver: 'string', bridge: 'string',
    subnet: 'string', 'link-prefix': 'string', 'artifacts-dir': 'string', 'outbound-ip': 'string', 'egress-allow-private': 'string', 'dns-upstream': 'string', 'no-dns': 'boolean', 'log-level': 'string', 'fast-path-ms': 'string', 'meter-interval-ms': 'string', 'min-idle-seconds': 'string', 'default-image': 'string', 'warm-pool': 'string',
  }, USAGE);
  const warmPool = f['warm-pool'] === undefined ? defaultPoolCap(os.totalmem()) : Number(f['warm-pool']);
  if (!Number.isInteger(warmPool) || warmPool < 0 || warmPool > 256) throw new ArgError(`--warm-pool ${String(f['warm-pool'])} is not a whole number from 0 to 256 (0 turns warm pools off)`, USAGE);
  const dataDir = path.resolve(String(f['data-dir'] ?? '/var/lib/hearth/data'));
  const api = parseListen('--listen', String(f.listen ?? '127.0.0.1:7070'));
  const runtime = parseListen('--runtime-listen', String(f['runtime-listen'] ?? `${api.host}:${api.port === 0 ? 0 : api.port + 1}`));
  const driver = String(f.driver ?? 'auto');
  if (!['auto', 'container', 'microvm'].includes(driver)) throw new ArgError(`--driver ${driver} is not one of auto, container, microvm`, USAGE);
  const log = pino({ level: String(f['log-level'] ?? 'info'), base: { pid: process.pid } }, pino.destination(2));

  const host = await createLocalHost({
    dataDir, log: log.child({ component: 'host' }),
    driver: driver as 'auto' | 'container' | 'microvm',
    network: {
      bridge: String(f.bridge ?? DEFAULT_NETWORK_PLAN.bridge),
      subnet: String(f.subnet ?? DEFAULT_NETWORK_PLAN.subnet),
      linkPrefix: String(f['link-prefix'] ?? DEFAULT_NETWORK_PLAN.linkPrefix),
      ...(f['egress-allow-private'] ? { privateAllowed: privateAllowedFlag(String(f['egress-allow-private'])) } : {}),
    },
    ...(f['artifacts-dir'] ? { artifactsDir: String(f['artifacts-dir']) } : {}),
    ...(f['outbound-ip'] ? { outboundIp: String(f['outbound-ip']) } : {}),
    ...(f['dns-upstream'] ? { dnsUpstreams: String(f['dns-upstream']).split(',').filter(Boolean) } : {}),
    ...(f['no-dns'] ? { dns: false } : {}),
  });
  // The image of a create that names none: checked now, so a typo stops the start instead of every such create.
  const defaultImage = f['default-image'] ? String(f['default-image']) : undefined;
  if (defaultImage) await host.resolveImage(defaultImage).catch((e: Error) => { throw new ArgError(`--default-image ${defaultImage}: ${e.message}`, USAGE); });
  const publicPlane = parsePublicPlaneFlags(f, api);
  // --store wins over HEARTH_STORE; neither = SQLite in the data dir. A URL may carry a password: prefer the env.
  const store = f.store !== undefined ? String(f.store) : process.env.HEARTH_STORE || undefined;
  const d = await Hearthd.open({
    dataDir, api, runtime, host, log, publicPlane, warmPool, ...(store ? { store } : {}),
    ...(f['fast-path-ms'] ? { fastPathMs: Number(f['fast-path-ms']) } : {}),
    ...(f['meter-interval-ms'] ? { meterIntervalMs: Number(f['meter-interval-ms']) } : {}),
    ...(f['min-idle-seconds'] ? { minIdleSeconds: Number(f['min-idle-seconds']) } : {}),
    ...(defaultImage ? { defaultImage } : {}),
  });
  const endpoints = d.endpoints!;
  const key = await d.ensureAdminKey();
  const credFile = path.join(dataDir, 'credentials.json');
  if (key) {
    await fs.writeFile(credFile, JSON.stringify({ clientId: key.clientId, clientSecret: key.clientSecret }, null, 2) + '\n', { mode: 0o600 });
    await fs.chmod(credFile, 0o600);
  }
  // Last: endpoints.json is the "ready" signal (test/helpers/hearth.ts reads the credentials right after it).
  await fs.writeFile(path.join(dataDir, 'endpoints.json'), JSON.stringify(endpoints, null, 2) + '\n');
  log.info({ endpoints, driver: host.defaultDriver, dataDir }, 'hearthd ready');
  process.stdout.write(readyBanner(endpoints.api, endpoints.runtime, credFile, key !== null, host.defaultDriver, endpoints.console));

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => { log.info({ signal: sig }, 'stopping'); resolve(); };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await d.close();
  log.info('stopped');
  return 0;
}

/** `--egress-allow-private 192.168.5.0/24,10.1.0.0/16`: ranges inside the private networks every workspace's policy may reach. */
function privateAllowedFlag(value: string): string[] {
  try {
    return parsePrivateAllowed(value.split(',').map((s) => s.trim()).filter(Boolean));
  } catch (e) {
    throw new ArgError(`--egress-allow-private: ${(e as Error).message}`, USAGE);
  }
}

function readyBanner(api: string, runtime: string, credFile: string, fresh: boolean, driver: string, consoleUrl?: string): string {
  return `
Hearth is running (driver: ${driver}).
  control plane  ${api}
  data plane     ${runtime}
${consoleUrl ? `  web console    ${consoleUrl}  (sign in with the credentials below, or: hearth console-link)\n` : ''}  credentials    ${credFile}${fresh ? '  (new admin key, created now)' : ''}

Create a first workspace with the official SDK (npm i oblien):

  import { Oblien, Runtime } from 'oblien';
  import fs from 'node:fs';
  const { clientId, clientSecret } = JSON.parse(fs.readFileSync('${credFile}', 'utf8'));
  const client = new Oblien({ clientId, clientSecret, baseUrl: '${api}' });
  const ws = await client.workspaces.create({ image: 'node-20', config: { ttl: '30m' } });
  const { token } = await client.workspaces.apiAccess.enable(ws.id);
  const rt = new Runtime({ token, baseUrl: '${runtime}' });
  console.log((await rt.exec.run(['node', '-e', 'console.log(process.version)'])).stdout);

`;
}
