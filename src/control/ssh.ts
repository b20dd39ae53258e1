/**
 * SSH access per workspace (§8): enabled or not, a password (stored as a
 * scrypt hash, shown once by `enable`), authorized public keys. The SSH
 * gateway (src/ssh/) asks this service who may log in; listeners hear when
 * a workspace's access is disabled or its credentials change so the gateway
 * can close sessions that no longer have a right to exist.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import ssh2 from 'ssh2';
import type { Db } from '../store/db.ts';
import type { Principal } from '../auth/principal.ts';
import type { WorkspaceService } from './workspaces/index.ts';
import type { Workspace } from './workspaces/row.ts';
import { ValidationFailed } from '../core/errors.ts';
import { randomId } from '../auth/secrets.ts';
import { publicDb, type PublicDb, type SshAccessTable } from './public-tables.ts';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number, opts: { N: number; r: number; p: number }) => Promise<Buffer>;
const SCRYPT = { N: 16384, r: 8, p: 1 };
const MAX_KEYS = 32;
const LOGIN_USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

export interface SshEndpoint {
  /** Host users connect to (as they would type it). */
  host: string;
  port: number;
}

export interface SshServiceOptions {
  /** Where the SSH gateway listens (null when it is off). */
  endpoint: () => SshEndpoint | null;
}

/** What the gateway needs to admit a login. */
export interface SshLogin {
  workspace: Workspace;
  access: SshAccessTable;
  keys: ssh2.ParsedKey[];
}

export type SshRevokedListener = (workspaceId: string, why: 'disabled' | 'credentials') => void;

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  if (!stored) return false;
  const [kind, n, r, p, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64');
  const got = await scrypt(password, Buffer.from(salt, 'base64'), want.length, { N: Number(n), r: Number(r), p: Number(p) });
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Parse one or more OpenSSH public key lines; throws ValidationFailed naming the bad one. */
export function parsePublicKeys(input: unknown): { lines: string[]; keys: ssh2.ParsedKey[] } {
  if (typeof input !== 'string' || input.trim() === '') throw new ValidationFailed('public_key', 'public_key must be an OpenSSH public key line (ssh-ed25519 AAAA… comment)');
  const lines = input.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (lines.length > MAX_KEYS) throw new ValidationFailed('public_key', `at most ${MAX_KEYS} keys`);
  const keys: ssh2.ParsedKey[] = [];
  for (const line of lines) {
    const parsed = ssh2.utils.parseKey(line);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error || key.isPrivateKey()) {
      throw new ValidationFailed('public_key', `not an OpenSSH public key: ${JSON.stringify(line.slice(0, 40))}${key instanceof Error ? ` (${key.message})` : ''}`);
    }
    keys.push(key);
  }
  return { lines, keys };
}

const now = () => new Date().toISOString();

export class SshService {
  private readonly db: PublicDb;
  private readonly listeners = new Set<SshRevokedListener>();

  constructor(
    db: Db,
    private readonly workspaces: WorkspaceService,
    private readonly log: Logger,
    readonly opts: SshServiceOptions,
  ) {
    this.db = publicDb(db);
  }

  onRevoked(fn: SshRevokedListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(id: string, why: 'disabled' | 'credentials'): void {
    for (const fn of this.listeners) fn(id, why);
  }

  private async row(ws: Workspace): Promise<SshAccessTable> {
    const row = await this.db.selectFrom('ssh_access').selectAll().where('workspace_id', '=', ws.id).executeTakeFirst();
    if (row) return row;
    // `config.ssh_access: true` at create (CLI `ws create --ssh`) means enabled from the start.
    const at = now();
    const fresh: SshAccessTable = {
      workspace_id: ws.id, enabled: ws.config.ssh_access === true ? 1 : 0, login_user: 'root', password_hash: null,
      password_changed_at: null, public_keys: '[]', ssh_id: randomId('ssh_'), created_at: at, updated_at: at,
    };
    await this.db.insertInto('ssh_access').values(fresh).onConflict((oc) => oc.column('workspace_id').doNothing()).execute();
    return (await this.db.selectFrom('ssh_access').selectAll().where('workspace_id', '=', ws.id).executeTakeFirstOrThrow());
  }

  private view(ws: Workspace, row: SshAccessTable): Record<string, unknown> {
    const keys = JSON.parse(row.public_keys) as string[];
    const ep = this.opts.endpoint();
    const methods: ('password' | 'publickey')[] = [];
    if (row.password_hash) methods.push('password');
    if (keys.length) methods.push('publickey');
    const user = ws.id;
    const bastion = ep ? `${ep.host}:${ep.port}` : null;
    const portFlag = ep && ep.port !== 22 ? ` -p ${ep.port}` : '';
    const scpPort = ep && ep.port !== 22 ? ` -P ${ep.port}` : '';
    return {
      ssh_enabled: row.enabled === 1,
      supported: ep !== null,
      auth_methods: methods,
      password_auth_enabled: row.password_hash !== null,
      password_affects_desktop: false,
      ssh_id: row.ssh_id,
      ssh_password_changed: row.password_changed_at !== null,
      ssh_key_set: keys.length > 0,
      login_user: row.login_user,
      connection: row.enabled === 1 && ep ? {
        // The username names the workspace; `host` is the workspace's name as a
        // ProxyJump target through the gateway (`oblien scp` builds
        // `-o "ProxyJump <user>@<bastion>" <user>@<host>:path`).
        user, host: ws.id, bastion, port: ep.port,
        command: `ssh${portFlag} ${user}@${ep.host}`,
        scp_upload: `scp${scpPort} <local-path> ${user}@${ep.host}:<remote-path>`,
        scp_download: `scp${scpPort} ${user}@${ep.host}:<remote-path> <local-path>`,
      } : null,
    };
  }

  async status(p: Principal, idOrSlug: string): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    return this.view(ws, await this.row(ws));
  }

  /** Enable; the first enable of a workspace with no credentials mints a password and returns it once. */
  async enable(p: Principal, idOrSlug: string): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const row = await this.row(ws);
    let password: string | null = null;
    const set: Partial<SshAccessTable> = { enabled: 1, updated_at: now() };
    if (!row.password_hash && JSON.parse(row.public_keys).length === 0) {
      password = randomBytes(18).toString('base64url');
      set.password_hash = await hashPassword(password);
    }
    await this.db.updateTable('ssh_access').set(set).where('workspace_id', '=', ws.id).execute();
    this.log.info({ workspace: ws.id }, 'ssh enabled');
    const view = this.view(ws, await this.row(ws));
    return password ? { ...view, ssh_password: password } : view;
  }

  async disable(p: Principal, idOrSlug: string): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    await this.row(ws);
    await this.db.updateTable('ssh_access').set({ enabled: 0, updated_at: now() }).where('workspace_id', '=', ws.id).execute();
    this.emit(ws.id, 'disabled');
    this.log.info({ workspace: ws.id }, 'ssh disabled');
    return this.view(ws, await this.row(ws));
  }

  async setPassword(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const password = body.password;
    if (typeof password !== 'string' || password.length < 8 || password.length > 256) throw new ValidationFailed('password', 'password must be 8–256 characters');
    const user = this.loginUser(body.user);
    await this.row(ws);
    await this.db.updateTable('ssh_access').set({ password_hash: await hashPassword(password), password_changed_at: now(), login_user: user, updated_at: now() })
      .where('workspace_id', '=', ws.id).execute();
    this.emit(ws.id, 'credentials');
    return this.view(ws, await this.row(ws));
  }

  async setKey(p: Principal, idOrSlug: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const ws = await this.workspaces.find(p, idOrSlug);
    const { lines } = parsePublicKeys(body.public_key);
    const user = this.loginUser(body.user);
    await this.row(ws);
    // Setting the key replaces the previous ones: rotating a key must lock the old one out.
    await this.db.updateTable('ssh_access').set({ public_keys: JSON.stringify(lines), login_user: user, updated_at: now() })
      .where('workspace_id', '=', ws.id).execute();
    this.emit(ws.id, 'credentials');
    return this.view(ws, await this.row(ws));
  }

  private loginUser(v: unknown): string {
    if (v === undefined || v === null || v === '') return 'root';
    if (typeof v !== 'string' || !LOGIN_USER_RE.test(v)) throw new ValidationFailed('user', 'user must be a Linux user name (a-z, 0-9, _ and -)');
    return v;
  }

  /** Gateway: the login behind an SSH username (workspace id or slug), or null when SSH is not enabled for it. */
  async login(username: string): Promise<SshLogin | null> {
    const ws = await this.workspaces.byId(username) ?? await this.bySlug(username);
    if (!ws || ws.state === 'deleted' || ws.state === 'deleting') return null;
    const access = await this.db.selectFrom('ssh_access').selectAll().where('workspace_id', '=', ws.id).executeTakeFirst()
      ?? (ws.config.ssh_access === true ? await this.row(ws) : undefined);
    if (!access || access.enabled !== 1) return null;
    const keys: ssh2.ParsedKey[] = [];
    for (const line of JSON.parse(access.public_keys) as string[]) {
      const k = ssh2.utils.parseKey(line);
      const key = Array.isArray(k) ? k[0] : k;
      if (key && !(key instanceof Error)) keys.push(key);
    }
    return { workspace: ws, access, keys };
  }

  /** Whether a workspace still admits SSH (the gateway re-checks before each new channel). */
  async stillEnabled(workspaceId: string): Promise<boolean> {
    const row = await this.db.selectFrom('ssh_access').select('enabled').where('workspace_id', '=', workspaceId).executeTakeFirst();
    return row?.enabled === 1;
  }

  private async bySlug(slug: string): Promise<Workspace | null> {
    const row = await this.db.selectFrom('workspaces').select('id').where('slug', '=', slug).executeTakeFirst();
    return row ? this.workspaces.byId(row.id) : null;
  }
}
