/**
 * Hostname rules of public access, pure, shared by the control plane and the
 * edge: normalizing a Host header, validating custom domains and preview
 * slugs, minting preview hashes and building the public URL of a route.
 * No I/O; unit-tested in test/unit/core-hostnames.test.ts.
 */
import { AGENT_PORT } from './agent-protocol.ts';
import { randomBytes } from 'node:crypto';
import { ValidationFailed } from './errors.ts';

/** A DNS label of a preview slug: 3–63 characters, a-z 0-9 and inner dashes. */
export const PREVIEW_SLUG_RE = /^[a-z0-9]([a-z0-9-]{1,61}[a-z0-9])$/;
const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4_RE = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Ports that may never be exposed: the guest agent's own API. */
export const RESERVED_PORTS = new Set([AGENT_PORT]);

/**
 * The host part of a Host header or SNI name, lowercased, without port or
 * trailing dot. Returns null for anything that is not a plausible hostname
 * (so a garbage Host header is a 404, never a crash).
 */
export function normalizeHost(raw: string | undefined | null): string | null {
  if (!raw) return null;
  let h = raw.trim().toLowerCase();
  if (h.startsWith('[')) return null; // IPv6 literal: never a routed name
  const colon = h.lastIndexOf(':');
  if (colon !== -1) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253) return null;
  if (!h.split('.').every((l) => LABEL_RE.test(l))) return null;
  return h;
}

/** A custom domain a caller brings: a full hostname of at least two labels, not an IP. */
export function validateDomain(input: unknown, field = 'domain'): string {
  if (typeof input !== 'string' || input.trim() === '') throw new ValidationFailed(field, `${field} must be a hostname such as api.example.com`);
  const h = normalizeHost(input.replace(/^https?:\/\//i, '').replace(/\/.*$/, ''));
  if (!h || IPV4_RE.test(h) || !h.includes('.')) {
    throw new ValidationFailed(field, `${field} ${JSON.stringify(input)} is not a valid hostname (want e.g. api.example.com)`);
  }
  if (h.startsWith('*.')) throw new ValidationFailed(field, 'wildcard domains cannot be connected; connect each hostname');
  return h;
}

export function validatePreviewSlug(input: unknown): string {
  if (typeof input !== 'string' || !PREVIEW_SLUG_RE.test(input)) {
    throw new ValidationFailed('slug', `slug ${JSON.stringify(input)} must be 3–63 characters of a-z, 0-9 and "-", not starting or ending with "-"`);
  }
  return input;
}

export function validatePort(input: unknown, field = 'port'): number {
  const n = typeof input === 'string' && /^\d+$/.test(input) ? Number(input) : input;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new ValidationFailed(field, `${field} must be a whole number between 1 and 65535`);
  if (RESERVED_PORTS.has(n)) throw new ValidationFailed(field, `port ${n} is reserved for the Hearth guest agent and cannot be exposed`);
  return n;
}

/** A preview hash: 10 characters of [a-z0-9], ~51 bits, unguessable enough to be the only secret of a preview URL. */
export function previewHash(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(10);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  // A DNS label must start with a letter or digit; every character here is one.
  return s;
}

/** Whether `host` is `base` or lies under it. */
export function isUnder(host: string, base: string): boolean {
  return host === base || host.endsWith(`.${base}`);
}

export interface EdgePorts {
  /** Public HTTP port of the edge (null = HTTP not served). */
  http: number | null;
  /** Public HTTPS port of the edge (null = HTTPS not served). */
  https: number | null;
}

/** The URL of a hostname on the edge: https when the edge serves TLS, with the port unless it is the default. */
export function publicUrl(hostname: string, ports: EdgePorts): string {
  if (ports.https !== null) return `https://${hostname}${ports.https === 443 ? '' : `:${ports.https}`}`;
  if (ports.http !== null) return `http://${hostname}${ports.http === 80 ? '' : `:${ports.http}`}`;
  return `https://${hostname}`;
}

/**
 * Which hostname an expose request asks for (§9 URL rules):
 * no slug, no domain → `<hash>.<preview>`; slug (+ domain or the preview
 * base) → `<slug>.<base>`; a domain alone that is not a known base → that
 * exact hostname.
 */
export function exposeHostname(req: { hash: string; slug: string | null; domain: string | null }, previewDomain: string): { hostname: string; custom: boolean } {
  const base = req.domain ?? previewDomain;
  if (req.slug) return { hostname: `${req.slug}.${base}`, custom: base !== previewDomain };
  if (req.domain === null || req.domain === previewDomain) return { hostname: `${req.hash}.${previewDomain}`, custom: false };
  return { hostname: req.domain, custom: true };
}
