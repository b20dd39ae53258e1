/** The workspace service lives in workspaces/ (one module per concern); this path stays for the planes that import it. */
export * from './workspaces/index.ts';
