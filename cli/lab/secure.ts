/**
 * Secure agents for the lab and the benchmarks (issue 12): a throwaway fleet PKI
 * (cli/throwaway-pki.ts) with agent certificates named `source` and `dest` (the lab's host
 * names), an operator's and an admin's (who may create VMs); the flags that make `livemig agent`
 * speak mutual TLS with them (their audit logs, which a --pki agent always keeps, go with the
 * throwaway PKI directory, not the user's state directory); and the operator's Prepare step of
 * a secure migration — a ticket from the destination's `prepare-incoming` — to pass to `migrate`
 * with the destination's name.
 */
import { join } from 'node:path';
import { loadPki } from '@livemig/shared/security';
import { createThrowawayPki, type ThrowawayPki } from '../throwaway-pki.ts';

/** The identities' certificate names: the agents' are the lab's host names. */
export const SECURE_NAMES = { source: 'source', dest: 'dest', operator: 'operator', admin: 'admin' } as const;

/** The agents' TLS settings (shared/src/channel/tls.ts): TLS 1.3 only. */
export const TLS13_ONLY = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

/** A throwaway PKI with the identities of SECURE_NAMES. */
export function securePki(): Promise<ThrowawayPki> {
  return createThrowawayPki([
    { name: SECURE_NAMES.source, role: 'agent' },
    { name: SECURE_NAMES.dest, role: 'agent' },
    { name: SECURE_NAMES.operator, role: 'operator' },
    { name: SECURE_NAMES.admin, role: 'admin' },
  ]);
}

/** `livemig agent` flags for the secure `source`, or `dest` (which admits migrations from `source` only). */
export function secureAgentArgs(pki: ThrowawayPki, side: 'source' | 'dest'): string[] {
  const name = SECURE_NAMES[side];
  const allow = side === 'dest' ? ['--allow-source', SECURE_NAMES.source] : [];
  return [...pki.flags(name), '--state-dir', join(pki.dir, `state-${name}`), ...allow];
}

/**
 * What `migrate` needs, besides the VM and the address, to move VM `vm` to the secure `dest`
 * agent at `destControl`: a ticket from its `prepare-incoming` (as the operator) and the name its
 * certificate must carry.
 */
export async function prepareIncoming(
  pki: ThrowawayPki,
  destControl: string,
  vm: string,
): Promise<{ ticket: string; destName: string }> {
  const client = await pki.connect(destControl, SECURE_NAMES.operator, SECURE_NAMES.dest);
  try {
    const { ticket } = await client.request('prepare-incoming', { vm, from: SECURE_NAMES.source });
    return { ticket, destName: SECURE_NAMES.dest };
  } finally {
    client.close();
  }
}

/** The fleet CA, certificate and key of `name` in PKI directory `dir`, for node:tls (raw TLS sockets). */
export async function tlsCredentials(dir: string, name: string): Promise<{ ca: string; cert: string; key: string }> {
  const { ca, cert, key } = await loadPki(dir, name);
  return { ca, cert, key };
}
