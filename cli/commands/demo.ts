/**
 * `livemig demo`: the whole story on one machine. Make a throwaway fleet PKI, start two agents
 * (`livemig agent`) as child processes on loopback speaking mutual TLS, boot a VM on one (the
 * source), get a ticket from the other (the destination), migrate the VM there while it runs,
 * let it run on at the destination, then prove nothing was lost with the determinism oracle — a
 * never-migrated reference VM of the same spec and seed, run to the same step count, must have
 * the same memory digest — print the report and stop both agents. A VM with a disk (--disk)
 * migrates it as --storage says; with `--storage shared` both agents get one disk directory
 * (a temporary one, removed afterwards), as two hosts would mount the same shared storage.
 */
import type { Command } from 'commander';
import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBytes, formatDuration, MigrationError, parseHostPort } from '@livemig/shared';
import { ControlClient } from '@livemig/shared/control';
import { formatReport, type MigrationReport } from '@livemig/shared/report';
import { workloadHelp, type VmSpec } from '@livemig/shared/vm';
import { checkOracle } from '../oracle.ts';
import { networkSection, startProbe } from '../probe/during.ts';
import { withAgentPair } from '../agent-process.ts';
import { withThrowawayPki } from '../throwaway-pki.ts';
import { followMigration } from '../follow-migration.ts';
import { anyDurationFlag, durationFlag, migrateParams, type MigrateFlags, type ModeName } from '../options.ts';
import { addVmSpecOptions, specFromFlags, type VmFlags } from '../vm-flags.ts';
import { addMigrationKnobs } from '../migrate-flags.ts';

interface DemoFlags extends VmFlags, MigrateFlags {
  mode: ModeName;
  runAfter: number;
  json?: boolean;
  verbose?: boolean;
  probe?: boolean;
  probeInterval: number;
  insecure?: boolean;
}

export function registerDemoCommand(program: Command): void {
  const command = program
    .command('demo')
    .description(
      'Start two agents on loopback, migrate a running VM between them, check the determinism oracle, print the report.',
    );
  addVmSpecOptions(command, { memory: '512MiB', init: 'random', workload: 'hotset:wss=32MiB,rate=20000' });
  addMigrationKnobs(command)
    .option(
      '--run-after <duration>',
      'how long the VM runs at the destination before the oracle check',
      anyDurationFlag,
      1000,
    )
    .option(
      '--probe',
      "with --workload kv: a client sends a request to the VM's address every --probe-interval during the migration; " +
        'the report gets network downtime, lost replies and lost writes',
    )
    .option('--probe-interval <duration>', 'time between probe requests', durationFlag, 1)
    .option('--json', 'print exactly one JSON report (schema livemig.report/1, with "oracle") on stdout')
    .option('--verbose', "show the agents' logs on stderr")
    .option(
      '--insecure',
      'plaintext on loopback, nobody authenticated (default: a throwaway fleet PKI, mutual TLS, a ticket, roles)',
    )
    .addHelpText(
      'after',
      `\nWorkloads:\n${workloadHelp()}\n\n` +
        'Example: livemig demo --workload kv --probe   (a kv service in the VM; its clients see the migration)\n\n' +
        'Exit status: 0 when migrated and the oracle matched (kv: no acknowledged write lost), 1 otherwise.',
    )
    .action(async (flags: DemoFlags) => {
      const spec = specFromFlags(await withDefaultNic(flags));
      if (flags.probe && spec.nic === null) {
        throw new MigrationError('ERR_INVALID_ARGUMENT', '--probe needs a VM with a service: use --workload kv');
      }
      const report = await runDemo(spec, flags);
      process.stdout.write(flags.json ? JSON.stringify(report) + '\n' : formatReport(report) + '\n');
      const proven =
        spec.nic === null ? report.oracle?.match === true : report.network?.lostWrites === 0 || !flags.probe;
      if (report.outcome !== 'completed' || !proven) process.exitCode = 1;
    });
}

function say(flags: DemoFlags, text: string): void {
  if (!flags.json) process.stderr.write(`${text}\n`);
}

/** The demo fleet's identities: two agents, an operator who migrates, an admin who boots and checks. */
const NAMES = { source: 'demo-source', dest: 'demo-dest', operator: 'demo-operator', admin: 'demo-admin' } as const;
const IDENTITIES = [
  { name: NAMES.source, role: 'agent' },
  { name: NAMES.dest, role: 'agent' },
  { name: NAMES.operator, role: 'operator' },
  { name: NAMES.admin, role: 'admin' },
] as const;

/** The control connections the demo drives the agents through, by who speaks. */
interface DemoClients {
  /** Boots the VM on the source (create-vm), stops it and reads its digest on the destination (the oracle). */
  sourceAdmin: ControlClient;
  destAdmin: ControlClient;
  /** Asks the destination for a ticket and the source to migrate. */
  sourceOperator: ControlClient;
  destOperator: ControlClient;
}

/**
 * `run` with the flags that give both agents one disk directory for `--storage shared` (a
 * temporary directory, removed afterwards), or none: each agent keeps its own images.
 */
async function withSharedDisks<T>(flags: DemoFlags, run: (args: string[]) => Promise<T>): Promise<T> {
  if (flags.storage !== 'shared') return run([]);
  const dir = await mkdtemp(join(tmpdir(), 'livemig-demo-disks-'));
  say(flags, `demo: both agents keep their disk images in ${dir} (--storage shared) …`);
  try {
    return await run(['--disk-dir', dir]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function runDemo(spec: VmSpec, flags: DemoFlags): Promise<MigrationReport> {
  return withSharedDisks(flags, (args) => runDemoAgents(spec, flags, args));
}

/** Start the two agents (`args`: flags both get), connect to them, migrate and check. */
async function runDemoAgents(spec: VmSpec, flags: DemoFlags, args: string[]): Promise<MigrationReport> {
  const stderr = flags.verbose ? 'inherit' : 'pipe';
  if (flags.insecure) {
    say(flags, 'demo: starting two agents on 127.0.0.1, plaintext (--insecure: nobody authenticated) …');
    return withAgentPair({ stderr, args }, async ({ dest, source }) => {
      const [sourceClient, destClient] = await Promise.all([
        ControlClient.connect(source.control),
        ControlClient.connect(dest.control),
      ]);
      const clients: DemoClients = {
        sourceAdmin: sourceClient,
        destAdmin: destClient,
        sourceOperator: sourceClient,
        destOperator: destClient,
      };
      try {
        return await migrateAndCheck(spec, flags, clients, dest.listen, {});
      } finally {
        sourceClient.close();
        destClient.close();
      }
    });
  }
  return withThrowawayPki(IDENTITIES, async (pki) => {
    say(
      flags,
      `demo: a throwaway fleet CA in ${pki.dir}: agents ${NAMES.source} and ${NAMES.dest}, ` +
        `operator ${NAMES.operator}, admin ${NAMES.admin} …`,
    );
    say(flags, `demo: starting two agents on 127.0.0.1, mutual TLS 1.3; ${NAMES.dest} admits ${NAMES.source} only …`);
    // Their audit logs live and go with the throwaway PKI, not in the user's state directory.
    const state = (name: string): string[] => ['--state-dir', join(pki.dir, 'state', name)];
    const pair = {
      stderr,
      args,
      sourceArgs: [...pki.flags(NAMES.source), ...state(NAMES.source)],
      destArgs: [...pki.flags(NAMES.dest), ...state(NAMES.dest), '--allow-source', NAMES.source],
    } as const;
    return withAgentPair(pair, async ({ dest, source }) => {
      const opened: ControlClient[] = [];
      const open = async (url: string, who: string, agent: string): Promise<ControlClient> => {
        const client = await pki.connect(url, who, agent);
        opened.push(client);
        return client;
      };
      try {
        const clients: DemoClients = {
          sourceAdmin: await open(source.control, NAMES.admin, NAMES.source),
          destAdmin: await open(dest.control, NAMES.admin, NAMES.dest),
          sourceOperator: await open(source.control, NAMES.operator, NAMES.source),
          destOperator: await open(dest.control, NAMES.operator, NAMES.dest),
        };
        return await migrateAndCheck(spec, flags, clients, dest.listen, { destName: NAMES.dest, from: NAMES.source });
      } finally {
        for (const client of opened) client.close();
      }
    });
  });
}

/** Boot, (get a ticket,) migrate while it runs, follow, run on, check the oracle. */
async function migrateAndCheck(
  spec: VmSpec,
  flags: DemoFlags,
  clients: DemoClients,
  to: string,
  secure: { destName?: string; from?: string },
): Promise<MigrationReport> {
  const disk = spec.disk === null ? '' : `, a ${formatBytes(spec.disk)} disk`;
  say(
    flags,
    `demo: booting VM "demo" (${spec.memoryBytes} bytes, ${spec.init}, ${spec.workload}${disk}) on the source …`,
  );
  await clients.sourceAdmin.request('create-vm', {
    name: 'demo',
    memory: spec.memoryBytes,
    init: spec.init,
    workload: spec.workload,
    seed: spec.seed,
    ...(spec.nic ? { nic: spec.nic } : {}),
    ...(spec.disk === null ? {} : { disk: spec.disk }),
  });
  let ticket: string | undefined;
  if (secure.from !== undefined) {
    say(flags, `demo: the destination issues a single-use ticket for "demo" from ${secure.from} (prepare-incoming) …`);
    ({ ticket } = await clients.destOperator.request('prepare-incoming', { vm: 'demo', from: secure.from }));
  }
  const probe = flags.probe ? startProbe({ target: parseHostPort(spec.nic!), intervalMs: flags.probeInterval }) : null;
  let report: MigrationReport;
  try {
    if (probe) {
      say(
        flags,
        `demo: a client probes the VM's kv service at ${spec.nic} every ${formatDuration(flags.probeInterval)} …`,
      );
      await probe.answered;
    }
    say(flags, `demo: migrating to ${to} while it runs …`);
    const { migrationId } = await clients.sourceOperator.request('migrate', {
      vm: 'demo',
      to,
      mode: flags.mode,
      params: migrateParams(flags),
      ...(ticket === undefined ? {} : { ticket }),
      ...(secure.destName === undefined ? {} : { destName: secure.destName }),
    });
    report = await followMigration(clients.sourceOperator, migrationId, {
      progress: !flags.json && process.stderr.isTTY === true,
    });
  } catch (error) {
    await probe?.abandon();
    throw error;
  }
  if (probe) report = { ...report, network: networkSection(await probe.finish(), report) };
  if (report.outcome !== 'completed') return report;
  if (spec.nic !== null) {
    say(flags, 'demo: no oracle for kv: its input comes from the network, so no reference VM can replay it');
    return report;
  }
  say(flags, `demo: the VM runs on the destination; letting it run for ${formatDuration(flags.runAfter)} …`);
  await new Promise((resolve) => setTimeout(resolve, flags.runAfter));
  say(flags, 'demo: stopping it and running a never-migrated reference VM to the same step …');
  return { ...report, oracle: await checkOracle(clients.destAdmin, 'demo', spec) };
}

/** A kv VM needs an address: on one machine, a free loopback UDP port unless --nic names one. */
async function withDefaultNic(flags: DemoFlags): Promise<DemoFlags> {
  if (flags.nic !== undefined || !/^kv(:|$)/.test(flags.workload)) return flags;
  const socket = dgram.createSocket('udp4');
  const port = await new Promise<number>((resolve) =>
    socket.bind(0, '127.0.0.1', () => resolve(socket.address().port)),
  );
  socket.close();
  return { ...flags, nic: `127.0.0.1:${port}` };
}
