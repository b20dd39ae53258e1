/**
 * The lifecycle acceptance suite (sdk-lifecycle.test.ts: modes, TTL, idle
 * sleep and wake, kill -9 of hearthd and its reconcile) against a real
 * hearth serve whose store is PostgreSQL (`--store postgresql://…`).
 */
import '../helpers/use-postgres.ts';
import './sdk-lifecycle.test.ts';
