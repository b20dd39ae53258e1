/**
 * The SSH gateway (ssh2): people reach a workspace without it having a
 * public IP. The SSH username names the workspace (its id or slug); the
 * workspace's own credentials (password and/or public keys, §8) decide who
 * gets in, and only while SSH is enabled for it. Sessions run through the
 * workspace's guest agent (session.ts); `ssh -L` local forwards connect to
 * the workspace's internal address over the Hearth bridge; a `direct-tcpip`
 * to `<workspace id>:22` loops back into this gateway, so the contract's
 * `ProxyJump <user>@<bastion>` + `<user>@<host>` form works too.
 *
 * The host key is generated once (ed25519) and kept in `<data dir>/ssh/`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import type { Logger } from 'pino';
import type { SshService, SshLogin } from '../control/ssh.ts';
import { hashPassword, verifyPassword } from '../control/ssh.ts';
import type { Workspace } from '../control/workspaces/row.ts';
import { AGENT_MOUNT } from '../host/images/types.ts';
import { AgentClient } from './agent-client.ts';
import { handleSession } from './session.ts';
import { SFTP_MAIN_FLAG } from './guest/sftp-server.ts';
import { SshAuthGuard, type SshAuthLimits } from './auth-guard.ts';

export interface SshGatewayDeps {
  access: Pick<SshService, 'login' | 'stillEnabled' | 'onRevoked'>;
  workspace(id: string): Promise<Workspace | null>;
  /** Start a sleeping workspace and wait for it (SSH is not activity, but it does wake). */
  wake?(id: string): Promise<Workspace | null>;
  agentEndpoint(ws: Workspace): { ip: string; port: number } | null;
  log: Logger;
  dataDir: string;
  /** Attempt limits (default DEFAULT_SSH_AUTH_LIMITS). */
  authLimits?: SshAuthLimits;
}

/**
 * Every refusal offers both methods, whatever the workspace has set up (or
 * whether it exists or has SSH on): what is offered must not tell a
 * stranger which workspaces take passwords or keys.
 */
const OFFERED: ('password' | 'publickey')[] = ['publickey', 'password'];

/** A hash no password matches, checked for unknown users so that a miss costs what a hit does. */
let decoyHash: Promise<string> | null = null;
const decoy = () => (decoyHash ??= hashPassword(`decoy-${Math.random()}-${Date.now()}`));

/**
 * A new ed25519 host key in OpenSSH format that ssh2 itself can read back.
 * ssh2's generator strips leading zero bytes from the public key, so about
 * one key in 256 is malformed (mscdex/ssh2#1390, #1513): such a key is
 * drawn again.
 */
export function generateHostKey(): { private: string; public: string } {
  for (let attempt = 1; ; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'hearth-ssh-gateway' });
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
    if (attempt >= 16) throw new Error('could not generate a readable ed25519 host key');
  }
}

/**
 * Load the gateway's host key, creating it on first start. A stored key
 * ssh2 cannot parse was never usable (the gateway could not start with it):
 * it is kept beside as `.bad` and replaced.
 */
export async function loadHostKey(dataDir: string, log?: Logger): Promise<Buffer> {
  const dir = path.join(dataDir, 'ssh');
  const file = path.join(dir, 'host_ed25519');
  try {
    const stored = await fs.readFile(file);
    if (!(ssh2.utils.parseKey(stored) instanceof Error)) return stored;
    log?.warn({ file }, 'the stored SSH host key is unreadable; replacing it (the old one is kept as .bad)');
    await fs.rename(file, `${file}.bad`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const pair = generateHostKey();
  await fs.writeFile(`${file}.tmp`, pair.private, { mode: 0o600 });
  await fs.rename(`${file}.tmp`, file);
  await fs.writeFile(`${file}.pub`, `${pair.public}\n`, { mode: 0o644 });
  return Buffer.from(pair.private);
}

let sftpBundle: Promise<string> | null = null;

/** The in-workspace SFTP server as one CommonJS string (esbuild, once per process). */
export function sftpServerSource(): Promise<string> {
  sftpBundle ??= (async () => {
    const esbuild = await import('esbuild');
    const entry = fileURLToPath(new URL('./guest/sftp-server.ts', import.meta.url));
    const out = await esbuild.build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', target: 'node18', minify: true, write: false, logLevel: 'silent' });
    return out.outputFiles[0]!.text;
  })();
  return sftpBundle;
}

/** argv that runs a script on the agent's own Node inside any workspace (whatever its libc). */
export function agentNodeArgv(script: string, ...args: string[]): string[] {
  return [`${AGENT_MOUNT}/lib/ld-linux-x86-64.so.2`, '--library-path', `${AGENT_MOUNT}/lib`, `${AGENT_MOUNT}/bin/node`, '-e', script, ...args];
}

const LOCAL_NAMES = new Set(['localhost', '127.0.0.1', '::1', 'ip6-localhost']);

export class SshGateway {
  readonly server: ssh2.Server;
  private readonly conns = new Map<string, Set<ssh2.Connection>>();
  private readonly agents = new Map<string, { client: AgentClient; secret: string; ip: string }>();
  private readonly unsubscribe: () => void;
  private readonly guard: SshAuthGuard;

  constructor(hostKey: Buffer, private readonly deps: SshGatewayDeps) {
    this.guard = new SshAuthGuard(deps.authLimits);
    this.server = new ssh2.Server({ hostKeys: [hostKey], ident: 'Hearth_1.0' }, (conn, info) => this.onConnection(conn, info?.ip ?? 'proxied'));
    this.server.on('error', (err: Error) => deps.log.warn({ err }, 'ssh server error'));
    this.unsubscribe = deps.access.onRevoked((id, why) => this.kick(id, why));
  }

  /** End every connection to a workspace (SSH disabled or credentials changed). */
  kick(workspaceId: string, why: string): void {
    const set = this.conns.get(workspaceId);
    if (!set) return;
    this.deps.log.info({ workspace: workspaceId, why, connections: set.size }, 'closing ssh connections');
    for (const c of set) c.end();
    this.conns.delete(workspaceId);
  }

  private agentFor(ws: Workspace): Promise<AgentClient> {
    const ep = this.deps.agentEndpoint(ws);
    if (ws.state !== 'running' || !ep) return Promise.reject(new Error(`workspace ${ws.id} is ${ws.state}: start it first (workspaces.start)`));
    const cached = this.agents.get(ws.id);
    if (cached && cached.secret === ws.agentSecret && cached.ip === ep.ip) return Promise.resolve(cached.client);
    cached?.client.close();
    const client = new AgentClient({ ip: ep.ip, port: ep.port, secret: ws.agentSecret });
    this.agents.set(ws.id, { client, secret: ws.agentSecret, ip: ep.ip });
    return Promise.resolve(client);
  }

  private onConnection(conn: ssh2.Connection, source: string): void {
    let login: SshLogin | null = null;
    let lookedUp: string | null = null;
    let failures = 0;
    conn.on('error', () => { /* a client vanishing mid-handshake is normal */ });
    // Key exchange and auth are many small round trips: Nagle + delayed ACK would add ~40 ms to each.
    (conn as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true);
    const refuse = (ctx: ssh2.AuthContext, counts: boolean) => {
      if (counts) {
        failures++;
        this.guard.failed(source);
      }
      ctx.reject(OFFERED);
      if (failures >= this.guard.limits.triesPerConnection) {
        this.deps.log.info({ source, failures }, 'ssh: too many failed attempts on one connection: closing it');
        conn.end();
      }
    };
    conn.on('authentication', (ctx) => {
      void (async () => {
        // `none` is how every client opens: it is a question, not a guess.
        if (ctx.method === 'none') return ctx.reject(OFFERED);
        // A client may send its next guess before it sees the close: it is refused unchecked.
        if (failures >= this.guard.limits.triesPerConnection) return ctx.reject(OFFERED);
        if (!this.guard.mayTry(source)) {
          this.deps.log.warn({ source }, 'ssh: failure budget of this address spent: refusing without checking');
          ctx.reject(OFFERED);
          conn.end();
          return;
        }
        if (lookedUp !== ctx.username) {
          lookedUp = ctx.username;
          login = await this.deps.access.login(ctx.username);
        }
        if (ctx.method === 'password') {
          const hash = login?.access.password_hash ?? await decoy();
          const ok = await this.guard.check(() => verifyPassword(ctx.password, hash));
          return ok && login ? ctx.accept() : refuse(ctx, true);
        }
        if (ctx.method === 'publickey') {
          const match = login?.keys.find((k) => k.getPublicSSH().equals(ctx.key.data));
          if (!match) return refuse(ctx, false);
          // No signature yet: the client asks whether this key would do.
          if (!ctx.signature || !ctx.blob) return ctx.accept();
          return match.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true ? ctx.accept() : refuse(ctx, true);
        }
        return refuse(ctx, false);
      })().catch((err) => {
        this.deps.log.error({ err }, 'ssh authentication failed');
        ctx.reject();
      });
    });
    conn.on('ready', () => {
      const l = login!;
      const wsId = l.workspace.id;
      let set = this.conns.get(wsId);
      if (!set) this.conns.set(wsId, (set = new Set()));
      set.add(conn);
      conn.on('close', () => {
        const s = this.conns.get(wsId);
        s?.delete(conn);
        if (s && s.size === 0) {
          this.conns.delete(wsId);
          const a = this.agents.get(wsId);
          if (a && a.client.socket.idle) { a.client.close(); this.agents.delete(wsId); }
        }
      });
      const current = async () => {
        if (!(await this.deps.access.stillEnabled(wsId))) throw new Error('SSH access to this workspace was disabled');
        let ws = await this.deps.workspace(wsId);
        if (ws?.state === 'sleeping' && this.deps.wake) ws = await this.deps.wake(wsId);
        if (!ws) throw new Error('the workspace no longer exists');
        return ws;
      };
      conn.on('session', (accept) => {
        const session = accept();
        handleSession(conn, session, {
          agent: async () => this.agentFor(await current()),
          sftpCommand: async () => ({ cmd: agentNodeArgv(await sftpServerSource(), SFTP_MAIN_FLAG), env: {} }),
          onError: (err, what) => this.deps.log.warn({ workspace: wsId, what, err }, 'ssh session failed'),
        });
      });
      conn.on('tcpip', (accept, reject, info) => {
        void (async () => {
          const ws = await current().catch(() => null);
          if (!ws) return reject();
          const dest = info.destIP.toLowerCase();
          const names = new Set([ws.id, ...(ws.slug ? [ws.slug] : [])]);
          // ProxyJump: `<user>@<workspace>` through this gateway is a second SSH session here.
          if (names.has(dest) && info.destPort === 22) {
            const channel = accept();
            this.server.injectSocket(channel as unknown as net.Socket);
            return;
          }
          const ep = this.deps.agentEndpoint(ws);
          if (!ep || ws.state !== 'running') return reject();
          // Only the workspace itself is reachable: never the host, never another workspace.
          if (!LOCAL_NAMES.has(dest) && !names.has(dest) && dest !== ep.ip) return reject();
          const upstream = net.connect({ host: ep.ip, port: info.destPort });
          let connected = false;
          upstream.once('connect', () => {
            connected = true;
            const channel = accept();
            upstream.pipe(channel).pipe(upstream);
            channel.on('close', () => upstream.destroy());
            upstream.on('close', () => channel.close());
          });
          upstream.on('error', () => {
            if (!connected) reject();
            upstream.destroy();
          });
        })();
      });
    });
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve(); });
    });
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    for (const set of this.conns.values()) for (const c of set) c.end();
    this.conns.clear();
    for (const a of this.agents.values()) a.client.close();
    this.agents.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
