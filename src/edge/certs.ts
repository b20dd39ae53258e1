/**
 * The edge's certificates: what SNI picks, where certificates are stored,
 * and when they are renewed.
 *
 * HAProxy picks the certificate by SNI from the files this module writes
 * (`haproxy.pem`: certificate + key) and is told of every change (onChange).
 *
 *   - preview hostnames: one Hearth-CA wildcard `*.<preview domain>`
 *     (edge/certs/_preview/), re-issued when it nears expiry;
 *   - custom hostnames: a publicly trusted certificate from ACME
 *     (edge/certs/<hostname>/), renewed 30 days before expiry, retried with
 *     backoff on failure; until it arrives (or when no ACME directory is
 *     configured) the Hearth CA signs one so HTTPS works meanwhile.
 *
 * The `edge_certificates` table indexes the files (status, expiry, errors)
 * for the contract's `domain.ssls` and `domains.get`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { Db } from '../store/db.ts';
import { publicDb, type EdgeCertificateTable, type PublicDb } from '../control/public-tables.ts';
import type { CertificateIssuer, SslInfo } from '../control/public-access.ts';
import type { HearthCA } from './ca.ts';
import type { AcmeIssuer } from './acme.ts';

const RENEW_BEFORE_MS = 30 * 86400_000;
const CHECK_EVERY_MS = 60 * 60_000;
const MAX_BACKOFF_MS = 24 * 3600_000;

interface Loaded {
  /** `haproxy.pem` in the hostname's directory: certificate then key, the form HAProxy loads. */
  file: string;
  pem: { cert: string; key: string };
  notAfter: Date;
  source: 'acme' | 'hearth-ca';
}

/** A certificate was installed or replaced (`file` set) or released (`file` null): the proxy loads or drops it. */
export type CertListener = (hostname: string, file: string | null, pem: string | null) => void;

export const PREVIEW_CERT = '_preview';

const now = () => new Date().toISOString();

const pemBundle = (p: { cert: string; key: string }) => `${p.cert.trim()}\n${p.key.trim()}\n`;

export function certDir(dataDir: string, hostname: string): string {
  return path.join(dataDir, 'edge', 'certs', hostname);
}

export class CertManager implements CertificateIssuer {
  private readonly db: PublicDb;
  private preview: Loaded | null = null;
  private readonly loaded = new Map<string, Loaded>();
  private readonly inflight = new Map<string, Promise<SslInfo>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<CertListener>();

  constructor(
    private readonly dataDir: string,
    db: Db,
    private readonly ca: HearthCA,
    private readonly previewDomain: string,
    private readonly acme: AcmeIssuer | null,
    private readonly log: Logger,
  ) {
    this.db = publicDb(db);
  }

  async init(): Promise<void> {
    this.preview = await this.loadOrIssuePreview();
    for (const row of await this.db.selectFrom('edge_certificates').selectAll().execute()) {
      const l = await this.loadFiles(row.hostname, row.source).catch(() => null);
      if (l) this.loaded.set(row.hostname, l);
    }
    this.timer = setInterval(() => { void this.sweep(); }, CHECK_EVERY_MS);
    this.timer.unref();
    void this.sweep();
  }

  close(): void {
    clearInterval(this.timer);
  }

  onChange(fn: CertListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private announce(hostname: string, l: Loaded | null): void {
    for (const fn of this.listeners) fn(hostname, l?.file ?? null, l ? pemBundle(l.pem) : null);
  }

  /** The preview wildcard's file: the default certificate (no SNI, or a name with no certificate of its own). */
  previewFile(): string {
    if (!this.preview) throw new Error('CertManager.init() has not run');
    return this.preview.file;
  }

  /** Every certificate the proxy should load, the preview wildcard first (the default). */
  files(): { hostname: string; file: string; pem: string }[] {
    const out = this.preview ? [{ hostname: PREVIEW_CERT, file: this.preview.file, pem: pemBundle(this.preview.pem) }] : [];
    for (const [hostname, l] of this.loaded) out.push({ hostname, file: l.file, pem: pemBundle(l.pem) });
    return out;
  }

  challengeResponse(token: string): string | undefined {
    return this.acme?.challengeResponse(token);
  }

  private async loadOrIssuePreview(): Promise<Loaded> {
    const names = [`*.${this.previewDomain}`, this.previewDomain];
    const existing = await this.loadFiles(PREVIEW_CERT, 'hearth-ca').catch(() => null);
    if (existing && existing.notAfter.getTime() - Date.now() > RENEW_BEFORE_MS) return existing;
    const issued = await this.ca.issue(names);
    const file = await this.writeFiles(PREVIEW_CERT, issued.cert, issued.key);
    return { file, pem: { cert: issued.cert, key: issued.key }, notAfter: issued.notAfter, source: 'hearth-ca' };
  }

  private async loadFiles(name: string, source: 'acme' | 'hearth-ca'): Promise<Loaded> {
    const dir = certDir(this.dataDir, name);
    const [cert, key] = await Promise.all([fs.readFile(path.join(dir, 'cert.pem'), 'utf8'), fs.readFile(path.join(dir, 'key.pem'), 'utf8')]);
    const notAfter = new Date(new X509Certificate(cert).validTo);
    const file = path.join(dir, 'haproxy.pem');
    // Certificates written before the proxy edge have no bundle yet.
    await fs.access(file).catch(() => fs.writeFile(file, pemBundle({ cert, key }), { mode: 0o600 }));
    return { file, pem: { cert, key }, notAfter, source };
  }

  /** Writes cert.pem, key.pem and the bundle HAProxy loads; returns the bundle's path. */
  private async writeFiles(name: string, cert: string, key: string): Promise<string> {
    const dir = certDir(this.dataDir, name);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    // Key then certificate, each by rename: a reader never sees a half-written pair.
    await fs.writeFile(path.join(dir, 'key.pem.tmp'), key, { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'cert.pem.tmp'), cert, { mode: 0o644 });
    await fs.rename(path.join(dir, 'key.pem.tmp'), path.join(dir, 'key.pem'));
    await fs.rename(path.join(dir, 'cert.pem.tmp'), path.join(dir, 'cert.pem'));
    await fs.writeFile(path.join(dir, 'haproxy.pem.tmp'), pemBundle({ cert, key }), { mode: 0o600 });
    await fs.rename(path.join(dir, 'haproxy.pem.tmp'), path.join(dir, 'haproxy.pem'));
    return path.join(dir, 'haproxy.pem');
  }

  // ------------------------------------------------------------ CertificateIssuer

  /** Record the hostname and give it an interim Hearth-CA certificate now; obtain the real one in the background. */
  async request(hostname: string, workspaceId: string): Promise<void> {
    await this.prepare(hostname, workspaceId);
    void this.ensure(hostname, workspaceId, false).catch((err) => this.log.error({ hostname, err }, 'certificate request failed'));
  }

  private async prepare(hostname: string, workspaceId: string | null): Promise<void> {
    const at = now();
    await this.db.insertInto('edge_certificates').values({
      hostname, workspace_id: workspaceId, source: this.acme ? 'acme' : 'hearth-ca', status: 'pending', auto_renew: 1,
      expires_at: null, last_attempt_at: null, last_error: null, renew_attempts: 0, created_at: at, updated_at: at,
    } satisfies EdgeCertificateTable).onConflict((oc) => oc.column('hostname').doNothing()).execute();
    // HTTPS works at once with a Hearth-CA certificate while ACME runs.
    if (!this.loaded.has(hostname)) {
      const interim = await this.ca.issue([hostname]);
      const file = await this.writeFiles(hostname, interim.cert, interim.key);
      const l: Loaded = { file, pem: { cert: interim.cert, key: interim.key }, notAfter: interim.notAfter, source: 'hearth-ca' };
      this.loaded.set(hostname, l);
      this.announce(hostname, l);
      if (!this.acme) {
        await this.db.updateTable('edge_certificates').set({ status: 'active', source: 'hearth-ca', expires_at: interim.notAfter.toISOString(), last_attempt_at: at, last_error: null, updated_at: at })
          .where('hostname', '=', hostname).execute();
      }
    }
  }

  renew(hostname: string, workspaceId: string): Promise<SslInfo> {
    return this.ensure(hostname, workspaceId, true);
  }

  async info(hostname: string): Promise<SslInfo> {
    const row = await this.db.selectFrom('edge_certificates').selectAll().where('hostname', '=', hostname).executeTakeFirst();
    if (!row) return { status: 'none', source: null, expiresAt: null, error: null };
    return { status: row.status, source: row.source, expiresAt: row.expires_at, error: row.last_error };
  }

  async release(hostname: string): Promise<void> {
    await this.db.deleteFrom('edge_certificates').where('hostname', '=', hostname).execute();
    if (this.loaded.delete(hostname)) this.announce(hostname, null);
    await fs.rm(certDir(this.dataDir, hostname), { recursive: true, force: true });
  }

  async setAutoRenew(hostname: string, enabled: boolean): Promise<boolean> {
    await this.db.updateTable('edge_certificates').set({ auto_renew: enabled ? 1 : 0, updated_at: now() }).where('hostname', '=', hostname).execute();
    return enabled;
  }

  async list(): ReturnType<CertificateIssuer['list']> {
    const rows = await this.db.selectFrom('edge_certificates').selectAll().orderBy('hostname').execute();
    return rows.map((r) => ({
      hostname: r.hostname, workspaceId: r.workspace_id, source: r.source, status: r.status, autoRenew: r.auto_renew === 1,
      expiresAt: r.expires_at, lastAttemptAt: r.last_attempt_at, lastError: r.last_error, renewAttempts: r.renew_attempts,
    }));
  }

  // ------------------------------------------------------------ issuance

  /** Make sure `hostname` has a certificate; with `force`, get a new one now. One attempt per hostname at a time. */
  private ensure(hostname: string, workspaceId: string | null, force: boolean): Promise<SslInfo> {
    const running = this.inflight.get(hostname);
    if (running) return running;
    const p = this.obtain(hostname, workspaceId, force).finally(() => this.inflight.delete(hostname));
    this.inflight.set(hostname, p);
    return p;
  }

  private async obtain(hostname: string, workspaceId: string | null, force: boolean): Promise<SslInfo> {
    const row = await this.db.selectFrom('edge_certificates').selectAll().where('hostname', '=', hostname).executeTakeFirst();
    if (row && !force && row.status === 'active' && row.expires_at && Date.parse(row.expires_at) - Date.now() > RENEW_BEFORE_MS
      && (row.source === 'acme' || !this.acme)) {
      return this.info(hostname);
    }
    const at = now();
    if (!row || !this.loaded.has(hostname)) {
      await this.prepare(hostname, workspaceId);
      if (!this.acme && !force) return this.info(hostname);
    }
    if (!this.acme) {
      const interim = await this.ca.issue([hostname]);
      await this.install(hostname, interim.cert, interim.key, interim.notAfter, 'hearth-ca');
      return this.info(hostname);
    }
    await this.db.updateTable('edge_certificates').set({ last_attempt_at: at, updated_at: at }).where('hostname', '=', hostname).execute();
    try {
      const got = await this.acme.issue(hostname);
      // The hostname may have been released while ACME ran.
      if (!(await this.db.selectFrom('edge_certificates').select('hostname').where('hostname', '=', hostname).executeTakeFirst())) return this.info(hostname);
      await this.install(hostname, got.cert, got.key, got.notAfter, 'acme');
      this.log.info({ hostname, expires: got.notAfter.toISOString() }, 'ACME certificate installed');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn({ hostname, err: message }, 'ACME issuance failed');
      await this.db.updateTable('edge_certificates')
        .set((eb) => ({ status: row?.status === 'active' && row.source === 'acme' ? 'active' : 'failed', last_error: message.slice(0, 1000), renew_attempts: eb('renew_attempts', '+', 1), updated_at: now() }))
        .where('hostname', '=', hostname).execute();
    }
    return this.info(hostname);
  }

  private async install(hostname: string, cert: string, key: string, notAfter: Date, source: 'acme' | 'hearth-ca'): Promise<void> {
    const file = await this.writeFiles(hostname, cert, key);
    const l: Loaded = { file, pem: { cert, key }, notAfter, source };
    this.loaded.set(hostname, l);
    this.announce(hostname, l);
    await this.db.updateTable('edge_certificates').set({
      status: 'active', source, expires_at: notAfter.toISOString(), last_error: null, renew_attempts: 0, updated_at: now(),
    }).where('hostname', '=', hostname).execute();
  }

  /** Renew what nears expiry; retry failures with exponential backoff. */
  async sweep(): Promise<void> {
    try {
      if (this.preview && this.preview.notAfter.getTime() - Date.now() < RENEW_BEFORE_MS) {
        this.preview = await this.loadOrIssuePreview();
        this.announce(PREVIEW_CERT, this.preview);
      }
      for (const row of await this.db.selectFrom('edge_certificates').selectAll().where('auto_renew', '=', 1).execute()) {
        const expiring = !row.expires_at || Date.parse(row.expires_at) - Date.now() < RENEW_BEFORE_MS;
        const wantsAcme = this.acme !== null && row.source !== 'acme';
        if (!expiring && !wantsAcme && row.status !== 'failed') continue;
        const backoff = Math.min(MAX_BACKOFF_MS, 60_000 * 2 ** Math.min(row.renew_attempts, 20));
        if (row.last_attempt_at && row.renew_attempts > 0 && Date.now() - Date.parse(row.last_attempt_at) < backoff) continue;
        await this.ensure(row.hostname, row.workspace_id, true).catch(() => undefined);
      }
    } catch (err) {
      this.log.error({ err }, 'certificate sweep failed');
    }
  }
}
