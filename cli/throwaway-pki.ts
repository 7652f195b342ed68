/**
 * A throwaway fleet PKI: a fresh CA and the identities one run needs, in a new 0700 temporary
 * directory that is removed afterwards (CA key included) — how `livemig demo` runs secure by
 * default without asking anyone to set up certificates first. Names are identities, not
 * addresses: clients check each agent's certificate against the name they expect.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '@livemig/shared/control';
import { initPki, issueCertificate, loadPki, type Role } from '@livemig/shared/security';

export interface ThrowawayPki {
  dir: string;
  /** `--pki DIR --name NAME`: what a livemig process needs to speak as `name`. */
  flags(name: string): string[];
  /** Open an agent's control API (wss) as `name`, trusting only an agent certificate named `agentName`. */
  connect(url: string, name: string, agentName: string): Promise<ControlClient>;
  /** Delete the directory (done at process exit if nobody did it before). */
  remove(): Promise<void>;
}

/**
 * Directories not yet removed. A run that ends early (a second Ctrl-C in `livemig compare`, an
 * interrupted bench: both call process.exit) skips its `finally`, and the CA key would stay in
 * /tmp; 'exit' listeners still run, synchronously, so they remove what is left.
 */
const live = new Set<string>();
process.once('exit', () => {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
});

/** A fresh CA in a new temporary directory, and one certificate per identity. */
export async function createThrowawayPki(
  identities: readonly { name: string; role: Role }[],
  prefix = 'livemig-pki-',
): Promise<ThrowawayPki> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  live.add(dir);
  const remove = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true });
    live.delete(dir);
  };
  try {
    await initPki(dir);
    for (const identity of identities) await issueCertificate(dir, identity);
  } catch (error) {
    await remove();
    throw error;
  }
  return {
    dir,
    flags: (name) => ['--pki', dir, '--name', name],
    connect: async (url, name, agentName) => {
      const { ca, cert, key } = await loadPki(dir, name);
      return ControlClient.connect(url, { tls: { ca, cert, key }, expectName: agentName });
    },
    remove,
  };
}

/** Run `run` with a throwaway PKI, removed afterwards whatever happens. */
export async function withThrowawayPki<T>(
  identities: readonly { name: string; role: Role }[],
  run: (pki: ThrowawayPki) => Promise<T>,
): Promise<T> {
  const pki = await createThrowawayPki(identities);
  try {
    return await run(pki);
  } finally {
    await pki.remove();
  }
}
