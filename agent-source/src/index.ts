/** @livemig/agent-source: the source daemon and its outgoing migrations. */
export * from './daemon.ts';
export { OutgoingMigration } from './migration/outgoing.ts';
export { resolveMigrateParams, DEFAULT_MIGRATE_PARAMS } from './migration/params.ts';
export { decideSwitchover } from './migration/convergence.ts';
