/**
 * @livemig/shared/security — who may talk to an agent. `pki.ts` is the fleet PKI: a CA,
 * certificates carrying a role, and loading them for node:tls.
 */
export * from './pki.ts';
