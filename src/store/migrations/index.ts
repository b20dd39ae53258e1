/**
 * Every migration, in order. Add a file `NNNN_name.ts` exporting one
 * Migration and list it here; names sort in application order and a
 * migration never changes once released.
 */
import type { Migration } from 'kysely';
import { m0001Initial } from './0001_initial.ts';
import { m0002Namespaces } from './0002_namespaces.ts';
import { m0003PublicAccess } from './0003_public_access.ts';
import { m0004Snapshots } from './0004_snapshots.ts';
import { m0005DomainClaims } from './0005_domain_claims.ts';
import { m0006WarmPool } from './0006_warm_pool.ts';
import { m0008Console } from './0008_console.ts';
import { m0009ActivityWebhooks } from './0009_activity_webhooks.ts';

export const migrations: Record<string, Migration> = {
  '0001_initial': m0001Initial,
  '0002_namespaces': m0002Namespaces,
  '0003_public_access': m0003PublicAccess,
  '0004_snapshots': m0004Snapshots,
  '0005_domain_claims': m0005DomainClaims,
  '0006_warm_pool': m0006WarmPool,
  '0008_console': m0008Console,
  '0009_activity_webhooks': m0009ActivityWebhooks,
};
