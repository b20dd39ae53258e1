/**
 * Proof of ownership for custom domains (src/control/domain-proof.ts): one
 * claim per (workspace, domain) with the token its DNS TXT record must carry
 * and whether it was found. A claim hangs off its workspace (ON DELETE
 * CASCADE). Custom hostnames routed before this table existed have no claim:
 * at start the edge drops their routes and opens a pending claim for each
 * (docs/parts/public-access.md, "Proving a domain").
 */
import type { Kysely, Migration } from 'kysely';

export const m0005DomainClaims: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.createTable('domain_claims')
      .addColumn('workspace_id', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
      .addColumn('domain', 'text', (c) => c.notNull())
      .addColumn('token', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull()) // pending | verified
      .addColumn('verified_at', 'text')
      .addColumn('checked_at', 'text')
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('domain_claims_pk', ['workspace_id', 'domain'])
      .execute();
    await db.schema.createIndex('domain_claims_domain').on('domain_claims').columns(['domain']).execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('domain_claims').ifExists().execute();
  },
};
