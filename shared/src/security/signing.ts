/**
 * Signatures with the fleet identities: an agent signs with the key of its certificate, and
 * anyone holding the fleet CA checks the signature against the certificate the signer embedded
 * — that it chains to the CA, carries the expected fingerprint, name and role, was valid when
 * the signature was made — and then the signature itself. Pure but for the CPU: no files, no
 * clock (the time to check validity at is given).
 *
 * Algorithm: ECDSA P-256 with SHA-256 (JOSE "ES256"), the signature as r‖s (IEEE P1363, 64
 * bytes) in base64url — fixed length, what WebCrypto produces too, so a verifier in a browser
 * or in another language needs no DER parser. node:crypto does the work synchronously (about
 * 0.1 ms a signature, faster than WebCrypto's promise round trip for a few hundred bytes).
 */
import { createPrivateKey, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { MigrationError } from '../errors.ts';
import { roleOf, type LoadedPki } from './pki.ts';
import type { Role } from './roles.ts';

/** The only signature algorithm: ECDSA P-256, SHA-256, r‖s in base64url. */
export const SIGNATURE_ALGORITHM = 'ES256';

/** An agent's signing identity: its certificate and key, and the CA it trusts. */
export interface Signer {
  /** The certificate's name (CN). */
  readonly name: string;
  /** SHA-256 of the certificate's DER, colon-separated upper-case hex (as `pki show` prints it). */
  readonly fingerprint: string;
  /** The certificate, PEM: embedded next to what it signs, so a verifier needs only the CA. */
  readonly certificate: string;
  /** The fleet CA, to check the peers' signatures with. */
  readonly trust: TrustAnchor;
  /** ES256 signature of `data`, base64url. */
  sign(data: Uint8Array): string;
}

/** What a signer's certificate must be, besides issued by the CA. */
export interface SignerExpectation {
  /** Its fingerprint (as Identity.fingerprint). */
  fingerprint?: string;
  /** Its name (CN). */
  name?: string;
  /** Its role. @default 'agent' */
  role?: Role;
  /** A time (ms since the epoch) it must have been valid at. */
  at?: number;
}

/** Most parsed certificates a TrustAnchor keeps (a log names a handful; a hostile one, many). */
const MAX_CACHED = 256;

/** What a TrustAnchor learnt of a certificate once: it does not change, only the time it is checked at does. */
interface Known {
  cert: X509Certificate;
  /** Issued (and signed) by the fleet CA. */
  issued: boolean;
  name: string | undefined;
  role: Role | undefined;
}

/**
 * The fleet CA, as the verifier of signatures made by the fleet's agents. What it learns of a
 * certificate (issuer signature, name, role) is kept, so checking the same peer again — every
 * migration with it, every entry of a log — costs a lookup and a signature check.
 */
export class TrustAnchor {
  readonly #ca: X509Certificate;
  readonly #known = new Map<string, Known | undefined>();

  /** Throws ERR_CERTIFICATE when `caPem` is not a certificate. */
  constructor(caPem: string) {
    try {
      this.#ca = new X509Certificate(caPem);
    } catch (error) {
      throw new MigrationError('ERR_CERTIFICATE', 'the CA is not an X.509 certificate', { cause: error });
    }
  }

  /** The CA's fingerprint. */
  get fingerprint(): string {
    return this.#ca.fingerprint256;
  }

  /**
   * Why `pem` is not a certificate this CA issued as `expect` says, or undefined when it is. The
   * reasons are sentences for a person ("not issued by the fleet CA").
   */
  refuses(pem: unknown, expect: SignerExpectation = {}): string | undefined {
    const known = this.#learn(pem);
    if (!known) return 'the embedded certificate is not an X.509 certificate';
    const { cert } = known;
    if (!known.issued) return `the certificate ${cert.fingerprint256.slice(0, 23)}… is not issued by the fleet CA`;
    if (expect.fingerprint !== undefined && cert.fingerprint256 !== expect.fingerprint) {
      return `the certificate's fingerprint is ${cert.fingerprint256}, not ${expect.fingerprint}`;
    }
    if (expect.name !== undefined && known.name !== expect.name) {
      return `the certificate is "${known.name ?? '(no name)'}"'s, not "${expect.name}"'s`;
    }
    const role = expect.role ?? 'agent';
    if (known.role !== role) return `the certificate's role is ${known.role ?? 'none'}, not ${role}`;
    if (expect.at !== undefined) {
      const from = Date.parse(cert.validFrom);
      const to = Date.parse(cert.validTo);
      if (!(expect.at >= from && expect.at <= to)) {
        return `the certificate was not valid at ${new Date(expect.at).toISOString()} (valid ${cert.validFrom} … ${cert.validTo})`;
      }
    }
    return undefined;
  }

  /** True when `signature` (ES256, base64url) is `pem`'s key's signature of `data`. */
  verifies(pem: unknown, data: Uint8Array, signature: unknown): boolean {
    const known = this.#learn(pem);
    return known !== undefined && verifySignature(known.cert.publicKey, data, signature);
  }

  #learn(pem: unknown): Known | undefined {
    if (typeof pem !== 'string') return undefined;
    if (this.#known.has(pem)) return this.#known.get(pem);
    let known: Known | undefined;
    try {
      const cert = new X509Certificate(pem);
      const subject = cert.subject.split('\n');
      const field = (key: string): string[] =>
        subject.filter((part) => part.startsWith(`${key}=`)).map((p) => p.slice(3));
      let role: Role | undefined;
      try {
        role = roleOf({ subject: { OU: field('OU') } });
      } catch {
        role = undefined;
      }
      const issued = cert.checkIssued(this.#ca) && cert.verify(this.#ca.publicKey);
      known = { cert, issued, name: field('CN')[0], role };
    } catch {
      known = undefined;
    }
    if (this.#known.size >= MAX_CACHED) this.#known.clear();
    this.#known.set(pem, known);
    return known;
  }
}

/** The signer of an agent with this PKI identity (`loadPki`). */
export function createSigner(pki: Pick<LoadedPki, 'ca' | 'cert' | 'key' | 'identity'>): Signer {
  const key: KeyObject = createPrivateKey(pki.key);
  return {
    name: pki.identity.name,
    fingerprint: pki.identity.fingerprint,
    certificate: pki.cert,
    trust: new TrustAnchor(pki.ca),
    sign: (data) => sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }).toString('base64url'),
  };
}

function verifySignature(key: KeyObject, data: Uint8Array, signature: unknown): boolean {
  if (typeof signature !== 'string' || !/^[A-Za-z0-9_-]{86}$/.test(signature)) return false;
  try {
    return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}
