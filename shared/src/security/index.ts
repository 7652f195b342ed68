/**
 * @livemig/shared/security — who may talk to an agent, and what they may do: the fleet PKI (a
 * CA, certificates carrying a role, loading them for node:tls), the roles and what each may ask
 * of the control API, and single-use migration tickets.
 */
export * from './roles.ts';
export * from './pki.ts';
export * from './tickets.ts';
