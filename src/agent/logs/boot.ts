/**
 * The boot log (`logs` sub-resource, source `boot`, spec §18): the agent's
 * own console lines — its startup, the workloads it brings back, failures —
 * kept in the workspace at `<logDir>/boot.log` across boots (each boot
 * starts with a marker line). A container has no kernel console of its own;
 * in a microVM the kernel and initramfs lines stay on the host's console.
 */
import { join } from 'node:path';
import { LogStore } from './store.ts';

export const BOOT_LOG_NAME = 'boot.log';
const BOOT_LOG_BYTES = 1024 * 1024;

export class BootLog {
  readonly store: LogStore;

  constructor(logDir: string) {
    this.store = new LogStore(join(logDir, BOOT_LOG_NAME), BOOT_LOG_BYTES);
  }

  /** One line per agent log call: the message, then its fields as JSON. */
  record(msg: string, fields?: Record<string, unknown>): void {
    const extra = fields && Object.keys(fields).length > 0 ? ` ${safeJson(fields)}` : '';
    this.store.append([{ t: new Date().toISOString(), stream: 'system', data: `${msg}${extra}` }]);
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}
