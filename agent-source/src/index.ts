/**
 * @livemig/agent-source: the outgoing end of the migration engine — one OutgoingMigration per
 * VM leaving a host, and how its parameters are resolved. The agent (@livemig/agent) runs it.
 */
export { OutgoingMigration, type OutgoingComponents, type OutgoingOptions } from './migration/outgoing.ts';
export {
  resolveMigrateParams,
  defaultSwitchoverTimeoutMs,
  DEFAULT_MIGRATE_PARAMS,
  DEFAULT_CHANNELS,
  MIN_DEFAULT_SWITCHOVER_TIMEOUT_MS,
  SWITCHOVER_TIMEOUT_FACTOR,
  type ResolvedMigrateParams,
} from './migration/params.ts';
export { decideSwitchover } from './migration/convergence.ts';
export { AUTO_CONVERGE_DEFAULTS, type ThrottleSettings } from './migration/throttle.ts';
export { linkSampleOf, type LinkSample } from './migration/link-history.ts';
export {
  liveFaultWorkers,
  faultWorkerEntry,
  FAULT_WORKER_ENV,
  type SourceFaultWorker,
} from './migration/fault-worker.ts';
