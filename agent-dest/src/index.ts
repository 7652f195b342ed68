/**
 * @livemig/agent-dest: the incoming end of the migration engine — one IncomingMigration per VM
 * arriving on a host. The agent (@livemig/agent) runs it.
 */
export { IncomingMigration, type IncomingComponents, type IncomingOptions } from './migration/incoming.ts';
export { faultThreadEntry } from './migration/fault-thread.ts';
