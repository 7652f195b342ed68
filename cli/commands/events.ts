/**
 * `livemig events`: follow an agent's event stream (QMP's events, virsh `event --loop`): one line
 * per event as it happens, `--json` one JSON object per line for programs. Runs until Ctrl-C,
 * `--count` events, or the agent goes away (then exit 1 with the coded error).
 */
import type { Command } from 'commander';
import { formatDuration, MigrationError } from '@livemig/shared';
import { EVENT_NAMES, type ControlEvents, type EventName } from '@livemig/shared/control';
import { controlUrlFlag, oneOf, positiveIntFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';

interface EventsFlags extends SecurityFlags {
  control: string;
  json?: boolean;
  event?: EventName[];
  count?: number;
}

/** One event as a line a person reads. */
export function describeEvent<E extends EventName>(event: E, data: ControlEvents[E]): string {
  switch (event) {
    case 'MIGRATION': {
      const d = data as ControlEvents['MIGRATION'];
      return `migration ${d.migrationId}${d.vm ? ` of ${d.vm}` : ''}: ${d.status}`;
    }
    case 'MIGRATION_PASS': {
      const d = data as ControlEvents['MIGRATION_PASS'];
      return `migration ${d.migrationId}: round ${d.pass}`;
    }
    case 'MIGRATION_REPORT': {
      const { migrationId, report } = data as ControlEvents['MIGRATION_REPORT'];
      const downtime = report.times.downtimeMs === null ? 'none' : formatDuration(report.times.downtimeMs);
      const error = report.error ? ` (${report.error.code})` : '';
      return `migration ${migrationId}: ${report.outcome}${error}, total ${formatDuration(report.times.totalMs)}, downtime ${downtime}`;
    }
    case 'VM_STATE': {
      const d = data as ControlEvents['VM_STATE'];
      return `vm ${d.name}: ${d.state}`;
    }
  }
  return JSON.stringify(data);
}

const collect = (value: EventName, previous: EventName[] | undefined): EventName[] => [...(previous ?? []), value];
const eventName = oneOf(EVENT_NAMES);

export function registerEventsCommand(program: Command): void {
  const command = program
    .command('events')
    .description(
      "Follow an agent's events as they happen (migration status changes, rounds, reports, VM states) until Ctrl-C.",
    )
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .option('--json', 'one JSON object per line: {"event","timestamp" (ISO 8601),"data"}')
    .option(
      '--event <name>',
      `only this event (repeat for several): ${EVENT_NAMES.join(', ')}`,
      (value: string, previous: EventName[] | undefined) => collect(eventName(value), previous),
    )
    .option('--count <n>', 'exit 0 after this many events', positiveIntFlag);
  addClientSecurityOptions(command).action(async (flags: EventsFlags) => {
    const client = await connectControl(flags.control, flags);
    const names = flags.event ?? EVENT_NAMES;
    let seen = 0;
    await new Promise<void>((resolve, reject) => {
      let stopped = false;
      const stop = (): void => {
        stopped = true;
        client.close();
        resolve();
      };
      process.once('SIGINT', stop);
      client.onClose(() => {
        if (!stopped)
          reject(new MigrationError('ERR_CONNECTION', `the agent at ${flags.control} closed the connection`));
      });
      for (const name of names) {
        client.on(name, (data, timestamp) => {
          const at = new Date(timestamp).toISOString();
          process.stdout.write(
            flags.json
              ? `${JSON.stringify({ event: name, timestamp: at, data })}\n`
              : `${at}  ${name.padEnd(16)} ${describeEvent(name, data)}\n`,
          );
          if (flags.count !== undefined && ++seen >= flags.count) stop();
        });
      }
      process.stderr.write(`livemig: following events of ${flags.control} (Ctrl-C to stop)\n`);
    });
  });
}
