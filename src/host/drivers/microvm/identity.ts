/**
 * A VM's identity, delivered after boot or after restore over a virtio
 * serial port (`org.hearth.identity`, a chardev socket on the host side).
 *
 * Why a serial port and not the kernel command line: the command line is
 * world-readable in the guest (/proc/cmdline), and it is fixed at boot,
 * so a template snapshotted once could never become two workspaces. The
 * guest launcher (src/agent/vm/launch.ts) opens the port once and keeps it open;
 * a virtio serial port admits one opener at a time, so no user process can
 * read the next identity, and the host end is a root-only socket in the
 * VM's run directory.
 *
 * The protocol's messages are in src/core/vm-identity.ts.
 */
import { overlayEnv } from '../../../core/workspace-spec.ts';
import net from 'node:net';
import type { GuestIdentity, GuestMessage } from '../../../core/vm-identity.ts';
import type { SandboxSpec } from '../driver.ts';

// The protocol itself (message shapes, port name) is shared with the guest launcher.
export { IDENTITY_PORT_NAME, type GuestIdentity, type GuestMessage } from '../../../core/vm-identity.ts';

/** Pure: the identity message for a workspace (now and seed passed in, for tests). */
export function identityFor(spec: SandboxSpec, nameservers: string[], now: number, seed: string): GuestIdentity {
  return {
    t: 'identity',
    workspaceId: spec.workspaceId,
    hostname: spec.hostname,
    secret: spec.agentSecret,
    port: spec.agentPort,
    ip: spec.slot.ip,
    prefix: spec.slot.prefix,
    gateway: spec.slot.gateway,
    mac: spec.slot.mac,
    nameservers,
    env: overlayEnv(spec.image.env, spec.env ?? []).filter((e) => !e.startsWith('HEARTH_')),
    workdir: spec.image.workingDir || '/',
    now,
    seed,
  };
}

/**
 * The host end of the identity port: connect to QEMU's chardev socket,
 * read guest messages line by line. QEMU keeps the listening socket; this
 * connection may be opened and closed as often as needed.
 */
export class IdentityChannel {
  private buf = '';
  private readonly waiters: Array<{ want: (m: GuestMessage) => boolean; resolve: (m: GuestMessage) => void }> = [];
  private readonly seen: GuestMessage[] = [];
  private closed: Error | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.buf += chunk;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line.startsWith('{')) continue; // noise before the launcher opened the port
        let msg: GuestMessage;
        try {
          msg = JSON.parse(line) as GuestMessage;
        } catch {
          continue;
        }
        this.seen.push(msg);
        for (const w of [...this.waiters]) {
          if (w.want(msg)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(msg);
          }
        }
      }
    });
    const end = (e?: Error) => {
      this.closed = e ?? new Error('the identity channel closed (QEMU exited?)');
    };
    sock.on('error', end);
    sock.on('close', () => end());
  }

  static async connect(path: string, timeoutMs = 5000): Promise<IdentityChannel> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        return new IdentityChannel(sock);
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`cannot connect to the identity socket ${path}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Resolve with the first message (already seen or future) that `want` accepts. */
  wait(want: (m: GuestMessage) => boolean, timeoutMs: number, what: string): Promise<GuestMessage> {
    const hit = this.seen.find(want);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { want, resolve: (m: GuestMessage) => { clearTimeout(timer); clearInterval(poll); resolve(m); } };
      const fail = (e: Error) => {
        clearTimeout(timer);
        clearInterval(poll);
        const idx = this.waiters.indexOf(w);
        if (idx >= 0) this.waiters.splice(idx, 1);
        reject(e);
      };
      const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms waiting for the guest: ${what}`)), timeoutMs);
      const poll = setInterval(() => { if (this.closed) fail(this.closed); }, 20);
      this.waiters.push(w);
    });
  }

  send(identity: GuestIdentity): Promise<void> {
    return new Promise((resolve, reject) => this.sock.write(`${JSON.stringify(identity)}\n`, (e) => (e ? reject(e) : resolve())));
  }

  /** Forget messages seen so far (before sending a new identity to a running guest). */
  reset(): void {
    this.seen.length = 0;
  }

  close(): void {
    this.sock.destroy();
  }
}
