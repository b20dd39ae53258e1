/**
 * The Hearth CA: a local certificate authority that signs the edge's
 * certificates for preview hostnames (one wildcard for `*.<preview domain>`)
 * and, until ACME succeeds, for custom domains. Its key and certificate live
 * in `<data dir>/edge/ca/` (key 0600) and survive restarts, so a browser or
 * system store that trusts it once (`hearth ca --install`) keeps trusting it.
 *
 * ECDSA P-256 everywhere: small, fast handshakes, accepted by every client.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG: EcKeyGenParams & EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const CA_YEARS = 10;
export const LEAF_DAYS = 90;

export interface IssuedCert {
  cert: string;
  key: string;
  notAfter: Date;
}

export function caPaths(dataDir: string): { dir: string; cert: string; key: string } {
  const dir = path.join(dataDir, 'edge', 'ca');
  return { dir, cert: path.join(dir, 'ca.pem'), key: path.join(dir, 'ca.key') };
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function fromPem(text: string): Buffer {
  return Buffer.from(text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function keyPem(k: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', k));
}

export class HearthCA {
  private constructor(
    readonly certPem: string,
    private readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
  ) {}

  /** Load the CA from the data dir, creating it on first use. */
  static async open(dataDir: string): Promise<HearthCA> {
    const p = caPaths(dataDir);
    try {
      const [certPem, keyText] = await Promise.all([fs.readFile(p.cert, 'utf8'), fs.readFile(p.key, 'utf8')]);
      const key = await webcrypto.subtle.importKey('pkcs8', fromPem(keyText), ALG, false, ['sign']);
      return new HearthCA(certPem, new x509.X509Certificate(certPem), key as CryptoKey);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await fs.mkdir(p.dir, { recursive: true, mode: 0o700 });
    const keys = await newKeys();
    const notBefore = new Date(Date.now() - 60_000);
    const notAfter = new Date(notBefore.getTime() + CA_YEARS * 365 * 86400_000);
    const name = `CN=Hearth Local CA (${os.hostname().replace(/[,=+<>#;"\\]/g, '-')} ${Date.now().toString(36)}), O=Hearth`;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(), name, notBefore, notAfter, keys, signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const certPem = cert.toString('pem') + '\n';
    // Key first, then the certificate: a crash between the two leaves no cert without its key.
    const tmpKey = `${p.key}.tmp`;
    await fs.writeFile(tmpKey, await keyPem(keys.privateKey), { mode: 0o600 });
    await fs.rename(tmpKey, p.key);
    await fs.writeFile(`${p.cert}.tmp`, certPem, { mode: 0o644 });
    await fs.rename(`${p.cert}.tmp`, p.cert);
    return new HearthCA(certPem, cert, keys.privateKey);
  }

  /** A leaf certificate for `names` (DNS names; wildcards allowed), valid LEAF_DAYS. */
  async issue(names: string[], days = LEAF_DAYS): Promise<IssuedCert> {
    const keys = await newKeys();
    const notBefore = new Date(Date.now() - 60_000);
    const notAfter = new Date(notBefore.getTime() + days * 86400_000);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${names[0]}`,
      issuer: this.cert.subject,
      notBefore, notAfter,
      publicKey: keys.publicKey,
      signingKey: this.key,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert),
      ],
    });
    // The chain a client needs: leaf then CA.
    return { cert: leaf.toString('pem') + '\n' + this.certPem, key: await keyPem(keys.privateKey), notAfter };
  }

  /** SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint(): string {
    return new NodeX509(this.certPem).fingerprint256;
  }
}

function randomSerial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // positive
  return Buffer.from(b).toString('hex');
}
