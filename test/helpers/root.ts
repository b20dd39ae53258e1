/** Integration tests need root (runc, bridges, nftables); they skip with this reason otherwise. */
export const isRoot = process.getuid?.() === 0;
export const needsRoot = isRoot ? false : 'needs root: runc, bridges and nftables (CI runs as root)';
