/**
 * `livemig agent`: run the livemig agent — host VMs, accept migrations on the data port and
 * migrate VMs out on request, so a VM can move on from where it arrived, or back. `livemig
 * source` and `livemig dest` (source.ts, dest.ts) are the same daemon with other default ports;
 * this file defines the command once for all three. Flags → a checked config → the daemon.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { createLogger, MigrationError, parseHostPort, runDaemon } from '@livemig/shared';
import { AgentDaemon, prebuildWorkerBundles } from '@livemig/agent';
import {
  addLogLevelOption,
  addressMoverFromFlags,
  addVmLinkOption,
  type LogLevelFlags,
  type VmLinkFlags,
} from '../agent-options.ts';
import { DEFAULT_MAX_CLIENTS, DEFAULT_RATE_LIMIT } from '@livemig/shared/control';
import { KNOWN_CAPABILITIES, type Capability } from '@livemig/shared/protocol';
import { capabilitiesFlag, hostPortFlag, positiveIntFlag } from '../options.ts';
import { addSecurityOptions, credentialsFromFlags, type SecurityFlags } from '../security-flags.ts';
import { addAuditOptions, auditFromFlags, diskDirFromFlags, type AuditFlags } from '../audit-flags.ts';
import { addAvailabilityOptions, availabilityFromFlags, type AvailabilityFlags } from '../availability-flags.ts';
import { addMetricsOption, metricsFromFlags, type MetricsFlags } from '../metrics-flags.ts';
import { addVmSpecOptions, AGENT_VM_DEFAULTS, specFromFlags, type VmFlags } from '../vm-flags.ts';

/** One name under which the agent runs, with its defaults. */
export interface AgentCommandVariant {
  /** The subcommand, also the ready line's `role` and the start of the agent's id. */
  name: 'agent' | 'source' | 'dest';
  description: string;
  /** Default data port; undefined: accept no migrations unless --listen is given. */
  listen?: string;
  /** Default control address. */
  control: string;
}

interface AgentFlags
  extends VmFlags, LogLevelFlags, VmLinkFlags, SecurityFlags, AuditFlags, AvailabilityFlags, MetricsFlags {
  allowSource: string[];
  listen?: string;
  control: string;
  vm?: string;
  capabilities?: Capability[];
  allowOrigin: string[];
  insecure?: boolean;
  maxControlClients: number;
  controlRate: number;
  controlBurst: number;
}

/** `livemig agent` and its default ports. */
const AGENT: AgentCommandVariant = {
  name: 'agent',
  description:
    'Run a livemig agent: host VMs, accept migrations on the data port and migrate VMs out on request ' +
    '(onward, or back to where they came from).',
  listen: '127.0.0.1:7070',
  control: '127.0.0.1:7071',
};

export function registerAgentCommand(program: Command): void {
  addAgentCommand(program, AGENT);
}

/** Register one variant of the agent command. */
export function addAgentCommand(program: Command, variant: AgentCommandVariant): Command {
  const command = program.command(variant.name).description(variant.description);
  if (variant.listen === undefined) {
    command.option('--listen <host:port>', 'also accept migrations on this data port (default: none)', hostPortFlag);
  } else {
    command.option(
      '--listen <host:port>',
      'data port migrations arrive on; 127.0.0.1 only by default',
      hostPortFlag,
      variant.listen,
    );
  }
  command
    .option(
      '--control <host:port>',
      'control API address (ws); 127.0.0.1 only by default',
      hostPortFlag,
      variant.control,
    )
    .option('--vm <name>', 'boot a VM with this name at start (else create VMs through the control API)');
  command.option(
    '--allow-origin <origin>',
    'let a browser page from this origin (e.g. https://console.example) open the control API; repeatable ' +
      '(default: none — an upgrade with any Origin header is refused with 403)',
    allowOriginFlag,
    [],
  );
  addVmSpecOptions(command, AGENT_VM_DEFAULTS);
  addVmLinkOption(command);
  command.option(
    '--capabilities <list>',
    `migration capabilities to offer, comma-separated (default: all of ${Object.keys(KNOWN_CAPABILITIES).join(', ')}); ` +
      "a feature the other agent or this one leaves out is not used, like QEMU's migrate-set-capabilities",
    capabilitiesFlag,
  );
  addSecurityOptions(command).addOption(
    new Option(
      '--allow-source <pattern>',
      'with --pki: source certificate names allowed to migrate VMs here, a glob (e.g. "agent-*"); repeatable',
    )
      .argParser((value: string, previous: string[]) => [...previous, value])
      .default([], 'none: nobody'),
  );
  command
    .option(
      '--max-control-clients <n>',
      'most control clients connected at once; more are refused (HTTP 503, ERR_TOO_MANY_CLIENTS)',
      positiveIntFlag,
      DEFAULT_MAX_CLIENTS,
    )
    .option(
      '--control-rate <n>',
      'requests per second each control client may send, sustained; more are answered ERR_RATE_LIMITED',
      positiveIntFlag,
      DEFAULT_RATE_LIMIT.ratePerSec,
    )
    .option(
      '--control-burst <n>',
      'requests each control client may send at once, above --control-rate',
      positiveIntFlag,
      DEFAULT_RATE_LIMIT.burst,
    );
  command.option(
    '--insecure',
    'without --pki: bind plaintext ports beyond loopback anyway (no authentication, no encryption; ' +
      'warned about at start and on every connection). Without it such an agent refuses to start (ERR_INSECURE)',
  );
  addAvailabilityOptions(command);
  addAuditOptions(command);
  addMetricsOption(command);
  return addLogLevelOption(command)
    .addHelpText('after', helpText(variant))
    .action(async (flags: AgentFlags) => {
      const listen = flags.listen === undefined ? undefined : parseHostPort(flags.listen, '--listen');
      const control = parseHostPort(flags.control, '--control');
      const spec = flags.vm ? specFromFlags(flags) : undefined;
      const logger = createLogger({ name: variant.name, level: flags.logLevel });
      const pki = await credentialsFromFlags(flags);
      if (pki && flags.insecure) {
        throw new MigrationError('ERR_INVALID_ARGUMENT', '--insecure and --pki contradict each other: give one');
      }
      await runDaemon(logger, async () => {
        const daemon = await AgentDaemon.start({
          control,
          listen,
          logger,
          idPrefix: variant.name,
          ...(flags.capabilities ? { capabilities: flags.capabilities } : {}),
          allowOrigins: flags.allowOrigin,
          maxControlClients: flags.maxControlClients,
          controlRateLimit: { ratePerSec: flags.controlRate, burst: flags.controlBurst },
          insecure: flags.insecure === true,
          ...(pki ? { security: { pki, allowSource: flags.allowSource } } : {}),
          ...auditFromFlags(flags, pki),
          ...diskDirFromFlags(flags, pki),
          ...availabilityFromFlags(flags),
          ...metricsFromFlags(flags),
          addressMover: addressMoverFromFlags(flags, logger),
          ...(flags.vm && spec ? { vm: { name: flags.vm, spec } } : {}),
        });
        // Worker bundles changed since `npm ci` built them: rebuilt now, not by the first migration.
        // An optimisation: whatever goes wrong here is logged, never the agent's end.
        prebuildWorkerBundles().then(
          (bundles) => {
            if (bundles.built.length || bundles.failed.length) {
              logger.info({ event: 'worker-bundles', ...bundles }, 'worker bundles rebuilt');
            }
          },
          (error: unknown) => logger.warn({ event: 'worker-bundles.failed', err: error }, 'worker bundles not rebuilt'),
        );
        const data = daemon.dataAddress;
        return {
          ready: {
            role: variant.name,
            control: daemon.controlUrl,
            ...(data === undefined ? {} : { listen: data }),
            ...(daemon.metricsUrl === undefined ? {} : { metrics: daemon.metricsUrl }),
            agentId: daemon.agentId,
          },
          stop: (r) => daemon.stop(r),
        };
      });
    });
}

/** One --allow-origin: an http(s) origin exactly as a browser sends it, collected into a list (usage error else). */
function allowOriginFlag(value: string, previous: string[]): string[] {
  let origin: string | undefined;
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' || url.protocol === 'https:') origin = url.origin;
  } catch {
    origin = undefined;
  }
  if (origin !== value) {
    throw new InvalidArgumentError(
      `--allow-origin must be an origin as a browser sends it, scheme://host[:port] without a path or a ` +
        `trailing slash (e.g. https://console.example), not "${value}"`,
    );
  }
  return [...previous, origin];
}

function helpText(variant: AgentCommandVariant): string {
  const listen = variant.listen === undefined ? '' : `"listen":"${variant.listen}",`;
  const ready = `{"event":"ready","role":"${variant.name}","control":"ws://${variant.control}",${listen}"agentId":"…"}`;
  return [
    '',
    'Every agent hosts VMs and runs both ends of a migration: it migrates the VMs it hosts out on',
    "request (`livemig migrate --control ws://… --vm NAME --to HOST:PORT`, the other agent's --listen),",
    'and with a data port (--listen) it accepts migrations, so a VM that arrived can move on, or back.',
    ...(variant.name === AGENT.name ? [] : [`This is \`livemig agent\` under another name${aliasDefaults(variant)}.`]),
    '',
    'The --memory, --init, --workload, --seed, --nic and --disk flags describe the --vm (see `livemig run-vm --help`).',
    "Disks: a VM's disk image is DISK-DIR/NAME.img (--disk-dir; default STATE-DIR/disks, else a temporary",
    'directory per VM). Agents given the same --disk-dir on shared storage (NFS, a compose volume) migrate',
    'disks with `livemig migrate --storage shared`: the destination opens the image the source closed.',
    'Once listening it prints one line on stdout, with the ports bound (give port 0 to let it choose):',
    `  ${ready}`,
    'Logs go to stderr. SIGTERM is graceful: outgoing migrations still iterating switch over at once and',
    'get 30 s to finish (the VM would die with this process); incoming ones not yet handed over are',
    'aborted (their source keeps the VM).',
    'Security: with --pki DIR --name NAME (a `livemig pki` identity of role agent) both ports speak',
    "mutual TLS 1.3 — wss for control, each command allowed by the caller's certificate role — and",
    'incoming migrations are taken only from --allow-source names, each with a ticket from',
    '`livemig prepare-incoming` (or `livemig migrate --dest-control`, which asks for one).',
    'Without --pki both ports speak plaintext with no authentication, which the agent allows on',
    'loopback only (and says so at start); beyond loopback it refuses to start unless --insecure.',
    'Availability: the control API serves at most --max-control-clients at once, each at most',
    '--control-burst requests at once and --control-rate per second (over it: ERR_RATE_LIMITED, and',
    'that client is not read until its next request is due); `digest` hashes guest memory in a',
    'worker thread at idle CPU priority, one digest per VM at a time (requests meanwhile share the next).',
    'Audit: every state-changing command and every migration record goes to an append-only audit log,',
    "hash-chained and signed with the agent's key (--audit-log; with --pki by default",
    '$XDG_STATE_HOME/livemig/NAME/audit.log); `livemig audit verify --log FILE --pki DIR` checks it.',
    'Metrics: --metrics HOST:PORT serves Prometheus metrics on GET /metrics (the ready line gains',
    '"metrics":"http://HOST:PORT/metrics"); beyond loopback only over mutual TLS (--pki) or with --insecure.',
    'Example: livemig pki init --dir pki && livemig pki issue --dir pki --name host-b --role agent',
    '         livemig agent --pki pki --name host-b --listen 0.0.0.0:7070 --control 0.0.0.0:7071 \\',
    '           --allow-source "host-*"',
  ].join('\n');
}

/** How an alias's defaults compare with `livemig agent`'s, for its help. */
function aliasDefaults(variant: AgentCommandVariant): string {
  const same = variant.listen === AGENT.listen && variant.control === AGENT.control;
  return same ? ', with the same defaults' : '; only the default ports above differ';
}
