/**
 * The microVM identity protocol, shared by both ends: the host sends a
 * workspace its identity over a virtio serial port (src/host/drivers/microvm/identity.ts)
 * and the guest launcher (src/agent/vm/launch.ts) applies it. Pure: the
 * message shapes, the port's name and the rules a message must satisfy, so
 * the guest side needs nothing from the host layer.
 *
 * Protocol (one JSON object per line):
 *   guest → host  {"t":"waiting"}              launcher is up, no identity yet (templates snapshot here)
 *   host  → guest {"t":"identity", …}          apply (first time: start the agent; later: re-key it)
 *   guest → host  {"t":"applied","ip":…}       network configured and the agent listening
 *   guest → host  {"t":"error","message":…}    the identity could not be applied
 *   host  → guest {"t":"shutdown"}             stop the agent, end every process, power off
 */
import { intToIp, parseCidr } from './network-policy.ts';

export const IDENTITY_PORT_NAME = 'org.hearth.identity';

/**
 * The exit codes of the guest's reseed helper (its C source is in
 * src/host/drivers/microvm/boot-media/reseed.ts; the launcher runs it).
 */
export const RESEED_EXIT_REASONS: Readonly<Record<number, string>> = {
  2: 'the seed was shorter than 32 bytes',
  3: 'cannot open /dev/urandom',
  4: 'RNDADDENTROPY refused',
  5: 'RNDRESEEDCRNG refused',
};

export interface GuestIdentity {
  t: 'identity';
  workspaceId: string;
  hostname: string;
  secret: string;
  port: number;
  ip: string;
  prefix: number;
  gateway: string;
  mac: string;
  nameservers: string[];
  /** The image's environment: what user processes inherit (HEARTH_* removed). */
  env: string[];
  /** The image's WorkingDir: where exec runs without a cwd. */
  workdir: string;
  /** Host wall clock (ms): a restored guest's clock is as old as its snapshot. */
  now: number;
  /** Fresh randomness mixed into the guest pool: clones of one template must not share RNG state. */
  seed: string;
}

export type GuestMessage =
  | { t: 'waiting' }
  /** `ms` and `phases` (network, host files, agent listening) are the guest's own clock: absent from older launchers. */
  | { t: 'applied'; ip: string; ms?: number; phases?: Record<string, number> }
  | { t: 'error'; message: string };

/** What a guest accepts as an identity: `workdir` is absent from hosts older than that field (then `/`). */
export type ReceivedIdentity = Omit<GuestIdentity, 'workdir'> & { workdir?: string };

/** Whether a line read from the identity port is an identity the guest can apply. */
export function validIdentity(m: Record<string, unknown>): m is Record<string, unknown> & ReceivedIdentity {
  const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/;
  return m.t === 'identity' && typeof m.secret === 'string' && m.secret.length > 0 && typeof m.ip === 'string' && ipv4.test(m.ip)
    && typeof m.gateway === 'string' && ipv4.test(m.gateway) && typeof m.mac === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m.mac)
    && Number.isInteger(m.prefix) && Number.isInteger(m.port) && typeof m.hostname === 'string' && /^[A-Za-z0-9.-]{1,253}$/.test(m.hostname)
    && Array.isArray(m.env) && Array.isArray(m.nameservers) && typeof m.now === 'number' && typeof m.seed === 'string';
}

/** 24 → 255.255.255.0: the all-ones address with its host bits cleared. */
export function netmaskOf(prefix: number): string {
  return intToIp(parseCidr(`255.255.255.255/${prefix}`).base);
}
