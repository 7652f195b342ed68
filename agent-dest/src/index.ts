/** @livemig/agent-dest: the destination daemon and its incoming migrations. */
export * from './daemon.ts';
export { IncomingMigration } from './migration/incoming.ts';
