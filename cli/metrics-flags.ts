/**
 * The agent's --metrics flag (issue 14): serve Prometheus metrics on GET /metrics at HOST:PORT.
 * Off by default. Where it may listen is the daemon's plaintext policy (AgentDaemonOptions.metrics).
 */
import type { Command } from 'commander';
import { parseHostPort, type HostPort } from '@livemig/shared';
import { flag } from './options.ts';

export interface MetricsFlags {
  metrics?: HostPort;
}

/** HOST:PORT, checked as the command line is parsed (a bad one is ERR_INVALID_ARGUMENT, exit 2). */
const metricsAddressFlag = flag((text) => parseHostPort(text));

/** Add --metrics to an agent command. */
export function addMetricsOption(command: Command): Command {
  return command.option(
    '--metrics <host:port>',
    'serve Prometheus metrics on GET /metrics here (port 0: any free one, in the ready line). Plaintext HTTP ' +
      'on loopback; beyond loopback HTTPS with client certificates of role viewer or above when --pki is given, ' +
      'else refused (ERR_INSECURE) unless --insecure (default: off)',
    metricsAddressFlag,
  );
}

/** The daemon's `metrics` option from the flags. */
export function metricsFromFlags(flags: MetricsFlags): { metrics?: HostPort } {
  return flags.metrics ? { metrics: flags.metrics } : {};
}
