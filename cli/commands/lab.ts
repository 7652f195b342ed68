/**
 * `livemig lab`: the shaped-link lab by hand (issue 6).
 *   lab shape --dev eth0 --profile wan   shape a device of this namespace (containers' entrypoint)
 *   lab run --profile wan [vm options]   build a lab, measure its link, migrate across it, check
 *                                        the oracle, print link + report, tear it all down
 *   lab up --profile wan                 build a lab and leave it up (agents are yours to start)
 *   lab down [--all]                     remove the labs this user started (--all: every livemig lab)
 * Each subcommand first checks everything it needs for its profile (root, iproute2, nftables
 * only for a profile with loss where the kernel has no netem, …) and names all that is missing
 * in one error, with the packages to install (prerequisites.ts, host-probe.ts).
 */
import type { Command } from 'commander';
import { formatDuration, formatRate, MigrationError } from '@livemig/shared';
import { formatReport } from '@livemig/shared/report';
import { withLabMigration } from '../lab/lab-migration.ts';
import { measureLink } from '../lab/measure.ts';
import { PROFILES, type LinkProfile } from '../lab/profiles.ts';
import { checkHost, deviceExists, listDevices } from '../lab/host-probe.ts';
import { labNeeds } from '../lab/prerequisites.ts';
import { shapeDevice, shapeLab } from '../lab/shape.ts';
import { sh } from '../lab/sh.ts';
import { currentOwner, Lab, removeLabs, type RemovedLabs } from '../lab/topology.ts';
import { checkOracle } from '../oracle.ts';
import { flag, migrateParams, modeFlag, type ModeName } from '../options.ts';
import { addVmSpecOptions, specFromFlags, type VmFlags } from '../vm-flags.ts';
import { addStorageOption } from '../migrate-flags.ts';
import { DEFAULT_MIGRATE_PARAMS } from '@livemig/agent-source';
import type { StorageMode } from '@livemig/shared/protocol';

const profileFlag = flag((name: string): LinkProfile | null => {
  if (name === 'none') return null;
  const profile = PROFILES[name];
  if (!profile) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `unknown profile "${name}": use ${Object.keys(PROFILES).join(', ')} or none`,
    );
  }
  return profile;
});

/** A device name as the kernel allows it (IFNAMSIZ 16 with the NUL; no slash, colon or space). */
function checkDeviceName(dev: string): void {
  if (!/^[^\s/:]{1,15}$/.test(dev) || dev === '.' || dev === '..') {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `--dev "${dev}" is not a network device name`);
  }
}

/** `removed …` and what was left, and why, for `lab down`. */
function formatRemoved({ removed, kept }: RemovedLabs, all: boolean, owner: string): string {
  const labsOf = (entries: RemovedLabs['kept']): string[] => [...new Set(entries.map((e) => e.mark.lab))];
  const lines = [
    removed.length
      ? `removed ${removed.map((e) => e.ns).join(', ')}`
      : all
        ? 'no livemig labs'
        : `no labs of yours (uid ${owner})`,
  ];
  const running = kept.filter((e) => e.mark.owner === owner);
  const others = kept.filter((e) => e.mark.owner !== owner);
  if (running.length) {
    lines.push(`left your running lab ${labsOf(running).join(', ')} (its process removes it when it ends)`);
  }
  if (others.length) {
    const owners = [...new Set(others.map((e) => e.mark.owner))].join(', ');
    lines.push(
      `left ${labsOf(others).join(', ')} of other users (uid ${owners}): \`livemig lab down --all\` removes them`,
    );
  }
  return lines.join('\n') + '\n';
}

function profileHelp(): string {
  return Object.values(PROFILES)
    .map((p) => `  ${p.name.padEnd(12)} ${p.description}`)
    .join('\n');
}

export function registerLabCommand(program: Command): void {
  const lab = program
    .command('lab')
    .description('Shaped-link lab in network namespaces: shape, run a migration, up, down (needs root).')
    .addHelpText('after', `\nProfiles:\n${profileHelp()}`);

  lab
    .command('shape')
    .description("Shape a device of this network namespace to a profile (e.g. a container's eth0).")
    .requiredOption('--dev <device>', 'the device, e.g. eth0')
    .requiredOption('--profile <name>', `${Object.keys(PROFILES).join(' | ')} | none`, profileFlag)
    .option('--json', 'print the mechanisms as JSON')
    .action((flags: { dev: string; profile: LinkProfile | null; json?: boolean }) => {
      checkDeviceName(flags.dev);
      if (!flags.profile) {
        process.stdout.write(flags.json ? '{"profile":"none"}\n' : 'lab shape: profile none, nothing shaped\n');
        return;
      }
      checkHost(`shape ${flags.dev} to ${flags.profile.name}`, labNeeds('shape', [flags.profile]));
      if (!deviceExists(flags.dev)) {
        const devices = listDevices();
        throw new MigrationError(
          'ERR_INVALID_ARGUMENT',
          `--dev "${flags.dev}": no such device in this network namespace` +
            (devices.length ? ` (it has ${devices.join(', ')})` : ''),
        );
      }
      const mechanisms = shapeDevice(([command, ...args]) => sh(command!, ...args), flags.dev, flags.profile);
      if (flags.json) {
        const applied = { ...mechanisms, delay: mechanisms.delay === 'relay' ? 'none' : mechanisms.delay };
        process.stdout.write(
          JSON.stringify({ profile: flags.profile.name, dev: flags.dev, mechanisms: applied }) + '\n',
        );
        return;
      }
      // Here nothing puts a relay on the path: without netem the delay is simply not applied.
      const delay = mechanisms.delay === 'relay' ? 'nothing (no netem in this kernel)' : mechanisms.delay;
      process.stdout.write(
        `lab shape: ${flags.dev} shaped to ${flags.profile.name} (${flags.profile.description}): ` +
          `rate by ${mechanisms.rate}, loss by ${mechanisms.loss}, delay by ${delay}\n`,
      );
      if (mechanisms.delay === 'relay') {
        process.stderr.write(
          'lab shape: warning: this kernel has no netem, so no delay was added on this device; ' +
            '`livemig lab run` puts a userspace delay relay on the path instead\n',
        );
      }
    });

  const run = lab
    .command('run')
    .description('Build a lab shaped to a profile, measure the link, migrate a VM across it, check the oracle.');
  addVmSpecOptions(run, { memory: '256MiB', init: 'random', workload: 'hotset:wss=16MiB,rate=5000' });
  run
    .requiredOption('--profile <name>', Object.keys(PROFILES).join(' | '), profileFlag)
    .option('--mode <mode>', 'precopy | postcopy | hybrid', modeFlag, 'precopy');
  addStorageOption(run)
    .option('--json', 'print {profile, mechanisms, measured, report} as one JSON object')
    .option(
      '--insecure',
      'plaintext agents (default: a throwaway fleet PKI, mutual TLS on both ports, the migration with a ticket)',
    )
    .action(
      async (
        flags: VmFlags & {
          profile: LinkProfile | null;
          mode: ModeName;
          storage: StorageMode;
          json?: boolean;
          insecure?: boolean;
        },
      ) => {
        if (!flags.profile) throw new MigrationError('ERR_INVALID_ARGUMENT', 'lab run needs a profile');
        // withLabMigration checks this host for everything the profile needs before it builds.
        const spec = specFromFlags(flags);
        const profile = flags.profile;
        const result = await withLabMigration(
          {
            profile,
            spec,
            mode: flags.mode,
            secure: flags.insecure !== true,
            params: migrateParams({
              downtimeLimit: DEFAULT_MIGRATE_PARAMS.downtimeLimitMs,
              maxRounds: DEFAULT_MIGRATE_PARAMS.maxRounds,
              storage: flags.storage,
            }),
          },
          async ({ mechanisms, measured, report, admin }) => {
            if (report.outcome !== 'completed') return { mechanisms, measured, report };
            const client = await admin('dest');
            try {
              return { mechanisms, measured, report: { ...report, oracle: await checkOracle(client, 'vm', spec) } };
            } finally {
              client.close();
            }
          },
        );
        if (flags.json) {
          process.stdout.write(JSON.stringify({ profile, ...result }) + '\n');
        } else {
          process.stdout.write(
            `link: ${profile.name} (${profile.description}); rate by ${result.mechanisms.rate}, loss by ` +
              `${result.mechanisms.loss}, delay by ${result.mechanisms.delay}; measured ` +
              `${formatRate(result.measured.rateBps)}, RTT ${formatDuration(result.measured.rttMs)}\n\n` +
              formatReport(result.report) +
              '\n',
          );
        }
        if (result.report.outcome !== 'completed' || result.report.oracle?.match !== true) process.exitCode = 1;
      },
    );

  lab
    .command('up')
    .description('Build a two-host lab (source, dest) shaped to a profile and leave it up; prints how to use it.')
    .requiredOption('--profile <name>', Object.keys(PROFILES).join(' | '), profileFlag)
    .action(async (flags: { profile: LinkProfile | null }) => {
      if (!flags.profile) throw new MigrationError('ERR_INVALID_ARGUMENT', 'lab up needs a profile');
      checkHost(`build a lab shaped to ${flags.profile.name}`, labNeeds('up', [flags.profile]));
      const built = Lab.create(['source', 'dest'], { persistent: true });
      const mechanisms = shapeLab(built, flags.profile);
      const measured =
        mechanisms.delay === 'relay' ? undefined : await measureLink(built, 'source', 'dest', flags.profile);
      for (const host of built.hosts.values()) {
        process.stdout.write(`${host.name.padEnd(8)} namespace ${host.ns}, address ${host.address}\n`);
      }
      process.stdout.write(
        `shaped to ${flags.profile.name}: rate by ${mechanisms.rate}, loss by ${mechanisms.loss}, delay by ${mechanisms.delay}` +
          (measured ? `; measured ${formatRate(measured.rateBps)}, RTT ${formatDuration(measured.rttMs)}` : '') +
          '\n' +
          (mechanisms.delay === 'relay'
            ? 'no netem here: delay is not applied on the links (use `livemig lab run` for a run with the delay relay)\n'
            : '') +
          `e.g. ip netns exec ${built.host('dest').ns} npx livemig dest --listen ${built.host('dest').address}:7070 --control ${built.host('dest').address}:7071\n` +
          `remove it with \`livemig lab down\` (as uid ${built.mark.owner}, its owner)\n`,
      );
    });

  lab
    .command('down')
    .description(
      'Remove the labs you started (left up, or of a crashed run), with their links; --all: every livemig lab.',
    )
    .option('--all', "every livemig lab on this machine, other users' and running ones included")
    .action((flags: { all?: boolean }) => {
      checkHost('remove labs', labNeeds('down', []));
      const owner = currentOwner();
      const result = removeLabs(flags.all ? { kind: 'all' } : { kind: 'mine', owner });
      process.stdout.write(formatRemoved(result, flags.all === true, owner));
    });
}
