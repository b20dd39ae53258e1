/**
 * QEMU's migration stream as a file: how snapshots and templates write a
 * stopped VM's RAM and device state, and how a restore brings it back.
 */
import { chown, rm, stat } from 'node:fs/promises';
import fs from 'node:fs';
import net from 'node:net';
import type { Qmp } from './qmp.ts';

/**
 * Stream the (stopped) VM's state to `file`: hearthd listens on a unix
 * socket, QEMU migrates into it. Returns the bytes written.
 */
export async function migrateToFile(qmp: Qmp, sockPath: string, file: string, uid: number | null): Promise<number> {
  await rm(sockPath, { force: true });
  const out = fs.createWriteStream(file, { mode: 0o600 });
  let conns = 0;
  const written = new Promise<void>((resolve, reject) => {
    out.on('finish', resolve);
    out.on('error', reject);
  });
  written.catch(() => undefined); // awaited below; an early failure must not count as unhandled meanwhile
  const server = net.createServer((sock) => {
    conns++;
    // A reset stream (QEMU killed mid-migration) fails this snapshot; unhandled, it would end hearthd.
    sock.on('error', (e) => out.destroy(e));
    sock.pipe(out);
  });
  await new Promise<void>((resolve, reject) => server.listen(sockPath, resolve).once('error', reject));
  try {
    if (uid !== null) await chown(sockPath, uid, uid);
    // QEMU 7.2 caps migration at 128 MiB/s by default: a local file needs no cap.
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 * 1024 * 1024 });
    await qmp.execute('migrate', { uri: `unix:${sockPath}` });
    for (let delay = 5; ; delay = Math.min(delay * 2, 50)) {
      const st = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (st.status === 'completed') break;
      if (st.status === 'failed' || st.status === 'cancelled') throw new Error(`migration ${st.status}: ${st['error-desc'] ?? ''}`);
      await new Promise((r) => setTimeout(r, delay));
    }
    if (!conns) throw new Error('QEMU never connected to the migration socket');
    await written;
    return (await stat(file)).size;
  } finally {
    server.close();
    await rm(sockPath, { force: true });
  }
}

/**
 * Wait for an incoming migration to finish loading, then run the VM: QEMU
 * restores the runstate the source had, and snapshots are taken with the
 * vCPUs stopped, so a restored VM comes up paused until `cont`.
 */
export async function resumeIncoming(qmp: Qmp): Promise<void> {
  const status = await qmp.waitStatus((s) => s !== 'inmigrate', 120_000);
  if (status !== 'running') await qmp.execute('cont');
}
