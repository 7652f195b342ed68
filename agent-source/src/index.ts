/**
 * @livemig/agent-source: the outgoing end of the migration engine — one OutgoingMigration per
 * VM leaving a host, and how its parameters are resolved. The agent (@livemig/agent) runs it.
 */
export { OutgoingMigration, type OutgoingComponents, type OutgoingOptions } from './migration/outgoing.ts';
export { resolveMigrateParams, DEFAULT_MIGRATE_PARAMS, type ResolvedMigrateParams } from './migration/params.ts';
export { decideSwitchover } from './migration/convergence.ts';
