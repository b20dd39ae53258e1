/**
 * Proof of ownership for custom domains, the pure part: which DNS record a
 * claim asks for, whether what DNS answered proves it, which hostnames a
 * proven domain covers, and the status a claim shows. The I/O (the claims
 * table, DNS lookups) is in src/control/public-access.ts.
 *
 * A claim binds one domain to one workspace with a random token. Publishing
 * `_hearth-challenge.<domain>  TXT  "hearth-verify=<token>"` proves that
 * whoever asked for the domain controls its DNS; until then the domain is
 * `pending`: the edge does not route it and no certificate is requested.
 * A proven domain covers itself and every name under it (so `www.<domain>`
 * and `<slug>.<domain>` ride on one proof).
 */

export const CHALLENGE_LABEL = '_hearth-challenge';
export const CHALLENGE_PREFIX = 'hearth-verify=';

/** Token alphabet: lowercase base32 (RFC 4648 letters), safe in DNS TXT and URLs. */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** A claim token from 16+ random bytes (pass crypto.randomBytes output): 5 bits per character. */
export function tokenFromBytes(bytes: Uint8Array): string {
  if (bytes.length < 16) throw new Error('a domain token needs at least 16 random bytes');
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

/** The DNS name that must hold the TXT record for `domain`. */
export function challengeHost(domain: string): string {
  return `${CHALLENGE_LABEL}.${domain}`;
}

/** The TXT value that proves a claim with `token`. */
export function challengeValue(token: string): string {
  return `${CHALLENGE_PREFIX}${token}`;
}

/** The record to create, as the API shows it. */
export function requiredTxt(domain: string, token: string): { type: 'TXT'; host: string; value: string; note: string } {
  return {
    type: 'TXT', host: challengeHost(domain), value: challengeValue(token),
    note: `create this TXT record to prove you control ${domain}; until it resolves the domain is pending (not routed, no certificate)`,
  };
}

/**
 * Whether the TXT strings found at the challenge host prove the token. Each
 * entry is one record (its character-strings already joined); surrounding
 * quotes and whitespace are forgiven, anything else must match exactly.
 */
export function txtProves(records: readonly string[], token: string): boolean {
  const want = challengeValue(token);
  return records.some((r) => r.trim().replace(/^"(.*)"$/, '$1').trim() === want);
}

/** Whether a proof of `domain` covers `hostname` (the domain itself or a name under it). */
export function covers(domain: string, hostname: string): boolean {
  return hostname === domain || hostname.endsWith(`.${domain}`);
}

export type ClaimStatus = 'pending' | 'verified';

/** What a claim shows: `active` once proven and routed, `verified` if proven but the name is routed elsewhere, else `pending`. */
export type DomainStatus = 'pending' | 'verified' | 'active';

/**
 * The next state of a claim. A proven claim stays proven while its workspace
 * uses the domain (a failed lookup later is a DNS hiccup, not a loss of
 * ownership); once nothing uses it any more it goes back to pending with
 * its token, so a stale proof never routes the domain again — reconnecting
 * needs the record to be there still. A pending claim becomes verified only
 * when the record is found.
 */
export function nextClaimStatus(current: ClaimStatus, check: { found: boolean; inUse?: boolean }): ClaimStatus {
  if (check.inUse === false) return 'pending';
  if (current === 'verified') return 'verified';
  return check.found ? 'verified' : 'pending';
}

export function domainStatus(claim: ClaimStatus, routedHere: boolean): DomainStatus {
  if (claim === 'pending') return 'pending';
  return routedHere ? 'active' : 'verified';
}
