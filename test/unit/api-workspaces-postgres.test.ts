/**
 * The workspace API unit tests (api-workspaces.test.ts) on the PostgreSQL
 * store: a fresh database on a throwaway cluster instead of SQLite in memory.
 * Every other API test file runs the same way with HEARTH_TEST_STORE=postgres.
 */
import '../helpers/use-postgres.ts';
import './api-workspaces.test.ts';
