/**
 * Signers of the fleet for the non-repudiation tests: a CA with agent certificates (and, for the
 * forgeries, a second CA issuing certificates with the same names), loaded as the agents load
 * them. One directory per call, removed with `remove()`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import {
  CA_CERT_FILE,
  createSigner,
  initPki,
  issueCertificate,
  loadPki,
  TrustAnchor,
  type Role,
  type Signer,
} from '@livemig/shared/security';

export interface TestFleet {
  dir: string;
  /** The signer of `name` issued by the fleet CA (issued on first use). */
  signer(name: string, role?: Role): Promise<Signer>;
  /** A signer named `name` whose certificate another CA issued: a key outside the fleet. */
  outsider(name: string): Promise<Signer>;
  remove(): Promise<void>;
}

export async function createTestFleet(): Promise<TestFleet> {
  const dir = await mkdtemp(join(tmpdir(), 'livemig-signers-'));
  const fleet = join(dir, 'fleet');
  const other = join(dir, 'other');
  await Promise.all([initPki(fleet), initPki(other)]);
  const issued = new Map<string, Promise<Signer>>();
  const issue = (pki: string, name: string, role: Role): Promise<Signer> => {
    const key = `${pki}/${name}`;
    if (!issued.has(key)) {
      issued.set(
        key,
        issueCertificate(pki, { name, role }).then(async () => createSigner(await loadPki(pki, name))),
      );
    }
    return issued.get(key)!;
  };
  return {
    dir: fleet,
    signer: (name, role = 'agent') => issue(fleet, name, role),
    outsider: (name) => issue(other, name, 'agent'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A test file's fleet: created before its tests with `names`' signers, removed after them. */
export function useTestFleet(...names: string[]): {
  readonly fleet: TestFleet;
  /** The fleet CA as a verifier. */
  readonly trust: TrustAnchor;
  /** The signer of one of `names`. */
  signer(name: string): Signer;
} {
  let fleet: TestFleet | undefined;
  let trust: TrustAnchor | undefined;
  const signers = new Map<string, Signer>();
  beforeAll(async () => {
    fleet = await createTestFleet();
    trust = new TrustAnchor(await readFile(join(fleet.dir, CA_CERT_FILE), 'utf8'));
    for (const name of names) signers.set(name, await fleet.signer(name));
  });
  afterAll(() => fleet?.remove());
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the test fleet exists from beforeAll on');
    return value;
  };
  return {
    get fleet() {
      return ready(fleet);
    },
    get trust() {
      return ready(trust);
    },
    signer: (name) => ready(signers.get(name)),
  };
}
