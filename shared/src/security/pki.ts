/**
 * The fleet PKI: one CA per fleet, and one certificate per agent or person, each carrying a role.
 *
 * Flow (who owns what):
 *   initPki(dir)                    → DIR/ca.pem + DIR/ca-key.pem (0600). The CA key stays with the
 *                                     operator who issues; agents never need it.
 *   issueCertificate(dir, {…})      → DIR/NAME.pem + DIR/NAME-key.pem (0600), signed by the CA key.
 *   loadPki(dir, name)              → { ca, cert, key } PEM strings for `tls.createSecureContext`,
 *                                     checked first: files present, key not group/other readable,
 *                                     cert signed by this CA, within its validity, key matches.
 *   roleOf(peer)                    → the role of a peer, from `socket.getPeerCertificate()`.
 *
 * Keys are ECDSA P-256 (small, fast, what every TLS 1.3 stack speaks), generated and signed with
 * Node's WebCrypto through @peculiar/x509 — no openssl binary, no shell-outs. Files are created
 * with the exclusive flag (`wx`), so nothing here ever overwrites a CA, a certificate or a key.
 *
 * Where the role lives: an OU in the subject, `OU=livemig-role:<role>`. A custom extension under a
 * private OID would be the more "proper" place, but node:tls's `getPeerCertificate()` does not
 * expose unknown extensions, so every check would have to re-parse the DER; the subject is
 * parsed by node:tls already (`peer.subject.OU`), `openssl x509 -text` shows it, and it is covered
 * by the CA's signature just as an extension is. The `livemig-role:` prefix keeps it apart from
 * any OU an operator might add. Exactly one such OU must be present, or the certificate is
 * refused (ERR_CERTIFICATE): never guess a role.
 */
// @peculiar/x509 2.x resolves its algorithm providers through tsyringe, which needs the Reflect
// metadata API: the polyfill must be evaluated before the library, hence the first import.
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { MigrationError } from '../errors.ts';
import { ROLES, type Role } from './roles.ts';

// @peculiar/x509 keeps one provider per process; it is Node's own WebCrypto, set once here.
x509.cryptoProvider.set(webcrypto);

/** The subject OU prefix that marks the role (`OU=livemig-role:operator`). */
export const ROLE_OU_PREFIX = 'livemig-role:';

/** File names inside a PKI directory. */
export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';

const DAY_MS = 86_400_000;
/** Certificates start this long before "now": another host's clock may be a little behind. */
const BACKDATE_MS = 5 * 60_000;
const MAX_DAYS = 3650;
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
// A DNS name of labels (letters, digits, inner hyphens), or an IP address; no path separators.
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const NAME_PATTERN = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);

/** Options of initPki. */
export interface InitPkiOptions {
  /** The CA's common name. @default `livemig fleet CA <8 random hex>` (two fleets tell apart) */
  commonName?: string;
  /** How long the CA is valid, in days (1…3650). @default 3650 */
  days?: number;
  /** The issue time. @default new Date() */
  now?: Date;
}

/** What a certificate is issued for. */
export interface IssueOptions {
  /** The agent's host name or address, or a person's login: CN and subjectAltName. */
  name: string;
  role: Role;
  /** How long it is valid, in days (1…3650, and not past the CA's end). @default 365 */
  days?: number;
  /** The issue time. @default new Date() */
  now?: Date;
}

/** What a certificate says, as `livemig pki show` prints it. */
export interface Identity {
  /** The subject common name. */
  name: string;
  /** The livemig role, or null for a certificate without one (the CA). */
  role: Role | null;
  /** Whether it is a CA certificate (basicConstraints CA). */
  ca: boolean;
  /** SHA-256 of the DER, colon-separated upper-case hex as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  subject: string;
  issuer: string;
  /** subjectAltName entries, e.g. `["dns:agent-a", "ip:10.0.0.1"]`. */
  altNames: string[];
}

/** What node:tls needs for one side of a mutually authenticated connection. */
export interface LoadedPki {
  /** The fleet CA certificate (PEM): the only issuer to trust. */
  ca: string;
  /** This identity's certificate (PEM). */
  cert: string;
  /** Its private key (PKCS#8 PEM). */
  key: string;
  identity: Identity;
}

/** Options of loadPki. */
export interface LoadPkiOptions {
  /** The time the certificates must be valid at. @default new Date() */
  now?: Date;
}

/** Throw ERR_INVALID_ARGUMENT unless `name` can name a certificate and its files. */
export function validateName(name: string): void {
  const ok = name.length <= 253 && (NAME_PATTERN.test(name) || isIP(name) === 4);
  if (!ok) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `invalid certificate name "${name}": use a DNS name (letters, digits, hyphens, dots) or an IPv4 address`,
    );
  }
  // NAME.pem and NAME-key.pem must never be the CA's files or another name's key.
  if (name === 'ca' || name.endsWith('-key')) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `certificate name "${name}" is reserved (ca, *-key)`);
  }
}

/** Throw ERR_INVALID_ARGUMENT unless `role` is one of ROLES. */
export function validateRole(role: string): asserts role is Role {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `invalid role "${role}": use ${ROLES.join(', ')}`);
  }
}

function validateDays(days: number): void {
  if (!Number.isSafeInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `validity must be a whole number of days in 1…${MAX_DAYS}, got ${days}`,
    );
  }
}

/**
 * Create a fleet CA in `dir` (created 0700 if missing): `ca.pem`, self-signed, basicConstraints
 * CA (path length 0: it signs leaves only), keyCertSign + cRLSign; and `ca-key.pem` (PKCS#8, 0600).
 * Refuses with ERR_PKI when either file exists. Resolves with the CA's identity.
 */
export async function initPki(dir: string, options: InitPkiOptions = {}): Promise<Identity> {
  const days = options.days ?? MAX_DAYS;
  const now = options.now ?? new Date();
  const commonName = options.commonName ?? `livemig fleet CA ${randomBytes(4).toString('hex')}`;
  validateDays(days);
  if (!/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/.test(commonName)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `invalid CA name "${commonName}"`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const file of [CA_CERT_FILE, CA_KEY_FILE]) {
    if (await exists(join(dir, file))) {
      throw new MigrationError('ERR_PKI', `${join(dir, file)} already exists: a CA is never overwritten`);
    }
  }
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [commonName] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + days * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  // The key first: a crash in between leaves a key without a certificate, never the reverse.
  await writeExclusive(join(dir, CA_KEY_FILE), await privateKeyPem(keys.privateKey), 0o600);
  await writeExclusive(join(dir, CA_CERT_FILE), cert.toString('pem') + '\n', 0o644);
  return describe(cert);
}

/**
 * Issue `DIR/NAME.pem` and `DIR/NAME-key.pem` (0600), signed by the CA in `dir`: CN and dNSName
 * = name (plus an IP SAN when the name is an IP address), `OU=livemig-role:<role>`,
 * extendedKeyUsage serverAuth + clientAuth (an agent is both), digitalSignature. Refuses with
 * ERR_PKI when either file exists or the CA key is group/other readable.
 */
export async function issueCertificate(dir: string, options: IssueOptions): Promise<Identity> {
  const { name, role } = options;
  const days = options.days ?? 365;
  const now = options.now ?? new Date();
  validateName(name);
  validateRole(role);
  validateDays(days);
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  const caPem = await readPkiFile(join(dir, CA_CERT_FILE), 'run `livemig pki init` first');
  const caKeyPem = await readPkiFile(join(dir, CA_KEY_FILE), 'run `livemig pki init` first', { secret: true });
  for (const file of [certFile, keyFile]) {
    if (await exists(file)) {
      throw new MigrationError('ERR_PKI', `${file} already exists: a certificate is never overwritten`);
    }
  }
  const caCert = parseCertificate(caPem, join(dir, CA_CERT_FILE));
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    pemBody(caKeyPem, join(dir, CA_KEY_FILE)),
    KEY_ALGORITHM,
    false,
    ['sign'],
  );
  const notAfter = new Date(now.getTime() + days * DAY_MS);
  if (notAfter > caCert.notAfter) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `a certificate valid ${days} days would outlive its CA (valid until ${caCert.notAfter.toISOString()})`,
    );
  }
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const altNames: x509.JsonGeneralName[] = [{ type: 'dns', value: name }];
  if (isIP(name)) altNames.push({ type: 'ip', value: name });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [name] }, { OU: [`${ROLE_OU_PREFIX}${role}`] }],
    issuer: caCert.subjectName,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(altNames),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  await writeExclusive(keyFile, await privateKeyPem(keys.privateKey), 0o600);
  await writeExclusive(certFile, cert.toString('pem') + '\n', 0o644);
  return describe(cert);
}

/** Describe the (first) certificate in a PEM file. */
export async function readIdentity(file: string): Promise<Identity> {
  return describe(parseCertificate(await readPkiFile(file, 'no such certificate'), file));
}

/** Describe a PEM certificate: name, role, fingerprint, validity, issuer. Throws ERR_CERTIFICATE on garbage. */
export async function describeCertificate(pem: string): Promise<Identity> {
  return describe(parseCertificate(pem, 'the certificate'));
}

/**
 * Load and check what node:tls needs for `name` from the PKI in `dir`. Throws ERR_PKI for a
 * missing file or a key file group/other can read, ERR_CERTIFICATE for a certificate not signed
 * by this CA, outside its validity at `now`, without a role, or whose key is not `NAME-key.pem`.
 */
export async function loadPki(dir: string, name: string, options: LoadPkiOptions = {}): Promise<LoadedPki> {
  const now = options.now ?? new Date();
  validateName(name);
  const caFile = join(dir, CA_CERT_FILE);
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  const ca = await readPkiFile(caFile, 'run `livemig pki init` first');
  const cert = await readPkiFile(certFile, `run \`livemig pki issue --name ${name}\` first`);
  const key = await readPkiFile(keyFile, `run \`livemig pki issue --name ${name}\` first`, { secret: true });
  const caCert = parseCertificate(ca, caFile);
  const leaf = parseCertificate(cert, certFile);
  checkValidity(caCert, caFile, now);
  const signed =
    leaf.issuer === caCert.subject &&
    (await leaf.verify({ publicKey: caCert.publicKey, signatureOnly: true }).catch(() => false));
  if (!signed) {
    throw new MigrationError('ERR_CERTIFICATE', `${certFile} is not signed by the CA in ${caFile}`);
  }
  checkValidity(leaf, certFile, now);
  checkKeyMatches(leaf, key, certFile, keyFile);
  const identity = await describe(leaf);
  if (identity.role === null) {
    throw new MigrationError('ERR_CERTIFICATE', `${certFile} carries no livemig role (OU=${ROLE_OU_PREFIX}<role>)`);
  }
  return { ca, cert, key, identity };
}

/** What roleOf accepts: a node:tls peer certificate, a PEM string or DER bytes. */
export type PeerCertificateLike = { subject?: Record<string, string | string[] | undefined> } | string | Uint8Array;

/**
 * The role a peer's certificate carries. Takes `socket.getPeerCertificate()` (or PEM / DER).
 * It only reads the certificate: trust the answer only on a socket whose `authorized` is true,
 * i.e. one node:tls verified against the fleet CA. Throws ERR_CERTIFICATE for no certificate,
 * no role, several roles or an unknown role.
 */
export function roleOf(peer: PeerCertificateLike): Role {
  let values: string[];
  if (typeof peer === 'string' || peer instanceof Uint8Array) {
    const cert = parseCertificate(peer, 'the peer certificate');
    values = cert.subjectName.getField('OU');
  } else {
    const ou = peer.subject?.OU;
    if (peer.subject === undefined) throw new MigrationError('ERR_CERTIFICATE', 'the peer presented no certificate');
    values = ou === undefined ? [] : Array.isArray(ou) ? ou : [ou];
  }
  return roleFromOus(values, 'the peer certificate');
}

function roleFromOus(values: readonly string[], what: string): Role {
  const roles = values.filter((v) => v.startsWith(ROLE_OU_PREFIX)).map((v) => v.slice(ROLE_OU_PREFIX.length));
  if (roles.length !== 1) {
    throw new MigrationError(
      'ERR_CERTIFICATE',
      roles.length === 0 ? `${what} carries no livemig role` : `${what} carries ${roles.length} livemig roles`,
    );
  }
  const role = roles[0]!;
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new MigrationError('ERR_CERTIFICATE', `${what} carries an unknown role "${role}"`);
  }
  return role as Role;
}

async function describe(cert: x509.X509Certificate): Promise<Identity> {
  const ous = cert.subjectName.getField('OU');
  const hasRole = ous.some((v) => v.startsWith(ROLE_OU_PREFIX));
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const thumbprint = Buffer.from(await cert.getThumbprint('SHA-256'));
  return {
    name: cert.subjectName.getField('CN')[0] ?? '',
    role: hasRole ? roleFromOus(ous, 'the certificate') : null,
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

function parseCertificate(data: string | Uint8Array, what: string): x509.X509Certificate {
  try {
    if (typeof data === 'string' && !data.includes('-----BEGIN CERTIFICATE-----'))
      throw new Error('no PEM certificate');
    return new x509.X509Certificate(typeof data === 'string' ? data : new Uint8Array(data));
  } catch (error) {
    throw new MigrationError('ERR_CERTIFICATE', `${what} is not an X.509 certificate`, { cause: error });
  }
}

function checkValidity(cert: x509.X509Certificate, file: string, now: Date): void {
  if (now > cert.notAfter) {
    throw new MigrationError('ERR_CERTIFICATE', `${file} expired on ${cert.notAfter.toISOString()}`);
  }
  if (now < cert.notBefore) {
    throw new MigrationError('ERR_CERTIFICATE', `${file} is not valid before ${cert.notBefore.toISOString()}`);
  }
}

function checkKeyMatches(cert: x509.X509Certificate, keyPem: string, certFile: string, keyFile: string): void {
  let spki: Buffer;
  try {
    spki = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  } catch (error) {
    throw new MigrationError('ERR_CERTIFICATE', `${keyFile} is not a private key`, { cause: error });
  }
  if (!spki.equals(Buffer.from(cert.publicKey.rawData))) {
    throw new MigrationError('ERR_CERTIFICATE', `${keyFile} is not the key of ${certFile}`);
  }
}

/** Read a PKI file; a secret one must not be readable by group or others. */
async function readPkiFile(file: string, hint: string, options: { secret?: boolean } = {}): Promise<string> {
  try {
    if (options.secret) {
      const { mode } = await stat(file);
      if ((mode & 0o077) !== 0) {
        throw new MigrationError(
          'ERR_PKI',
          `${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}): run chmod 600 ${file}`,
        );
      }
    }
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new MigrationError('ERR_PKI', `${file} does not exist: ${hint}`, { cause: error });
    }
    if (error instanceof MigrationError) throw error;
    throw new MigrationError('ERR_PKI', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

function pemBody(pem: string, file: string): ArrayBuffer {
  try {
    const der = x509.PemConverter.decode(pem)[0];
    if (!der) throw new Error('no PEM block');
    return der;
  } catch (error) {
    throw new MigrationError('ERR_PKI', `${file} is not a PEM private key`, { cause: error });
  }
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

async function writeExclusive(file: string, data: string, mode: number): Promise<void> {
  try {
    await writeFile(file, data, { flag: 'wx', mode });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new MigrationError('ERR_PKI', `${file} already exists: it is never overwritten`, { cause: error });
    }
    throw new MigrationError('ERR_PKI', `cannot write ${file}: ${(error as Error).message}`, { cause: error });
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** A random positive 128-bit serial (RFC 5280: unique per CA, at most 20 octets, non-negative). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  bytes[0]! |= 0x01;
  return bytes.toString('hex');
}
