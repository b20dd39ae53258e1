/**
 * Imported first by a test file that re-runs another file's tests on the
 * PostgreSQL store: from here on, startHearth and openTestStore use a fresh
 * database on this process's throwaway cluster (test/helpers/store.ts).
 */
process.env.HEARTH_TEST_STORE = 'postgres';
