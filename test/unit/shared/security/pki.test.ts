/**
 * The fleet PKI (shared/src/security/pki.ts): what init and issue write, every rejection path
 * (bad names, roles and validity, overwrites, missing files, open key permissions, another CA,
 * expiry, a key that is not the certificate's, no role), and that the certificates really work:
 * a node:tls server and client complete a TLS 1.3 handshake with mutual authentication, a client
 * from another CA is turned away, and the role comes back through getPeerCertificate().
 */
import { chmod, mkdtemp, readFile, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import 'reflect-metadata'; // before @peculiar/x509, as the library needs
import * as x509 from '@peculiar/x509';
import {
  describeCertificate,
  initPki,
  issueCertificate,
  loadPki,
  readIdentity,
  roleOf,
  ROLES,
  type LoadedPki,
} from '@livemig/shared/security';

let dir: string;
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'livemig-pki-'));
  dirs.push(d);
  return d;
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e as Error & { code?: string },
  );
  expect(error, 'expected a rejection').not.toBeNull();
  expect(error!.code).toBe(code);
  if (message) expect(error!.message).toMatch(message);
}

beforeEach(async () => {
  dir = await tempDir();
});

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('initPki', () => {
  it('writes a self-signed P-256 CA with keyCertSign and a 0600 PKCS#8 key', async () => {
    const identity = await initPki(dir);
    expect(identity.ca).toBe(true);
    expect(identity.role).toBeNull();
    expect(identity.subject).toBe(identity.issuer);
    const pem = await readFile(join(dir, 'ca.pem'), 'utf8');
    const cert = new X509Certificate(pem);
    expect(cert.ca).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const parsed = new x509.X509Certificate(pem);
    const usages = parsed.getExtension(x509.KeyUsagesExtension)!;
    expect(usages.critical).toBe(true);
    expect(usages.usages & x509.KeyUsageFlags.keyCertSign).toBe(x509.KeyUsageFlags.keyCertSign);
    expect(parsed.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: true, critical: true });
    expect(cert.fingerprint256).toBe(identity.fingerprint);
    const key = await readFile(join(dir, 'ca-key.pem'), 'utf8');
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect((await stat(join(dir, 'ca-key.pem'))).mode & 0o777).toBe(0o600);
  });

  it('refuses to overwrite an existing CA (cert or key)', async () => {
    await initPki(dir);
    const before = await readFile(join(dir, 'ca.pem'), 'utf8');
    await rejectsWith(initPki(dir), 'ERR_PKI', /already exists/);
    expect(await readFile(join(dir, 'ca.pem'), 'utf8')).toBe(before);
    const other = await tempDir();
    await writeFile(join(other, 'ca-key.pem'), 'x', { mode: 0o600 });
    await rejectsWith(initPki(other), 'ERR_PKI', /ca-key\.pem already exists/);
  });

  it('rejects a bad validity or CA name', async () => {
    await rejectsWith(initPki(dir, { days: 0 }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(initPki(dir, { days: 3651 }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(initPki(dir, { commonName: 'a,OU=evil' }), 'ERR_INVALID_ARGUMENT');
  });
});

describe('issueCertificate', () => {
  beforeEach(async () => {
    await initPki(dir);
  });

  it('issues a CA-signed certificate: CN, dNSName SAN, role OU, serverAuth+clientAuth, 0600 key, 1 year', async () => {
    const identity = await issueCertificate(dir, { name: 'agent-a', role: 'agent' });
    expect(identity).toMatchObject({ name: 'agent-a', role: 'agent', ca: false, altNames: ['dns:agent-a'] });
    const ca = new X509Certificate(await readFile(join(dir, 'ca.pem')));
    const cert = new X509Certificate(await readFile(join(dir, 'agent-a.pem')));
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.subject).toBe('CN=agent-a\nOU=livemig-role:agent');
    expect(cert.subjectAltName).toBe('DNS:agent-a');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(cert.fingerprint256).toBe(identity.fingerprint);
    const days = (identity.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(364.9);
    expect(days).toBeLessThan(365.1);
    expect((await stat(join(dir, 'agent-a-key.pem'))).mode & 0o777).toBe(0o600);
  });

  it('adds an IP SAN for an IPv4 name, and honours --days', async () => {
    const identity = await issueCertificate(dir, { name: '10.1.2.3', role: 'viewer', days: 7 });
    expect(identity.altNames).toEqual(['dns:10.1.2.3', 'ip:10.1.2.3']);
    const cert = new X509Certificate(await readFile(join(dir, '10.1.2.3.pem')));
    expect(cert.checkIP('10.1.2.3')).toBe('10.1.2.3');
    expect((identity.notAfter.getTime() - Date.now()) / 86_400_000).toBeCloseTo(7, 1);
  });

  it.each(ROLES)('carries role %s', async (role) => {
    const identity = await issueCertificate(dir, { name: `n-${role}`, role });
    expect(identity.role).toBe(role);
    expect(roleOf(await readFile(join(dir, `n-${role}.pem`), 'utf8'))).toBe(role);
  });

  it.each(['', '../evil', 'a/b', 'a\\b', '-lead', 'trail-', 'a..b', 'sp ace', 'x'.repeat(64), 'ca', 'foo-key', '::1'])(
    'rejects the name %j',
    async (name) => {
      await rejectsWith(issueCertificate(dir, { name, role: 'agent' }), 'ERR_INVALID_ARGUMENT');
    },
  );

  it('rejects an unknown role and a bad validity', async () => {
    await rejectsWith(issueCertificate(dir, { name: 'a', role: 'root' as never }), 'ERR_INVALID_ARGUMENT', /role/);
    await rejectsWith(issueCertificate(dir, { name: 'a', role: 'agent', days: 0 }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(issueCertificate(dir, { name: 'a', role: 'agent', days: 1.5 }), 'ERR_INVALID_ARGUMENT');
  });

  it('refuses a certificate that would outlive its CA', async () => {
    const short = await tempDir();
    await initPki(short, { days: 10 });
    await rejectsWith(
      issueCertificate(short, { name: 'a', role: 'agent', days: 30 }),
      'ERR_INVALID_ARGUMENT',
      /outlive/,
    );
  });

  it('refuses to overwrite an issued certificate', async () => {
    await issueCertificate(dir, { name: 'a', role: 'agent' });
    await rejectsWith(issueCertificate(dir, { name: 'a', role: 'admin' }), 'ERR_PKI', /already exists/);
    expect((await readIdentity(join(dir, 'a.pem'))).role).toBe('agent');
  });

  it('refuses without a CA, or with a CA key group/other can read', async () => {
    await rejectsWith(issueCertificate(await tempDir(), { name: 'a', role: 'agent' }), 'ERR_PKI', /pki init/);
    await chmod(join(dir, 'ca-key.pem'), 0o640);
    await rejectsWith(issueCertificate(dir, { name: 'a', role: 'agent' }), 'ERR_PKI', /chmod 600/);
  });
});

describe('describeCertificate / readIdentity / roleOf', () => {
  it('describes a certificate; garbage and missing files are typed errors', async () => {
    await initPki(dir);
    await issueCertificate(dir, { name: 'alice', role: 'operator' });
    const pem = await readFile(join(dir, 'alice.pem'), 'utf8');
    const identity = await describeCertificate(pem);
    expect(identity).toEqual(await readIdentity(join(dir, 'alice.pem')));
    expect(identity.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(identity.issuer).toMatch(/^CN=livemig fleet CA [0-9a-f]{8}$/);
    await rejectsWith(describeCertificate('hello'), 'ERR_CERTIFICATE');
    await rejectsWith(describeCertificate(await readFile(join(dir, 'alice-key.pem'), 'utf8')), 'ERR_CERTIFICATE');
    await rejectsWith(readIdentity(join(dir, 'nope.pem')), 'ERR_PKI', /does not exist/);
  });

  it('roleOf reads PEM, DER and getPeerCertificate()-shaped objects, and refuses no/many/unknown roles', async () => {
    await initPki(dir);
    await issueCertificate(dir, { name: 'bob', role: 'viewer' });
    const pem = await readFile(join(dir, 'bob.pem'), 'utf8');
    expect(roleOf(pem)).toBe('viewer');
    expect(roleOf(new X509Certificate(pem).raw)).toBe('viewer');
    expect(roleOf({ subject: { CN: 'x', OU: 'livemig-role:admin' } })).toBe('admin');
    expect(roleOf({ subject: { CN: 'x', OU: ['team-a', 'livemig-role:operator'] } })).toBe('operator');
    const reject = (input: Parameters<typeof roleOf>[0], message: RegExp): void => {
      expect(() => roleOf(input)).toThrow(message);
      try {
        roleOf(input);
      } catch (error) {
        expect((error as { code?: string }).code).toBe('ERR_CERTIFICATE');
      }
    };
    reject({}, /no certificate/);
    reject({ subject: { CN: 'x' } }, /no livemig role/);
    reject({ subject: { CN: 'x', OU: 'team-a' } }, /no livemig role/);
    reject({ subject: { OU: ['livemig-role:viewer', 'livemig-role:admin'] } }, /2 livemig roles/);
    reject({ subject: { OU: 'livemig-role:root' } }, /unknown role "root"/);
    reject(await readFile(join(dir, 'ca.pem'), 'utf8'), /no livemig role/);
    reject('not a certificate', /not an X.509 certificate/);
  });
});

describe('loadPki', () => {
  beforeEach(async () => {
    await initPki(dir);
    await issueCertificate(dir, { name: 'agent-a', role: 'agent' });
  });

  it('returns the PEMs node:tls takes, and the identity', async () => {
    const pki = await loadPki(dir, 'agent-a');
    expect(pki.ca).toBe(await readFile(join(dir, 'ca.pem'), 'utf8'));
    expect(pki.cert).toBe(await readFile(join(dir, 'agent-a.pem'), 'utf8'));
    expect(pki.key).toBe(await readFile(join(dir, 'agent-a-key.pem'), 'utf8'));
    expect(pki.identity).toMatchObject({ name: 'agent-a', role: 'agent' });
  });

  it('refuses a bad name and missing files', async () => {
    await rejectsWith(loadPki(dir, '../agent-a'), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(loadPki(dir, 'nobody'), 'ERR_PKI', /nobody\.pem does not exist.*pki issue/);
    await rm(join(dir, 'agent-a-key.pem'));
    await rejectsWith(loadPki(dir, 'agent-a'), 'ERR_PKI', /agent-a-key\.pem does not exist/);
    await rejectsWith(loadPki(await tempDir(), 'agent-a'), 'ERR_PKI', /ca\.pem does not exist.*pki init/);
  });

  it.each([0o640, 0o604, 0o644, 0o660])('refuses a key file with mode %o', async (mode) => {
    await chmod(join(dir, 'agent-a-key.pem'), mode);
    await rejectsWith(loadPki(dir, 'agent-a'), 'ERR_PKI', /readable by group or others/);
  });

  it('refuses a certificate signed by another CA (even one with the same name)', async () => {
    const other = await tempDir();
    const ca = await describeCertificate(await readFile(join(dir, 'ca.pem'), 'utf8'));
    await initPki(other, { commonName: ca.name }); // same issuer DN, another key
    await issueCertificate(other, { name: 'mallory', role: 'admin' });
    await copyFile(join(other, 'mallory.pem'), join(dir, 'mallory.pem'));
    await copyFile(join(other, 'mallory-key.pem'), join(dir, 'mallory-key.pem'));
    await rejectsWith(loadPki(dir, 'mallory'), 'ERR_CERTIFICATE', /not signed by the CA/);
  });

  it('refuses an expired or not yet valid certificate, and an expired CA', async () => {
    const longAgo = new Date(Date.now() - 30 * 86_400_000);
    await issueCertificate(dir, { name: 'old', role: 'agent', days: 1, now: longAgo });
    await rejectsWith(loadPki(dir, 'old'), 'ERR_CERTIFICATE', /old\.pem expired/);
    await rejectsWith(
      loadPki(dir, 'agent-a', { now: new Date(Date.now() - 86_400_000) }),
      'ERR_CERTIFICATE',
      /not valid before/,
    );
    await rejectsWith(
      loadPki(dir, 'agent-a', { now: new Date(Date.now() + 3651 * 86_400_000) }),
      'ERR_CERTIFICATE',
      /ca\.pem expired/,
    );
  });

  it('refuses a key that is not the certificate’s', async () => {
    await issueCertificate(dir, { name: 'b', role: 'agent' });
    await copyFile(join(dir, 'b-key.pem'), join(dir, 'agent-a-key.pem'));
    await rejectsWith(loadPki(dir, 'agent-a'), 'ERR_CERTIFICATE', /is not the key of/);
    await writeFile(join(dir, 'agent-a-key.pem'), 'garbage', { mode: 0o600 });
    await rejectsWith(loadPki(dir, 'agent-a'), 'ERR_CERTIFICATE', /is not a private key/);
  });
});

describe('the certificates in real node:tls (TLS 1.3, mutual authentication)', () => {
  interface Outcome {
    serverRole?: string;
    serverAuthorized?: boolean;
    serverAuthorizationError?: string;
    clientRole?: string;
    protocol?: string | null;
    clientError?: string;
    serverError?: string;
  }

  async function handshake(
    server: LoadedPki,
    client: LoadedPki,
    servername: string,
    rejectUnauthorized = true,
  ): Promise<Outcome> {
    const outcome: Outcome = {};
    const tlsServer = createServer({
      ca: server.ca,
      cert: server.cert,
      key: server.key,
      requestCert: true,
      rejectUnauthorized,
      minVersion: 'TLSv1.3',
    });
    const serverDone = new Promise<void>((resolve) => {
      tlsServer.on('secureConnection', (socket: TLSSocket) => {
        outcome.serverAuthorized = socket.authorized;
        if (socket.authorized) outcome.clientRole = roleOf(socket.getPeerCertificate());
        else outcome.serverAuthorizationError = String(socket.authorizationError);
        socket.end('ok');
        resolve();
      });
      tlsServer.on('tlsClientError', (error) => {
        outcome.serverError = `${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}`;
        resolve();
      });
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    const { port } = tlsServer.address() as AddressInfo;
    const clientDone = new Promise<void>((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        servername,
        ca: client.ca,
        cert: client.cert,
        key: client.key,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
      });
      socket.on('secureConnect', () => {
        outcome.protocol = socket.getProtocol();
        outcome.serverRole = roleOf(socket.getPeerCertificate());
      });
      socket.on('data', () => socket.end());
      socket.on('error', (error: NodeJS.ErrnoException) => {
        outcome.clientError = error.code ?? error.message;
        resolve();
      });
      socket.on('close', () => resolve());
    });
    await Promise.all([clientDone, serverDone]);
    await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    return outcome;
  }

  it('an agent and an operator of one fleet complete a TLS 1.3 handshake; roles read back', async () => {
    await initPki(dir);
    await issueCertificate(dir, { name: 'agent-a', role: 'agent' });
    await issueCertificate(dir, { name: 'alice', role: 'operator' });
    const outcome = await handshake(await loadPki(dir, 'agent-a'), await loadPki(dir, 'alice'), 'agent-a');
    expect(outcome).toEqual({
      protocol: 'TLSv1.3',
      serverAuthorized: true,
      serverRole: 'agent',
      clientRole: 'operator',
    });
  });

  it('a server reached by IP address verifies through its IP SAN', async () => {
    await initPki(dir);
    await issueCertificate(dir, { name: '127.0.0.1', role: 'agent' });
    await issueCertificate(dir, { name: 'b', role: 'agent' });
    const outcome = await handshake(await loadPki(dir, '127.0.0.1'), await loadPki(dir, 'b'), '');
    expect(outcome).toMatchObject({ protocol: 'TLSv1.3', serverRole: 'agent', clientRole: 'agent' });
  });

  it('a client certificate from another CA is rejected by the server', async () => {
    await initPki(dir);
    await issueCertificate(dir, { name: 'agent-a', role: 'agent' });
    const other = await tempDir();
    await initPki(other);
    await issueCertificate(other, { name: 'mallory', role: 'admin' });
    const mallory = await loadPki(other, 'mallory');
    // Mallory trusts our CA (so the server's certificate is fine) but holds another CA's certificate.
    const server = await loadPki(dir, 'agent-a');
    const client = { ...mallory, ca: server.ca };
    const outcome = await handshake(server, client, 'agent-a');
    expect(outcome.serverAuthorized).toBeUndefined(); // no secure connection on the server, ever
    expect(outcome.clientRole).toBeUndefined();
    expect(outcome.serverError).toBeDefined();
    // Why: the same handshake, with the server told to accept and report, names the reason.
    const why = await handshake(server, client, 'agent-a', false);
    expect(why.serverAuthorized).toBe(false);
    expect(why.serverAuthorizationError).toMatch(/UNABLE_TO_GET_ISSUER_CERT|CERT_SIGNATURE_FAILURE|UNABLE_TO_VERIFY/);
  });

  it('a server certificate from another CA is rejected by the client', async () => {
    await initPki(dir);
    await issueCertificate(dir, { name: 'alice', role: 'operator' });
    const other = await tempDir();
    await initPki(other);
    await issueCertificate(other, { name: 'agent-a', role: 'agent' });
    const outcome = await handshake(await loadPki(other, 'agent-a'), await loadPki(dir, 'alice'), 'agent-a');
    expect(outcome.serverRole).toBeUndefined();
    expect(outcome.clientError).toMatch(/UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED|UNABLE_TO_VERIFY/);
  });
});
