/**
 * `livemig probe`: what a client of the VM's kv service sees during a migration — requests at a
 * fixed interval, every reply recorded, then network downtime (longest gap without a reply),
 * replies lost, latency p50/p99, and with --writes every acknowledged PUT read back. Exit
 * status 1 when no reply came back at all: nothing answers there.
 */
import type { Command } from 'commander';
import { formatDuration, MigrationError, parseHostPort } from '@livemig/shared';
import { runProbe, type ProbeResult } from '../probe/probe.ts';
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
    .addHelpText('after', '\nExit status: 0 when any reply came back, 1 when none did (ERR_CONNECTION), 2 bad input.')
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
        printProbe(result, flags.json === true);
        if (result.replies === 0) {
          throw new MigrationError(
            'ERR_CONNECTION',
            `no reply from ${result.target}: all ${result.sent} requests lost in ${formatDuration(result.durationMs)}` +
              (result.socketErrors > 0 ? ` (${result.socketErrors} socket errors)` : '') +
              ': is a kv service there?',
          );
        }
      },
    );
}

function printProbe(result: ProbeResult, json: boolean): void {
  if (json) {
    const { arrivalsMs: _arrivals, timeOriginMs: _origin, ...summary } = result;
    process.stdout.write(JSON.stringify(summary) + '\n');
    return;
  }
  const latency = result.latencyMs
    ? `latency p50 ${formatDuration(result.latencyMs.p50)} p99 ${formatDuration(result.latencyMs.p99)}`
    : 'no replies';
  const writes = result.writes
    ? `; ${result.writes.acknowledged} writes acknowledged, ${result.writes.lostWrites} lost`
    : '';
  process.stdout.write(
    `probe ${result.target}: ${result.sent} sent, ${result.replies} replies, ${result.lostReplies} lost; ` +
      `network downtime ${formatDuration(result.networkDowntimeMs)}; ${latency}${writes}\n`,
  );
}
