/**
 * @livemig/shared/security — who may talk to an agent, and what they may do: the fleet PKI (a
 * CA, certificates carrying a role, loading them for node:tls), the roles and what each may ask
 * of the control API, single-use migration tickets, and non-repudiation: signatures with those
 * identities, the signed and countersigned migration record, the hash-chained audit log's format.
 */
export * from './roles.ts';
export * from './pki.ts';
export * from './tickets.ts';
export * from './canonical-json.ts';
export * from './signing.ts';
export * from './record.ts';
export * from './audit.ts';
