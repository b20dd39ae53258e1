/**
 * The tenancy acceptance suite (sdk-tenancy.test.ts: permissions, race-proof
 * namespace limits, metering, overdraft, usage) against a real hearth serve
 * whose store is PostgreSQL (`--store postgresql://…` on a throwaway cluster).
 */
import '../helpers/use-postgres.ts';
import './sdk-tenancy.test.ts';
