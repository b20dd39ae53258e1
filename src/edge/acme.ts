/**
 * ACME issuance (RFC 8555) with acme-client, HTTP-01 only: the edge itself
 * answers `/.well-known/acme-challenge/<token>` on its HTTP listener from
 * the challenge map here. The account key lives in the data dir so the
 * account survives restarts. No self-check of the challenge before asking
 * the CA: that would resolve the domain from this host, which may not be
 * able to (or allowed to) reach public DNS; the CA's own validation decides.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import acme from 'acme-client';

export interface AcmeOptions {
  directoryUrl: string;
  email?: string;
}

export interface AcmeResult {
  cert: string;
  key: string;
  notAfter: Date;
}

export class AcmeIssuer {
  private client: acme.Client | null = null;
  /** token → key authorization, served by the edge over HTTP. */
  private readonly challenges = new Map<string, string>();

  constructor(private readonly dataDir: string, readonly opts: AcmeOptions) {
    // Never send loopback/private ACME traffic through an environment proxy.
    acme.axios.defaults.proxy = false;
  }

  challengeResponse(token: string): string | undefined {
    return this.challenges.get(token);
  }

  private async account(): Promise<acme.Client> {
    if (this.client) return this.client;
    const dir = path.join(this.dataDir, 'edge', 'acme');
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    // One account per directory URL (switching CA must not reuse another CA's account).
    const tag = Buffer.from(this.opts.directoryUrl).toString('base64url').slice(0, 48);
    const keyFile = path.join(dir, `account-${tag}.key`);
    let accountKey: Buffer;
    try {
      accountKey = await fs.readFile(keyFile);
    } catch {
      accountKey = await acme.crypto.createPrivateEcdsaKey('P-256');
      await fs.writeFile(keyFile, accountKey, { mode: 0o600 });
    }
    const client = new acme.Client({ directoryUrl: this.opts.directoryUrl, accountKey, backoffAttempts: 10, backoffMin: 200, backoffMax: 3000 });
    await client.createAccount({ termsOfServiceAgreed: true, ...(this.opts.email ? { contact: [`mailto:${this.opts.email}`] } : {}) });
    this.client = client;
    return client;
  }

  /** Obtain a certificate for `hostname` (HTTP-01); throws with the CA's reason on failure. */
  async issue(hostname: string): Promise<AcmeResult> {
    const client = await this.account();
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: hostname }] });
    const authorizations = await client.getAuthorizations(order);
    const tokens: string[] = [];
    try {
      for (const authz of authorizations) {
        if (authz.status === 'valid') continue;
        const challenge = authz.challenges.find((c) => c.type === 'http-01');
        if (!challenge) throw new Error(`the ACME server offers no http-01 challenge for ${authz.identifier.value}`);
        this.challenges.set(challenge.token, await client.getChallengeKeyAuthorization(challenge));
        tokens.push(challenge.token);
        await client.completeChallenge(challenge);
        await client.waitForValidStatus(challenge);
      }
      const [key, csr] = await acme.crypto.createCsr({ commonName: hostname, altNames: [hostname] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
      const finalized = await client.finalizeOrder(order, csr);
      const cert = await client.getCertificate(finalized);
      const info = acme.crypto.readCertificateInfo(cert);
      return { cert, key: key.toString(), notAfter: info.notAfter };
    } finally {
      for (const t of tokens) this.challenges.delete(t);
    }
  }
}
