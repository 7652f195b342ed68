/**
 * @livemig/agent: the livemig agent — one daemon per host that hosts VMs, accepts migrations
 * (the incoming end, @livemig/agent-dest) and migrates VMs out (the outgoing end,
 * @livemig/agent-source).
 */
export { AuditLog, type AuditLogOptions } from './audit-log.ts';
export { AUDITED_COMMANDS, auditedHandlers } from './audited-commands.ts';
export { auditAppendUs, recordExchangeMs, sampleRecord } from './audit-cost.ts';
export { AgentDaemon, type AgentDaemonOptions, type AgentSecurity, type AvailabilityStatus } from './daemon.ts';
export { AgentMetrics, type AgentMetricsComponents, type AgentMetricsOptions } from './metrics.ts';
export { MetricsServer, type MetricsServerOptions } from './metrics-server.ts';
export { prebuildWorkerBundles, workerEntries, type PrebuiltBundles } from './worker-bundles.ts';
export { DirtyRateQueries, type DirtyRateQueriesComponents } from './query-dirty-rate.ts';
