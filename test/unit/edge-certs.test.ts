/**
 * The certificate manager without ACME: interim/Hearth-CA certificates for
 * custom hostnames, files in the data dir, renewal before expiry, release.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import pino from 'pino';
import { HearthCA } from '../../src/edge/ca.ts';
import { CertManager, certDir } from '../../src/edge/certs.ts';
import { openSqlite, type Db } from '../../src/store/db.ts';
import { publicDb } from '../../src/control/public-tables.ts';

let dir: string;
let db: Db;
let certs: CertManager;
let ca: HearthCA;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'edge-certs-'));
  db = await openSqlite(':memory:');
  ca = await HearthCA.open(dir);
  certs = new CertManager(dir, db, ca, 'preview.test', null, pino({ level: 'silent' }));
  await certs.init();
});
after(async () => { certs.close(); await db.destroy(); await fs.rm(dir, { recursive: true, force: true }); });

test('the CA persists: reopening the data dir gives the same CA', async () => {
  const again = await HearthCA.open(dir);
  assert.equal(again.fingerprint(), ca.fingerprint());
  assert.equal((await fs.stat(path.join(dir, 'edge', 'ca', 'ca.key'))).mode & 0o777, 0o600);
});

test('a custom hostname gets a Hearth-CA certificate at once, stored in the data dir; release removes it', async () => {
  await certs.request('shop.example.org', 'ws_x');
  const info = await certs.info('shop.example.org');
  assert.equal(info.status, 'active');
  assert.equal(info.source, 'hearth-ca');
  const pem = await fs.readFile(path.join(certDir(dir, 'shop.example.org'), 'cert.pem'), 'utf8');
  const leaf = new X509Certificate(pem);
  assert.equal(leaf.subjectAltName, 'DNS:shop.example.org');
  assert.ok(leaf.verify(new X509Certificate(ca.certPem).publicKey), 'signed by the Hearth CA');
  const events: [string, string | null][] = [];
  const off = certs.onChange((h, file) => events.push([h, file]));
  const bundle = certs.files().find((f) => f.hostname === 'shop.example.org')!;
  assert.equal(bundle.file, path.join(certDir(dir, 'shop.example.org'), 'haproxy.pem'));
  assert.equal(await fs.readFile(bundle.file, 'utf8'), bundle.pem, 'the bundle HAProxy loads: certificate then key');
  assert.match(bundle.pem, /BEGIN CERTIFICATE[\s\S]*PRIVATE KEY/);
  assert.equal((await fs.stat(bundle.file)).mode & 0o777, 0o600);
  assert.equal(certs.files()[0]!.file, certs.previewFile(), 'the preview wildcard is listed first: the default certificate');
  await certs.release('shop.example.org');
  off();
  assert.deepEqual(events, [['shop.example.org', null]], 'the proxy hears that the certificate is gone');
  assert.equal((await certs.info('shop.example.org')).status, 'none');
  await assert.rejects(fs.stat(certDir(dir, 'shop.example.org')));
});

test('renewal: a certificate within 30 days of expiry is replaced by the sweep', async () => {
  await certs.request('renew.example.org', 'ws_x');
  const file = path.join(certDir(dir, 'renew.example.org'), 'cert.pem');
  const before = new X509Certificate(await fs.readFile(file, 'utf8')).serialNumber;
  const soon = new Date(Date.now() + 5 * 86400_000).toISOString();
  await publicDb(db).updateTable('edge_certificates').set({ expires_at: soon }).where('hostname', '=', 'renew.example.org').execute();
  await certs.sweep();
  const after = new X509Certificate(await fs.readFile(file, 'utf8'));
  assert.notEqual(after.serialNumber, before);
  const info = await certs.info('renew.example.org');
  assert.ok(Date.parse(info.expiresAt!) > Date.now() + 80 * 86400_000);
  // auto_renew off: left alone.
  await certs.setAutoRenew('renew.example.org', false);
  await publicDb(db).updateTable('edge_certificates').set({ expires_at: soon }).where('hostname', '=', 'renew.example.org').execute();
  await certs.sweep();
  assert.equal((await certs.info('renew.example.org')).expiresAt, soon);
});
