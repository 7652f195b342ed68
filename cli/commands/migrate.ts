/**
 * `livemig migrate`: ask an agent (the source) to migrate one of its VMs to another agent (the
 * destination), follow it (progress bar on a TTY), and print the report — a table for people, or
 * exactly one JSON object on stdout with --json. Exit status 0 only when the migration completed.
 * `--resume` reconnects a post-copy migration whose link broke (instead of waiting for the
 * agent's next automatic retry) and follows it to the end. `livemig migrate-start-postcopy`
 * switches a hybrid migration to post-copy at the end of its current round. Ctrl-C cancels the
 * migration (a second one detaches: migrate-interrupt.ts); `--detach` prints its id and returns
 * at once, leaving it to the agent (`livemig migrate-cancel` cancels it). `--wait` keeps
 * retrying while the source agent, its VM or the destination is not up yet (containers starting
 * together): only failures from before anything was sent, so a retry can never hide a real one.
 */
import type { Command } from 'commander';
import { isMigrationError, MigrationError, parseHostPort, type ErrorCode } from '@livemig/shared';
import type { ControlClient } from '@livemig/shared/control';
import { formatReport, type MigrationReport } from '@livemig/shared/report';
import { dryRun, formatDryRun } from '../dry-run.ts';
import { followMigration } from '../follow-migration.ts';
import { EXIT_DETACHED, followHints, MigrateInterrupt } from '../migrate-interrupt.ts';
import { networkSection, startProbe, type RunningProbe } from '../probe/during.ts';
import {
  anyDurationFlag,
  controlUrlFlag,
  durationFlag,
  hostPortFlag,
  migrateParams,
  rateFlag,
  type MigrateFlags,
  type ModeName,
} from '../options.ts';
import { addMigrationKnobs } from '../migrate-flags.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';

interface MigrateCommandFlags extends MigrateFlags, SecurityFlags {
  control: string;
  destName?: string;
  destControl?: string;
  ticket?: string;
  vm?: string;
  to?: string;
  mode: ModeName;
  resume?: boolean;
  json?: boolean;
  detach?: boolean;
  wait: number;
  probe?: boolean | string;
  probeInterval: number;
  dryRun?: boolean;
  linkBandwidth?: number;
  linkRtt?: number;
}

export function registerMigrateCommand(program: Command): void {
  const command = program
    .command('migrate')
    .description('Migrate a running VM from the agent that hosts it to another agent, then print the report.')
    .option(
      '--control <url>',
      'control URL of the agent that hosts the VM (the source)',
      controlUrlFlag,
      'ws://127.0.0.1:7171',
    )
    .option('--vm <name>', 'the VM to migrate (see `livemig status`)')
    .option('--to <host:port>', "the destination: the other agent's data address (its --listen)", hostPortFlag);
  addMigrationKnobs(command)
    .option(
      '--recovery-timeout <duration>',
      'post-copy: keep reconnecting a broken link this long (default 60s)',
      durationFlag,
    )
    .option('--resume', 'reconnect a post-copy migration paused by a broken link now, and follow it')
    .option(
      '--probe [ip:port]',
      "probe the VM's kv service during the migration (default: the VM's NIC address): the report gets network " +
        'downtime, lost replies and lost writes',
      hostPortFlag,
    )
    .option('--probe-interval <duration>', 'time between probe requests', durationFlag, 1)
    .option('--json', 'print exactly one JSON report (schema livemig.report/1) on stdout')
    .option(
      '--detach',
      'print the migration id (--json: {"migrationId"}) and return at once; the migration goes on ' +
        '(follow it with `livemig status`, cancel it with `livemig migrate-cancel`)',
    )
    .option(
      '--wait <duration>',
      'keep retrying this long while the source agent, its VM or the destination is not up yet, e.g. 60s',
      anyDurationFlag,
      0,
    )
    .option(
      '--dest-name <name>',
      "secure agents: the name the destination's certificate must carry (default: the host of --to)",
    )
    .option('--ticket <ticket>', "the destination's single-use ticket for this VM (livemig prepare-incoming)")
    .option(
      '--dry-run',
      "don't migrate: measure the VM's dirty rate now and print what each technique would cost (the prediction " +
        'model) and what --mode auto would choose; needs --link-bandwidth or --max-bandwidth',
    )
    .option('--link-bandwidth <rate>', '--dry-run: the link bandwidth to predict with, e.g. 1gbit', rateFlag)
    .option('--link-rtt <duration>', '--dry-run: the link round-trip time to predict with (default 0)', anyDurationFlag)
    .option(
      '--dest-control <url>',
      "secure agents: the destination's control URL — ask it for a ticket (prepare-incoming, as the source's " +
        "certificate name), learn its certificate name, then migrate: libvirt's Prepare → Perform in one command",
      controlUrlFlag,
    )
    .addHelpText(
      'after',
      '\nExamples:\n  livemig migrate --control ws://127.0.0.1:7171 --vm vm1 --to 127.0.0.1:7070 --max-bandwidth 1gbit\n' +
        '  livemig migrate --control ws://127.0.0.1:7171 --vm vm1 --to 127.0.0.1:7070 --mode hybrid --postcopy-after 2\n' +
        '  livemig migrate --control ws://127.0.0.1:7171 --vm db1 --to 127.0.0.1:7070 --storage mirror   # a VM with a disk\n' +
        '  livemig migrate --control ws://127.0.0.1:7171 --resume\n' +
        '  livemig migrate --control ws://127.0.0.1:7171 --vm kv1 --to 127.0.0.1:7070 --probe   # what its clients see\n' +
        '  livemig migrate --control ws://source:7171 --vm vm1 --to dest:7070 --wait 60s --json   # agents still starting\n' +
        '  livemig migrate --pki pki --name oscar --control wss://host-a:7071 --dest-control wss://host-b:7071 \\\n' +
        '      --vm vm1 --to host-b:7070   # secure agents: ticket and destination name from the destination\n' +
        '\nCtrl-C cancels the migration (as virsh migrate does) after a grace second in which a second Ctrl-C\n' +
        'detaches instead, leaving it running; past the point of no return the cancel is refused (the reason is\n' +
        'shown) and the command follows on. A second Ctrl-C always detaches: it prints how to follow or cancel.\n' +
        '\nExit status: 0 completed (or detached with --detach), 1 failed or cancelled, 2 bad input, ' +
        '130 detached by Ctrl-C.',
    );
  addClientSecurityOptions(command).action(async (flags: MigrateCommandFlags) => {
    if (flags.dryRun) {
      if (flags.vm === undefined) throw new MigrationError('ERR_INVALID_ARGUMENT', '--dry-run: give --vm NAME');
      const client = await connectControl(flags.control, flags);
      try {
        const run = await dryRun(client, flags);
        process.stdout.write(flags.json ? JSON.stringify(run) + '\n' : formatDryRun(run) + '\n');
      } finally {
        client.close();
      }
      return;
    }
    if (!flags.resume && (flags.vm === undefined || flags.to === undefined)) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', 'give --vm NAME and --to HOST:PORT (or --resume)');
    }
    if (flags.destControl !== undefined && flags.ticket !== undefined) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        'give --ticket or --dest-control (which asks for one), not both',
      );
    }
    if (flags.detach && flags.probe !== undefined) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', '--probe watches the migration to its end: not with --detach');
    }
    // The first cancels, the second detaches; not with --detach, which leaves the migration at once.
    const interrupt = flags.detach
      ? undefined
      : new MigrateInterrupt({
          say: (line) => process.stderr.write(`${flags.json || !process.stderr.isTTY ? '' : '\n'}${line}\n`),
        });
    const waiting = new Waiting(flags.wait, () => interrupt?.pressed === true);
    try {
      for (;;) {
        let probe: RunningProbe | undefined;
        const { client, migrationId } = await waiting.retry(async () => {
          const client = await connectControl(flags.control, flags);
          try {
            if (flags.probe !== undefined && !flags.resume) probe = await startProbeOn(client, flags);
            return {
              client,
              migrationId: flags.resume
                ? await resumeMigration(client, interrupt)
                : await startMigration(client, flags, interrupt),
            };
          } catch (error) {
            client.close();
            interrupt?.close(); // nothing runs on our behalf: Ctrl-C ends the command again
            if (probe) await probe.abandon();
            probe = undefined;
            throw error;
          }
        });
        if (flags.detach) {
          client.close();
          printDetached(migrationId, flags);
          return;
        }
        interrupt?.follow(client, migrationId);
        let report: MigrationReport;
        try {
          report = await followMigration(client, migrationId, {
            progress: !flags.json && process.stderr.isTTY,
            ...(interrupt ? { signal: interrupt.signal } : {}),
          });
        } catch (error) {
          if (!interrupt?.detached) throw error;
          await probe?.abandon();
          sayDetached(migrationId, flags, interrupt);
          return;
        } finally {
          interrupt?.close();
          client.close();
        }
        if (probe) report = { ...report, network: networkSection(await probe.finish(), report) };
        if (!flags.resume && destinationNotUp(report) && (await waiting.pause(report.error!.message))) continue;
        printReport(report, flags.json === true);
        return;
      }
    } finally {
      interrupt?.close();
    }
  });

  const startPostcopy = program
    .command('migrate-start-postcopy')
    .description('Switch a running hybrid migration to post-copy now, mid-round if need be (as QEMU does).')
    .option('--control <url>', 'the source agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171');
  addClientSecurityOptions(startPostcopy).action(async (flags: SecurityFlags & { control: string }) => {
    const client = await connectControl(flags.control, flags);
    try {
      await client.request('migrate-start-postcopy', {});
      process.stdout.write('switching to post-copy now\n');
    } finally {
      client.close();
    }
  });
}

/** Errors `--wait` rides out: the source agent not listening (yet), its VM not booted yet. */
const NOT_UP_YET: ReadonlySet<ErrorCode> = new Set(['ERR_CONNECTION', 'ERR_NOT_FOUND']);

/**
 * A migration that failed because the destination could not be reached, before a byte was sent:
 * the VM never left the source, so starting it again is safe.
 */
function destinationNotUp(report: MigrationReport): boolean {
  return (
    report.outcome === 'failed' &&
    report.error?.code === 'ERR_CONNECTION' &&
    report.bytes.wire === 0 &&
    report.vmRunsOn !== 'destination' &&
    report.vmRunsOn !== 'lost'
  );
}

/** `--wait`: retry for up to `ms` after the first attempt, saying on stderr what it waits for. */
class Waiting {
  readonly #deadline: number;
  readonly #stopped: () => boolean;
  #said = '';

  /** `stopped`: the operator said stop (Ctrl-C) — no more attempts. */
  constructor(ms: number, stopped: () => boolean = () => false) {
    this.#deadline = Date.now() + ms;
    this.#stopped = stopped;
  }

  /** Run `attempt` until it succeeds, fails with something else, or the time is up. */
  async retry<T>(attempt: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await attempt();
      } catch (error) {
        if (!(isMigrationError(error) && NOT_UP_YET.has(error.code) && (await this.pause(error.message)))) throw error;
      }
    }
  }

  /** Sleep before the next attempt; false when the time is up. */
  async pause(reason: string): Promise<boolean> {
    const left = this.#deadline - Date.now();
    if (left <= 0 || this.#stopped()) return false;
    if (reason !== this.#said) {
      process.stderr.write(`livemig: waiting (${Math.ceil(left / 1000)} s left): ${reason}\n`);
      this.#said = reason;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(500, left)));
    return true;
  }
}

/** Start the migration; Ctrl-C is `interrupt`'s from the `migrate` request on. */
async function startMigration(
  client: ControlClient,
  flags: MigrateCommandFlags,
  interrupt: MigrateInterrupt | undefined,
): Promise<string> {
  const prepared = flags.destControl === undefined ? undefined : await prepareOnDestination(client, flags);
  const ticket = prepared?.ticket ?? flags.ticket;
  interrupt?.listen();
  const { migrationId } = await client.request('migrate', {
    vm: flags.vm!,
    to: flags.to!,
    mode: flags.mode,
    params: migrateParams(flags),
    ...(ticket ? { ticket } : {}),
    // Secure agents check the destination's certificate: the name given, else the one the
    // destination's control connection proved, else --to's host (as any TLS client checks).
    destName: flags.destName ?? prepared?.destName ?? parseHostPort(flags.to!, '--to').host,
  });
  return migrationId;
}

/**
 * --dest-control: libvirt's Prepare step. On the destination's control API, as this operator,
 * ask for a ticket for the VM from the source — named as the source's control connection proved
 * with its certificate — and learn the destination's own certificate name.
 */
async function prepareOnDestination(
  source: ControlClient,
  flags: MigrateCommandFlags,
): Promise<{ ticket: string; destName: string | null }> {
  const from = source.agentName;
  if (from === null) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      '--dest-control is for secure agents (give --pki and --name, and wss:// URLs): plaintext agents take no tickets',
    );
  }
  // --agent-name names the source: the destination's certificate is checked against its URL's host.
  const dest = await connectControl(flags.destControl!, flags, null);
  try {
    const { ticket } = await dest.request('prepare-incoming', { vm: flags.vm!, from });
    return { ticket, destName: dest.agentName };
  } finally {
    dest.close();
  }
}

/** Start probing the VM's service (--probe ADDRESS, or the NIC address query-vms gives) and wait for its first reply. */
async function startProbeOn(client: ControlClient, flags: MigrateCommandFlags): Promise<RunningProbe> {
  const { vms } = await client.request('query-vms', {});
  const vm = vms.find((v) => v.name === flags.vm);
  // Not there yet is worth waiting for (--wait): the source may still be booting it.
  if (!vm) throw new MigrationError('ERR_NOT_FOUND', `--probe: no VM named "${flags.vm}" on the source (yet)`);
  const nic = vm.nic;
  const address = typeof flags.probe === 'string' ? flags.probe : nic?.address;
  if (address === undefined) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `--probe: VM "${flags.vm}" has no NIC to probe; give --probe IP:PORT, or boot it with --workload kv --nic IP:PORT`,
    );
  }
  const running = startProbe({ target: parseHostPort(address, '--probe'), intervalMs: flags.probeInterval });
  try {
    await running.answered;
  } catch (error) {
    await running.abandon();
    throw error;
  }
  return running;
}

async function resumeMigration(client: ControlClient, interrupt: MigrateInterrupt | undefined): Promise<string> {
  // query-migrate gives an outgoing migration first; an incoming one is resumed by its source.
  const info = await client.request('query-migrate', {});
  if (info?.direction !== 'outgoing') {
    throw new MigrationError(
      'ERR_NOT_FOUND',
      info
        ? `no outgoing migration on this agent (${info.migrationId} here is incoming: resume it on its source)`
        : 'no migration on this agent',
    );
  }
  interrupt?.listen();
  await client.request('migrate-resume', { migrationId: info.migrationId });
  return info.migrationId;
}

/** --detach: the id on stdout (for scripts), how to follow and cancel it on stderr. */
function printDetached(migrationId: string, flags: MigrateCommandFlags): void {
  process.stdout.write(flags.json ? `${JSON.stringify({ migrationId })}\n` : `${migrationId}\n`);
  if (!flags.json) {
    process.stderr.write(`livemig: migration ${migrationId} goes on\n${followHints(migrationId, flags)}`);
  }
}

/** A second Ctrl-C: what goes on without us, how to follow and cancel it; exit 130. */
function sayDetached(migrationId: string, flags: MigrateCommandFlags, interrupt: MigrateInterrupt): void {
  const what = {
    'not asked': 'which goes on',
    asked: 'which was asked to cancel',
    accepted: 'which is being cancelled',
    refused: 'which goes on',
  }[interrupt.cancelState];
  process.stderr.write(`livemig: detached from migration ${migrationId}, ${what}\n${followHints(migrationId, flags)}`);
  process.exitCode = EXIT_DETACHED;
}

/** The report on stdout; exit status 1 unless it completed. */
export function printReport(report: MigrationReport, json: boolean): void {
  process.stdout.write(json ? JSON.stringify(report) + '\n' : formatReport(report) + '\n');
  if (report.outcome !== 'completed') process.exitCode = 1;
}
