/**
 * @livemig/agent: the livemig agent — one daemon per host that hosts VMs, accepts migrations
 * (the incoming end, @livemig/agent-dest) and migrates VMs out (the outgoing end,
 * @livemig/agent-source).
 */
export { AgentDaemon, type AgentDaemonOptions, type AgentSecurity } from './daemon.ts';
