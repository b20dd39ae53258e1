/**
 * Reading a guest's serial console for kernel faults. A restored VM whose
 * kernel oopsed can still answer the identity handshake (the launcher's main
 * thread survives) while the rest of the guest is wedged on a lock the dead
 * task held: the console is the only place that says so.
 */
import { readTail } from '../../log-cap.ts';

/**
 * Kernel printk lines (they carry the `[ seconds.micros]` timestamp; the
 * launcher's and agent's own JSON lines do not) that mean the guest kernel
 * is no longer trustworthy.
 */
const FAULT = /^\[\s*\d+\.\d+\]\s+((?:watchdog: )?BUG: .*|general protection fault.*|Oops: .*|Kernel panic.*|kernel BUG at .*|RCU: .*stall.*|rcu: .*stall.*)$/m;

/** Pure: the first kernel fault line in `console` (without its timestamp), or null when there is none. */
export function guestKernelFault(console: string): string | null {
  const m = FAULT.exec(console.replace(/\r/g, ''));
  return m ? m[1]!.trim() : null;
}

/** guestKernelFault of a console log file's last MiB (a missing file has no fault). */
export async function consoleLogFault(file: string): Promise<string | null> {
  return guestKernelFault(await readTail(file, 1024 * 1024));
}
