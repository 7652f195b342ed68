/**
 * `livemig probe`: what a client of the VM's kv service sees during a migration — requests at a
 * fixed interval, every reply recorded, then network downtime (longest gap without a reply),
 * replies lost, latency p50/p99, and with --writes every acknowledged PUT read back.
 */
import type { Command } from 'commander';
import { formatDuration, parseHostPort } from '@livemig/shared';
import { runProbe } from '../probe/probe.ts';
import { durationFlag, flag } from '../options.ts';

export function registerProbeCommand(program: Command): void {
  program
    .command('probe')
    .description("Probe a VM's kv service over UDP at a fixed interval; report network downtime and losses.")
    .requiredOption(
      '--target <host:port>',
      'the kv service address',
      flag((text) => parseHostPort(text, '--target')),
    )
    .option('--interval <duration>', 'time between requests', durationFlag, 1)
    .option('--duration <duration>', 'how long to probe', durationFlag, 10_000)
    .option('--writes', 'PUT distinct keys, then read every acknowledged one back (lostWrites must be 0)')
    .option('--json', 'print one JSON object on stdout')
    .action(
      async (flags: {
        target: { host: string; port: number };
        interval: number;
        duration: number;
        writes?: boolean;
        json?: boolean;
      }) => {
        const result = await runProbe({
          target: flags.target,
          intervalMs: flags.interval,
          durationMs: flags.duration,
          writes: flags.writes === true,
        });
        if (flags.json) {
          const { arrivalsMs: _arrivals, timeOriginMs: _origin, ...summary } = result;
          process.stdout.write(JSON.stringify(summary) + '\n');
          return;
        }
        const latency = result.latencyMs
          ? `latency p50 ${formatDuration(result.latencyMs.p50)} p99 ${formatDuration(result.latencyMs.p99)}`
          : 'no replies';
        process.stdout.write(
          `probe ${result.target}: ${result.sent} sent, ${result.replies} replies, ${result.lostReplies} lost; ` +
            `network downtime ${formatDuration(result.networkDowntimeMs)}; ${latency}` +
            (result.writes
              ? `; ${result.writes.acknowledged} writes acknowledged, ${result.writes.lostWrites} lost`
              : '') +
            '\n',
        );
      },
    );
}
