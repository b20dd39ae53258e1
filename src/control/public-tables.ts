/**
 * Row types of the public-access and SSH tables (migrations 0003, 0005) and the
 * typed view of the store that includes them. Only the services in
 * src/control/public-access.ts, src/control/ssh.ts and the edge's
 * certificate index use these tables.
 */
import type { Kysely } from 'kysely';
import type { Database, Db } from '../store/db.ts';

export interface EdgeHostTable {
  hostname: string;
  workspace_id: string;
  port: number;
  /** preview = `<hash>.<preview domain>`; port = slug/domain of an exposed port; domain = workspaces.domains. */
  source: 'preview' | 'port' | 'domain';
  created_at: string;
}

export interface PublicPortTable {
  workspace_id: string;
  port: number;
  hash: string;
  slug: string | null;
  domain: string | null;
  /** The URL's host: `<hash>.<preview>`, `<slug>.<base>` or the exact custom hostname. */
  hostname: string;
  label: string | null;
  created_at: string;
  updated_at: string;
}

export interface WorkspaceDomainTable {
  workspace_id: string;
  domain: string;
  port: number;
  include_www: number;
  created_at: string;
}

/** A claim of a custom domain by a workspace (migration 0005): proven once its TXT record is found. */
export interface DomainClaimTable {
  workspace_id: string;
  domain: string;
  token: string;
  status: 'pending' | 'verified';
  verified_at: string | null;
  checked_at: string | null;
  last_error: string | null;
  created_at: string;
}

export interface EdgeCertificateTable {
  hostname: string;
  workspace_id: string | null;
  source: 'acme' | 'hearth-ca';
  status: 'pending' | 'active' | 'failed';
  auto_renew: number;
  expires_at: string | null;
  last_attempt_at: string | null;
  last_error: string | null;
  renew_attempts: number;
  created_at: string;
  updated_at: string;
}

export interface SshAccessTable {
  workspace_id: string;
  enabled: number;
  login_user: string;
  password_hash: string | null;
  password_changed_at: string | null;
  /** JSON array of OpenSSH public key lines. */
  public_keys: string;
  ssh_id: string;
  created_at: string;
  updated_at: string;
}

export type PublicTables = {
  edge_hosts: EdgeHostTable;
  public_ports: PublicPortTable;
  workspace_domains: WorkspaceDomainTable;
  edge_certificates: EdgeCertificateTable;
  domain_claims: DomainClaimTable;
  ssh_access: SshAccessTable;
};

export type PublicDb = Kysely<Database & PublicTables>;

export function publicDb(db: Db): PublicDb {
  return db.withTables<PublicTables>();
}

/** SQLite and PostgreSQL both report a unique/primary-key violation with one of these. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === '23505'
    || /UNIQUE constraint failed|duplicate key/.test(e?.message ?? '');
}
