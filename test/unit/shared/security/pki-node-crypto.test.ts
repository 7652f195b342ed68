/**
 * Reading certificates without @peculiar/x509 (shared/src/security/pki.ts): loadPki,
 * readIdentity, describeCertificate and roleOf use node:crypto's X509Certificate alone, and
 * rebuild the Identity formats @peculiar/x509 printed (subject/issuer `CN=a, OU=b`, lower-case
 * serial, altNames `dns:a`, `ip:…`) from OpenSSL's renderings. Here the library itself is the
 * oracle: certificates it generates, with awkward names and every SAN type it writes, must read
 * back exactly as it reads them. Then the input shapes @peculiar/x509 took, the cryptographic
 * checks (a changed signature byte, a key of another type), and that a process which only reads
 * certificates never loads the library.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import 'reflect-metadata'; // before @peculiar/x509, as the library needs
import * as x509 from '@peculiar/x509';
import { describeCertificate, initPki, issueCertificate, loadPki, roleOf, ROLES } from '@livemig/shared/security';

const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const PKI_MODULE = new URL('../../../../shared/src/security/pki.ts', import.meta.url).href;

x509.cryptoProvider.set(webcrypto);

let keys: webcrypto.CryptoKeyPair;
let dir: string;

beforeAll(async () => {
  keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-pki-node-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e as Error & { code?: string },
  );
  expect(error, 'expected a rejection').not.toBeNull();
  expect(error!.code).toBe(code);
  if (message) expect(error!.message).toMatch(message);
}

/** A self-signed certificate made by @peculiar/x509. */
async function generate(
  name: x509.JsonName | string,
  options: { altNames?: x509.JsonGeneralName[]; serialNumber?: string; extensions?: x509.Extension[] } = {},
): Promise<x509.X509Certificate> {
  const altNames = options.altNames ?? [];
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: options.serialNumber ?? '01ab',
    name,
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2060-01-01T00:00:00Z'),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    keys,
    extensions: [
      ...(altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames)] : []),
      ...(options.extensions ?? []),
    ],
  });
}

/** What Identity said when @peculiar/x509 read the certificate (the code before node:crypto). */
async function asPeculiarSaw(cert: x509.X509Certificate): Promise<Record<string, unknown>> {
  const thumbprint = Buffer.from(await cert.getThumbprint('SHA-256'));
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return {
    name: cert.subjectName.getField('CN')[0] ?? '',
    ca: cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
    fingerprint: [...thumbprint].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':'),
    serialNumber: cert.serialNumber,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    subject: cert.subject,
    issuer: cert.issuer,
    altNames: san ? san.names.items.map((n) => `${n.type}:${n.value}`) : [],
  };
}

// Names as @peculiar/x509 parses them from strings (RFC 4514 escapes) or builds them from JSON.
const NAMES: Array<[string, x509.JsonName | string]> = [
  ['livemig leaf', 'CN=agent-a, OU=livemig-role:agent'],
  ['livemig CA', 'CN=livemig fleet CA 0123abcd'],
  ['specials and the usual attributes', 'CN=a\\,b+OU=x, O=Acme\\, Inc., C=US, ST=Cal, L=SF, DC=example, E=a@b.c'],
  ['escapes', 'CN=\\ lead\\#x\\;\\<\\>\\"q\\\\ trail\\ , OU=ünï cødé'],
  ['leading #', 'CN=\\#lead'],
  ['control characters', [{ CN: ['a\nb\tc\rd\x01e\nf\x7fg'] }]],
  ['multi-valued RDN', [{ CN: ['x'], OU: ['a + b', 'c\\', 'd'] }]],
  ['equals signs, two CNs', [{ CN: ['=a=b', 'two'] }]],
  ['a lone space', [{ CN: [' '] }]],
  ['empty', []],
  ['UTF-8', [{ CN: ['日本 ü'] }]],
  [
    'attributes by OID',
    [
      '2.5.4.5',
      '2.5.4.9',
      '2.5.4.13',
      '2.5.4.15',
      '2.5.4.16',
      '2.5.4.17',
      '2.5.4.18',
      '2.5.4.20',
      '2.5.4.41',
      '2.5.4.44',
      '2.5.4.45',
      '2.5.4.46',
      '2.5.4.65',
      '2.5.4.72',
      '2.5.4.97',
      '0.9.2342.19200300.100.1.1',
      '1.2.840.113549.1.9.2',
      '1.2.840.113549.1.9.8',
      '1.3.6.1.4.1.311.60.2.1.1',
      '1.3.6.1.4.1.311.60.2.1.2',
      '1.3.6.1.4.1.311.60.2.1.3',
      '1.3.6.1.4.1.99999.1',
      '2.5.4.42',
      '2.5.4.43',
      '2.5.4.4',
      '2.5.4.12',
    ].map((oid) => ({ [oid]: ['v'] })),
  ],
  ['roles among other OUs', [{ O: ['o'] }, { OU: ['team'] }, { CN: ['r'] }, { OU: ['livemig-role:viewer'] }]],
  ['two roles', [{ CN: ['r'] }, { OU: ['livemig-role:agent'] }, { OU: ['team', 'livemig-role:admin'] }]],
  ['an unknown role', [{ CN: ['r'] }, { OU: ['livemig-role:root'] }]],
];

const ALT_NAMES: Array<[string, x509.JsonGeneralName[]]> = [
  [
    'dns and IPv4',
    [
      { type: 'dns', value: '10.1.2.3' },
      { type: 'ip', value: '10.1.2.3' },
    ],
  ],
  [
    'email, url, id, upn',
    [
      { type: 'email', value: 'a@b.c' },
      { type: 'url', value: 'https://x/y?a=b,c' },
      { type: 'id', value: '1.2.3.4' },
      { type: 'upn', value: 'u@x' },
    ],
  ],
  [
    'values node:crypto quotes',
    [
      { type: 'dns', value: 'we,ird:"' },
      { type: 'dns', value: "a'b" },
      { type: 'dns', value: 'a\\b' },
      { type: 'email', value: 'ä@x' },
      { type: 'url', value: 'u:1, 2' },
    ],
  ],
  [
    'directory names',
    [
      { type: 'dn', value: 'CN=dir, O=x' },
      { type: 'dn', value: 'CN=a+OU=b, O=c\\, d, C=US' },
    ],
  ],
  ...[
    '::',
    '::1',
    '1::',
    'fe80::1:0:0:1',
    '1:0:0:2:0:0:0:3',
    '1:0:0:2:0:0:3:4',
    '1:2:3:4:5:6:7:8',
    '1:0:2:0:3:0:4:0',
    '0:0:1:0:0:2:0:0',
    '::ffff:10.0.0.1',
    '2001:db8::8:800:200c:417a',
  ].map((ip): [string, x509.JsonGeneralName[]] => [`IPv6 ${ip}`, [{ type: 'ip', value: ip }]]),
];

const SERIALS = ['00', '01', '7f', '80', 'ff', '0080', '000001', 'deadbeef'.repeat(5), '80'.padEnd(40, '0')];

describe('describeCertificate reads what @peculiar/x509 read', () => {
  it.each(NAMES)('subject and issuer: %s', async (_, name) => {
    const cert = await generate(name);
    const pem = cert.toString('pem');
    const identity = await describeCertificate(pem).catch((error: Error) => error);
    const roles = cert.subjectName
      .getField('OU')
      .filter((ou) => ou.startsWith('livemig-role:'))
      .map((ou) => ou.slice('livemig-role:'.length));
    if (roles.length > 1 || (roles.length === 1 && !(ROLES as readonly string[]).includes(roles[0]!))) {
      // Several roles, or an unknown one: refused alike by describeCertificate and roleOf.
      expect(identity).toMatchObject({ code: 'ERR_CERTIFICATE' });
      expect(() => roleOf(pem)).toThrow(/carries .*role/);
      return;
    }
    expect(identity).toEqual({ ...(await asPeculiarSaw(cert)), role: roles[0] ?? null });
  });

  it.each(ALT_NAMES)('altNames: %s', async (_, altNames) => {
    const cert = await generate('CN=x', { altNames });
    expect(await describeCertificate(cert.toString('pem'))).toEqual({ ...(await asPeculiarSaw(cert)), role: null });
  });

  it.each(SERIALS)('serial number %s', async (serialNumber) => {
    const cert = await generate('CN=x', { serialNumber });
    expect((await describeCertificate(cert.toString('pem'))).serialNumber).toBe(cert.serialNumber);
  });

  it('ca: basicConstraints CA true, false or absent', async () => {
    for (const extensions of [
      [new x509.BasicConstraintsExtension(true, 0, true)],
      [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign)],
      [new x509.BasicConstraintsExtension(false)],
      [],
    ]) {
      const cert = await generate('CN=x', { extensions });
      expect((await describeCertificate(cert.toString('pem'))).ca).toBe(
        cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
      );
    }
  });

  it('issued certificates: identity as @peculiar/x509 reads the files', async () => {
    const caIdentity = await initPki(dir);
    const leafIdentity = await issueCertificate(dir, { name: '10.1.2.3', role: 'viewer' });
    const ca = new x509.X509Certificate(await readFile(join(dir, 'ca.pem'), 'utf8'));
    const leaf = new x509.X509Certificate(await readFile(join(dir, '10.1.2.3.pem'), 'utf8'));
    expect(caIdentity).toEqual({ ...(await asPeculiarSaw(ca)), role: null });
    expect(leafIdentity).toEqual({ ...(await asPeculiarSaw(leaf)), role: 'viewer' });
    expect((await loadPki(dir, '10.1.2.3')).identity).toEqual(leafIdentity);
    expect(leafIdentity.subject).toBe('CN=10.1.2.3, OU=livemig-role:viewer');
    expect(leafIdentity.issuer).toBe(caIdentity.subject);
    expect(leafIdentity.altNames).toEqual(['dns:10.1.2.3', 'ip:10.1.2.3']);
    expect(leafIdentity.serialNumber).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('the inputs @peculiar/x509 took', () => {
  it('PEM: CRLF, text around it, a chain (the first), headers, PEM bytes; DER; garbage refused', async () => {
    const cert = await generate('CN=first, OU=livemig-role:agent');
    const other = await generate('CN=second, OU=livemig-role:admin');
    const pem = cert.toString('pem');
    const key = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
    const expected = await describeCertificate(pem);
    expect(expected.name).toBe('first');
    for (const input of [
      pem.replace(/\n/g, '\r\n'),
      `hello\n${pem}\n`,
      `${pem}\n${other.toString('pem')}`,
      `${pem}\n${key}`,
      pem.replace('-----\n', '-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: x\n\n'),
    ]) {
      expect(await describeCertificate(input)).toEqual(expected);
      expect(roleOf(input)).toBe('agent');
    }
    expect(roleOf(new TextEncoder().encode(pem))).toBe('agent');
    expect(roleOf(new Uint8Array(cert.rawData))).toBe('agent');
    expect(roleOf(Buffer.concat([Buffer.from(cert.rawData), Buffer.from([1, 2, 3])]))).toBe('agent');
    for (const garbage of [
      `${key}\n${pem}`, // the first PEM block is the key
      pem.replace(/\n([A-Za-z0-9+/]{10})/, '\n$1='), // not base64
      pem.replace(/-----END[^]*/, ''),
      '-----BEGIN CERTIFICATE-----\n',
      'hello',
    ]) {
      await rejectsWith(describeCertificate(garbage), 'ERR_CERTIFICATE', /is not an X\.509 certificate/);
      expect(() => roleOf(garbage)).toThrow(/not an X\.509 certificate/);
    }
    for (const bytes of [Buffer.from(cert.rawData).subarray(0, 100), new Uint8Array(0)]) {
      expect(() => roleOf(bytes)).toThrow(/not an X\.509 certificate/);
    }
  });
});

describe('loadPki checks with node:crypto', () => {
  beforeEach(async () => {
    await initPki(dir);
    await issueCertificate(dir, { name: 'agent-a', role: 'agent' });
  });

  it('verifies the CA’s signature: one changed signature byte and the certificate is refused', async () => {
    const der = Buffer.from(new X509Certificate(await readFile(join(dir, 'agent-a.pem'))).raw);
    der[der.length - 1]! ^= 0x01; // the last byte of the ECDSA signature's s
    const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
    await writeFile(join(dir, 'agent-a.pem'), pem);
    expect((await describeCertificate(pem)).name).toBe('agent-a'); // still a certificate…
    await rejectsWith(loadPki(dir, 'agent-a'), 'ERR_CERTIFICATE', /agent-a\.pem is not signed by the CA/);
  });

  it.each([
    ['RSA', generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey],
    ['P-384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
    ['Ed25519', generateKeyPairSync('ed25519').privateKey],
  ])('refuses a key of another type (%s)', async (_, key) => {
    await rm(join(dir, 'agent-a-key.pem'));
    await writeFile(join(dir, 'agent-a-key.pem'), key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await rejectsWith(loadPki(dir, 'agent-a'), 'ERR_CERTIFICATE', /agent-a-key\.pem is not the key of .*agent-a\.pem/);
  });
});

describe('@peculiar/x509 is loaded only to issue', () => {
  it('a process that loads, reads and checks certificates never evaluates it (nor reflect-metadata)', async () => {
    // reflect-metadata defines Reflect.getMetadata, and the lazy loader evaluates it first: so it
    // is undefined for as long as neither is loaded.
    await initPki(dir);
    await issueCertificate(dir, { name: 'agent-a', role: 'agent' });
    const script = `
      import { register } from 'tsx/esm/api';
      register();
      const pki = await import(${JSON.stringify(PKI_MODULE)});
      const dir = ${JSON.stringify(dir)};
      const loaded = await pki.loadPki(dir, 'agent-a');
      await pki.readIdentity(dir + '/ca.pem');
      await pki.describeCertificate(loaded.cert);
      pki.roleOf(loaded.cert);
      const reading = typeof Reflect.getMetadata;
      const issued = await pki.issueCertificate(dir, { name: 'agent-b', role: 'operator' });
      console.log(JSON.stringify({ reading, issuing: typeof Reflect.getMetadata, role: issued.role }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
    });
    expect(JSON.parse(stdout)).toEqual({ reading: 'undefined', issuing: 'function', role: 'operator' });
  });
});
