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
 * Reading and checking certificates (loadPki, readIdentity, describeCertificate, roleOf) is
 * node:crypto's X509Certificate alone; @peculiar/x509 is loaded only to issue (see loadX509).
 *
 * Where the role lives: an OU in the subject, `OU=livemig-role:<role>`. A custom extension under a
 * private OID would be the more "proper" place, but node:tls's `getPeerCertificate()` does not
 * expose unknown extensions, so every check would have to re-parse the DER; the subject is
 * parsed by node:tls already (`peer.subject.OU`), `openssl x509 -text` shows it, and it is covered
 * by the CA's signature just as an extension is. The `livemig-role:` prefix keeps it apart from
 * any OU an operator might add. Exactly one such OU must be present, or the certificate is
 * refused (ERR_CERTIFICATE): never guess a role.
 */
import { createPrivateKey, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { MigrationError } from '../errors.ts';
import { ROLES, type Role } from './roles.ts';

let x509Loading: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509, loaded on first use: only issuing (initPki, issueCertificate) needs it. It
 * brings reflect-metadata, tsyringe and a dozen @peculiar/asn1-* packages, some 200 module files
 * (a quarter of a second natively, more through tsx), and every secure agent and client calls
 * loadPki at start, which reads and checks certificates with node:crypto alone.
 */
function loadX509(): Promise<typeof X509> {
  x509Loading ??= (async () => {
    // @peculiar/x509 2.x resolves its algorithm providers through tsyringe, which needs the
    // Reflect metadata API: the polyfill must be evaluated before the library.
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    // @peculiar/x509 keeps one provider per process; it is Node's own WebCrypto, set once here.
    x509.cryptoProvider.set(webcrypto);
    return x509;
  })().catch((error: unknown) => {
    x509Loading = undefined;
    throw error;
  });
  return x509Loading;
}

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
  /** Whether it is a CA certificate (basicConstraints CA, and keyCertSign if it has a keyUsage). */
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
  const x509 = await loadX509();
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
  await writeExclusive(join(dir, CA_KEY_FILE), await privateKeyPem(x509, keys.privateKey), 0o600);
  await writeExclusive(join(dir, CA_CERT_FILE), cert.toString('pem') + '\n', 0o644);
  return describe(parseCertificate(new Uint8Array(cert.rawData), join(dir, CA_CERT_FILE)));
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
  const x509 = await loadX509();
  // The CA's subject and key as @peculiar/x509 has them: the issuer name is copied as it is.
  const ca = new x509.X509Certificate(caCert.native.raw);
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
  const altNames: X509.JsonGeneralName[] = [{ type: 'dns', value: name }];
  if (isIP(name)) altNames.push({ type: 'ip', value: name });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [name] }, { OU: [`${ROLE_OU_PREFIX}${role}`] }],
    issuer: ca.subjectName,
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
      await x509.AuthorityKeyIdentifierExtension.create(ca.publicKey),
    ],
  });
  await writeExclusive(keyFile, await privateKeyPem(x509, keys.privateKey), 0o600);
  await writeExclusive(certFile, cert.toString('pem') + '\n', 0o644);
  return describe(parseCertificate(new Uint8Array(cert.rawData), certFile));
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
  // The issuer name, and the signature over the leaf checked with the CA's public key.
  const signed = leaf.issuer === caCert.subject && verifiesWith(leaf, caCert);
  if (!signed) {
    throw new MigrationError('ERR_CERTIFICATE', `${certFile} is not signed by the CA in ${caFile}`);
  }
  checkValidity(leaf, certFile, now);
  checkKeyMatches(leaf, key, certFile, keyFile);
  const identity = describe(leaf);
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
    values = field(parseCertificate(peer, 'the peer certificate'), 'OU');
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

/** A certificate as node:crypto parsed it, with what this module reads of it. */
interface Certificate {
  native: X509Certificate;
  /** The subject's attributes in order, as [OpenSSL short name, value] (`['OU', 'livemig-role:agent']`). */
  subjectFields: Array<[string, string]>;
  /** Subject and issuer as `Identity` has always shown them (@peculiar/x509's format, see formatName). */
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
}

function describe(cert: Certificate): Identity {
  const ous = field(cert, 'OU');
  const hasRole = ous.some((v) => v.startsWith(ROLE_OU_PREFIX));
  return {
    name: field(cert, 'CN')[0] ?? '',
    role: hasRole ? roleFromOus(ous, 'the certificate') : null,
    ca: cert.native.ca,
    // node:crypto's fingerprint256 is already colon-separated upper-case hex.
    fingerprint: cert.native.fingerprint256,
    serialNumber: serialHex(cert.native.serialNumber),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    subject: cert.subject,
    issuer: cert.issuer,
    altNames: altNamesOf(cert.native.subjectAltName),
  };
}

/** Every value of one subject attribute (`CN`, `OU`), in order. */
function field(cert: Certificate, key: string): string[] {
  return cert.subjectFields.filter(([k]) => k === key).map(([, value]) => value);
}

/**
 * Parse the first PEM block of a string (it must hold a certificate's BEGIN line) or DER bytes
 * (or PEM bytes), as @peculiar/x509 took them. Throws ERR_CERTIFICATE for anything else.
 */
function parseCertificate(data: string | Uint8Array, what: string): Certificate {
  try {
    if (typeof data === 'string' && !data.includes('-----BEGIN CERTIFICATE-----'))
      throw new Error('no PEM certificate');
    const der =
      typeof data !== 'string' && data[0] === 0x30
        ? data
        : firstPemBlock(typeof data === 'string' ? data : Buffer.from(data).toString('latin1'));
    if (der === undefined) throw new Error('no PEM block');
    const native = new X509Certificate(der);
    // OpenSSL's multi-line format: one RDN a line, " + " between the attributes of one.
    const subject = splitName(native.subject ?? '', '\n', ' + ');
    return {
      native,
      subjectFields: subject.flat().map(([key, printed]): [string, string] => [key, unescapeValue(printed)]),
      subject: formatName(subject),
      issuer: formatName(splitName(native.issuer ?? '', '\n', ' + ')),
      notBefore: parseTime(native.validFrom),
      notAfter: parseTime(native.validTo),
    };
  } catch (error) {
    throw new MigrationError('ERR_CERTIFICATE', `${what} is not an X.509 certificate`, { cause: error });
  }
}

function checkValidity(cert: Certificate, file: string, now: Date): void {
  if (now > cert.notAfter) {
    throw new MigrationError('ERR_CERTIFICATE', `${file} expired on ${cert.notAfter.toISOString()}`);
  }
  if (now < cert.notBefore) {
    throw new MigrationError('ERR_CERTIFICATE', `${file} is not valid before ${cert.notBefore.toISOString()}`);
  }
}

/** Whether `cert`'s signature verifies with `issuer`'s public key (signature only, no chain). */
function verifiesWith(cert: Certificate, issuer: Certificate): boolean {
  try {
    return cert.native.verify(issuer.native.publicKey);
  } catch {
    return false;
  }
}

function checkKeyMatches(cert: Certificate, keyPem: string, certFile: string, keyFile: string): void {
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    throw new MigrationError('ERR_CERTIFICATE', `${keyFile} is not a private key`, { cause: error });
  }
  if (!cert.native.checkPrivateKey(key)) {
    throw new MigrationError('ERR_CERTIFICATE', `${keyFile} is not the key of ${certFile}`);
  }
}

// ---- Reading what node:crypto prints, in the formats Identity has always had ----------------
// Identity's subject, issuer, serialNumber and altNames were @peculiar/x509's renderings; they
// are rebuilt here from node:crypto's X509Certificate fields, which OpenSSL prints otherwise:
// subject `CN=a\nOU=b` (escaped per RFC 2253, control characters as \XX, " + " inside a
// multi-valued RDN) vs `CN=a, OU=b`; serial upper-case vs lower-case hex; subjectAltName
// `DNS:a, IP Address:10.0.0.1` (a value with a comma, quote, backslash or control character as a
// JSON string) vs ["dns:a", "ip:10.0.0.1"]. The unit tests compare both (pki-node-crypto.test.ts).
// What OpenSSL does not print cannot be rebuilt: a name value of a type that is no string
// (NumericString…) reads as its text where @peculiar/x509 wrote #<hex of its DER>, an otherName SAN
// other than a UPN as `othername:<unsupported>`, and `ca` is OpenSSL's (so a basicConstraints CA
// whose keyUsage lacks keyCertSign is none). livemig's certificates have none of these.

/** OpenSSL's short names of name attributes → @peculiar/x509's (its 12 names; the rest by OID). */
const NAME_KEYS = new Map<string, string>([
  ['CN', 'CN'],
  ['L', 'L'],
  ['ST', 'ST'],
  ['O', 'O'],
  ['OU', 'OU'],
  ['C', 'C'],
  ['DC', 'DC'],
  ['emailAddress', 'E'],
  ['GN', 'G'],
  ['initials', 'I'],
  ['SN', 'SN'],
  ['title', 'T'],
  ['serialNumber', '2.5.4.5'],
  ['street', '2.5.4.9'],
  ['description', '2.5.4.13'],
  ['businessCategory', '2.5.4.15'],
  ['postalAddress', '2.5.4.16'],
  ['postalCode', '2.5.4.17'],
  ['postOfficeBox', '2.5.4.18'],
  ['telephoneNumber', '2.5.4.20'],
  ['name', '2.5.4.41'],
  ['generationQualifier', '2.5.4.44'],
  ['x500UniqueIdentifier', '2.5.4.45'],
  ['dnQualifier', '2.5.4.46'],
  ['pseudonym', '2.5.4.65'],
  ['role', '2.5.4.72'],
  ['organizationIdentifier', '2.5.4.97'],
  ['UID', '0.9.2342.19200300.100.1.1'],
  ['unstructuredName', '1.2.840.113549.1.9.2'],
  ['unstructuredAddress', '1.2.840.113549.1.9.8'],
  ['jurisdictionL', '1.3.6.1.4.1.311.60.2.1.1'],
  ['jurisdictionST', '1.3.6.1.4.1.311.60.2.1.2'],
  ['jurisdictionC', '1.3.6.1.4.1.311.60.2.1.3'],
]);

/** Split at `separator` where it is not escaped by a backslash. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text.startsWith(separator, i)) {
      parts.push(text.slice(start, i));
      start = i + separator.length;
      i = start - 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** A name as OpenSSL printed it: RDNs of [short name, value as printed (still escaped)]. */
type PrintedName = Array<Array<[string, string]>>;

/** Split an OpenSSL-printed name: RDNs at `rdnSeparator`, the attributes of one at `valueSeparator`. */
function splitName(text: string, rdnSeparator: string, valueSeparator: string): PrintedName {
  if (text === '') return [];
  return splitUnescaped(text, rdnSeparator).map((rdn) =>
    splitUnescaped(rdn, valueSeparator).map((attribute): [string, string] => {
      const eq = attribute.indexOf('=');
      if (eq < 1) throw new Error(`unreadable name attribute "${attribute}"`);
      return [attribute.slice(0, eq), attribute.slice(eq + 1)];
    }),
  );
}

/** A printed value's text: `\,` → `,`, `\0A` → newline. */
function unescapeValue(printed: string): string {
  return printed.replace(/\\([0-9A-F]{2}|[\s\S])/g, (_, c: string) =>
    c.length === 2 ? String.fromCharCode(parseInt(c, 16)) : c,
  );
}

/** A name as @peculiar/x509's Name.toString() printed it: `CN=a+OU=b, O=c`, its escaping. */
function formatName(rdns: PrintedName): string {
  return rdns
    .map((rdn) =>
      rdn
        .map(([key, printed]) => {
          // An unescaped leading # is OpenSSL's hex dump of a value that is no string (RFC 2253
          // output only); @peculiar/x509 wrote those as # and lower-case hex too.
          const value = printed.startsWith('#') ? printed.toLowerCase() : escapeValue(unescapeValue(printed));
          return `${NAME_KEYS.get(key) ?? key}=${value}`;
        })
        .join('+'),
    )
    .join(', ');
}

/** @peculiar/x509's escaping of a name value, quirks included (only the first CR, LF or tab). */
function escapeValue(value: string): string {
  return value
    .replace(/([,+"\\<>;])/g, '\\$1')
    .replace(/^([ #])/, '\\$1')
    .replace(/([ ]$)/, '\\$1')
    .replace(/([\r\n\t])/, (c: string) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}

/** A directoryName SAN as OpenSSL prints it (RFC 2253: reversed, `,` and `+`) in @peculiar/x509's format. */
function formatRfc2253Name(text: string): string {
  return formatName(
    splitName(text, ',', '+')
      .reverse()
      .map((rdn) => rdn.reverse()),
  );
}

/** OpenSSL prints the serial as upper-case hex of its bytes; @peculiar/x509 printed lower-case. */
function serialHex(serialNumber: string): string {
  const hex = serialNumber.toLowerCase();
  return hex.length % 2 === 1 ? `0${hex}` : hex;
}

const MONTHS = 'JanFebMarAprMayJunJulAugSepOctNovDec';

/** OpenSSL's `Dec  2 19:46:58 2026 GMT` (validFrom / validTo) as a Date. */
function parseTime(text: string): Date {
  const m = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(\.\d+)? (\d{4,}) GMT$/.exec(text);
  const month = m ? MONTHS.indexOf(m[1]!) / 3 : -1;
  if (!m || !Number.isInteger(month)) throw new Error(`unreadable certificate time "${text}"`);
  const ms = m[6] ? Math.floor(Number(m[6]) * 1000) : 0;
  return new Date(Date.UTC(Number(m[7]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), ms));
}

/**
 * node:crypto's subjectAltName (`DNS:a, IP Address:10.0.0.1`) as ["dns:a", "ip:10.0.0.1"]. Never
 * throws: what it cannot read is kept as node:crypto printed it.
 */
function altNamesOf(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const names: string[] = [];
  // TYPE:value, the value a JSON string when it holds `,` (so unquoted ones end at ", ").
  const entry = /([^:]*):("(?:[^"\\]|\\[\s\S])*"|[^,]*)(?:, |$)/y;
  while (entry.lastIndex < subjectAltName.length) {
    const start = entry.lastIndex;
    const m = entry.exec(subjectAltName);
    if (!m) {
      names.push(subjectAltName.slice(start));
      break;
    }
    try {
      names.push(altName(m[1]!, m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!));
    } catch {
      names.push(m[0].replace(/, $/, ''));
    }
  }
  return names;
}

function altName(type: string, value: string): string {
  switch (type) {
    case 'DNS':
      return `dns:${value}`;
    case 'email':
      return `email:${value}`;
    case 'URI':
      return `url:${value}`;
    case 'IP Address':
      return `ip:${value.includes(':') ? ipv6(value) : value}`;
    case 'Registered ID':
      return `id:${value}`;
    case 'DirName':
      return `dn:${formatRfc2253Name(value)}`;
    case 'othername':
      if (value.startsWith('UPN:')) return `upn:${value.slice('UPN:'.length)}`;
      return `othername:${value}`;
    default:
      return `${type}:${value}`;
  }
}

/** OpenSSL's `2001:DB8:0:0:8:800:200C:417A` as @peculiar/x509 wrote it: `2001:db8::8:800:200c:417a`. */
function ipv6(text: string): string {
  const parts = text.split(':').map((p) => parseInt(p, 16).toString(16));
  // The longest run of two or more zero groups (the first of equals) becomes "::".
  let best = -1;
  let bestLength = 0;
  for (let i = 0; i < parts.length;) {
    let j = i;
    while (parts[j] === '0') j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (bestLength < 2) return parts.join(':');
  return `${parts.slice(0, best).join(':')}::${parts.slice(best + bestLength).join(':')}`;
}

// ---- Files --------------------------------------------------------------------------------

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

// A PEM block as @peculiar/x509's PemConverter matches one (after CRs are removed): BEGIN line,
// optional RFC 1421 headers, base64 lines, the END line of the same label.
const PEM_BLOCK =
  /-{5}BEGIN ([^\n]+(?=-{5}))-{5}\n(?:((?:[^:\n]+: (?:[^\n]+\n(?: +[^\n]+\n)*))+))?\n?((?:[a-zA-Z0-9=+/]+\n)+)-{5}END \1-{5}/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes of the first PEM block (whatever its label), or undefined without one. Throws on bad base64. */
function firstPemBlock(text: string): Buffer | undefined {
  const m = PEM_BLOCK.exec(text.replace(/\r/g, ''));
  if (!m) return undefined;
  const base64 = m[3]!.replace(/\n+/g, '');
  if (!BASE64.test(base64)) throw new TypeError('the PEM block is not base64');
  return Buffer.from(base64, 'base64');
}

function pemBody(pem: string, file: string): Uint8Array {
  try {
    const der = firstPemBlock(pem);
    if (!der) throw new Error('no PEM block');
    return der;
  } catch (error) {
    throw new MigrationError('ERR_PKI', `${file} is not a PEM private key`, { cause: error });
  }
}

async function privateKeyPem(x509: typeof X509, key: webcrypto.CryptoKey): Promise<string> {
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
