/**
 * Signers of the fleet for the non-repudiation tests: a CA with agent certificates (and, for the
 * forgeries, a second CA issuing certificates with the same names), loaded as the agents load
 * them. One directory per call, removed with `remove()`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSigner, initPki, issueCertificate, loadPki, type Role, type Signer } from '@livemig/shared/security';

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
