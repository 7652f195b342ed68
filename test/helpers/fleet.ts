/**
 * A secure fleet for one test file: a throwaway PKI (cli/throwaway-pki.ts), agents that speak
 * mutual TLS on both ports, people who drive them by role, and migrations the libvirt way — a
 * ticket from `prepare-incoming` on the destination, then `migrate` with it on the source.
 *
 *   const fleet = useFleet(); // beforeAll: the PKI; afterAll: removed (processes: stopAll)
 *   const [a, b] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
 *   expectCompleted(await fleet.migrate(a, b, { vm: 'vm' }));
 *
 * Each agent is named after the loopback address it binds (127.0.0.1, 127.0.0.2, …): a client
 * reaching it by address — `livemig status --control wss://127.0.0.3:…` too — checks its
 * certificate for that name. Every agent takes migrations from any agent of the fleet.
 * The helpers also drive a plaintext agent (one without a name, from processes.ts), for the
 * tests that are about plaintext.
 */
import { afterAll, beforeAll } from 'vitest';
import { AgentDaemon } from '@livemig/agent';
import { silentLogger } from '@livemig/shared';
import { ControlClient, type CommandArgs, type VmInfo } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { issueCertificate, loadPki, type LoadedPki } from '@livemig/shared/security';
import type { VmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle, type OracleResult } from '../../cli/oracle.ts';
import { createThrowawayPki, type ThrowawayPki } from '../../cli/throwaway-pki.ts';
import { runCli, startAgent, vmArgs, type AgentProcess } from './processes.ts';

/** An agent to talk to: `name` is its certificate's (none: a plaintext agent). */
export interface Member {
  name?: string;
  control: string;
  listen?: string;
}

/** An agent process of the fleet. */
export type FleetAgent = AgentProcess & { name: string };

/** An agent of the fleet in this process; stop it yourself. */
export type FleetDaemon = AgentDaemon & { name: string; control: string; listen: string };

/** Who drives the agents: the control roles a person can have. */
export type Person = 'operator' | 'admin';

/** What `migrate` takes besides the destination. */
export type MigrateArgs = Omit<CommandArgs<'migrate'>, 'to' | 'ticket' | 'destName'>;

/** Every agent of the fleet may migrate VMs to every other. */
const ALLOW_SOURCE = '127.0.0.*';

/** Create the fleet's PKI before the file's tests and remove it after them. */
export function useFleet() {
  let pki: ThrowawayPki | undefined;
  beforeAll(async () => {
    pki = await createThrowawayPki([
      { name: 'operator', role: 'operator' },
      { name: 'admin', role: 'admin' },
    ]);
  });
  afterAll(() => pki?.remove());
  const thePki = (): ThrowawayPki => {
    if (!pki) throw new Error('the fleet exists from beforeAll on');
    return pki;
  };

  /** Each person's credentials, loaded once. */
  const credentials = new Map<Person, Promise<LoadedPki>>();
  /** Each agent name's certificate, issued once. */
  const issued = new Map<string, Promise<unknown>>();
  let last = 0;
  /** An agent identity: the next loopback address, or the address given (an agent elsewhere). */
  async function identity(address?: string): Promise<string> {
    const name = address ?? `127.0.0.${(last = (last % 250) + 1)}`;
    if (!issued.has(name)) issued.set(name, issueCertificate(thePki().dir, { name, role: 'agent' }));
    await issued.get(name);
    return name;
  }

  const fleet = {
    /** The fleet's PKI directory: for a test that stands in the middle with an identity's own credentials. */
    get pkiDir(): string {
      return thePki().dir;
    },

    /** `livemig agent` with its own identity, both ports on its address. */
    async agent(
      options: { args?: readonly string[]; address?: string; wrap?: readonly string[]; kept?: boolean } = {},
    ): Promise<FleetAgent> {
      const name = await identity(options.address);
      const ports = ['--listen', `${name}:0`, '--control', `${name}:0`];
      const secure = [...thePki().flags(name), '--allow-source', ALLOW_SOURCE];
      const agent = await startAgent('agent', [...ports, ...secure, ...(options.args ?? [])], options);
      return Object.assign(agent, { name });
    },

    /** Two agents that stopAll leaves alone: a pair several tests share (test/helpers/shared-pair.ts). */
    pair(): Promise<[FleetAgent, FleetAgent]> {
      return Promise.all([fleet.agent({ kept: true }), fleet.agent({ kept: true })]);
    },

    /** An agent hosting one running VM `vm` of this spec. */
    source(vm: string, spec: VmSpec): Promise<FleetAgent> {
      return fleet.agent({ args: vmArgs(vm, spec) });
    },

    /**
     * An AgentDaemon of the fleet in this process (with a data port unless `listen` is false; with
     * `metrics`, Prometheus metrics on its address too).
     */
    async daemon(options: { listen?: boolean; metrics?: boolean } = {}): Promise<FleetDaemon> {
      const name = await identity();
      const at = { host: name, port: 0 };
      const daemon = await AgentDaemon.start({
        control: at,
        ...(options.listen === false ? {} : { listen: at }),
        ...(options.metrics ? { metrics: at } : {}),
        logger: silentLogger(),
        security: { pki: await loadPki(thePki().dir, name), allowSource: [ALLOW_SOURCE] },
      });
      return Object.assign(daemon, { name, control: daemon.controlUrl, listen: daemon.dataAddress ?? '' });
    },

    /** A control client to `agent` as `as` (wss, checking the agent's name), or plaintext to a plaintext agent. */
    async connect(agent: Member, as: Person = 'admin'): Promise<ControlClient> {
      if (!agent.name) return ControlClient.connect(agent.control);
      // pki.connect(url, as, name) would read and check the PEM files again on every connection
      // (twice the CPU of the TLS handshake itself); the tests open hundreds: read them once.
      if (!credentials.has(as)) credentials.set(as, loadPki(thePki().dir, as));
      const { ca, cert, key } = await credentials.get(as)!;
      return ControlClient.connect(agent.control, { tls: { ca, cert, key }, expectName: agent.name });
    },

    /** Ask `agent` something on a connection of its own. */
    async ask<T>(agent: Member, run: (client: ControlClient) => Promise<T>, as: Person = 'admin'): Promise<T> {
      const client = await fleet.connect(agent, as);
      try {
        return await run(client);
      } finally {
        client.close();
      }
    },

    /** The VMs on `agent`. */
    vms(agent: Member): Promise<VmInfo[]> {
      return fleet.ask(agent, async (client) => (await client.request('query-vms', {})).vms);
    },

    /**
     * Start migrating on `client`'s agent (the source) to `to`: a secure agent gets a ticket from
     * its operator first (`prepare-incoming` for the source's name), and its name is checked on
     * the data connection; a plaintext agent or a bare HOST:PORT gets neither. The migration's id.
     */
    async start(client: ControlClient, to: Member | string, args: MigrateArgs): Promise<string> {
      if (typeof to === 'string' || !to.name) {
        const address = typeof to === 'string' ? to : to.listen!;
        return (await client.request('migrate', { ...args, to: address })).migrationId;
      }
      const from = client.agentName!;
      const { ticket } = await fleet.ask(
        to,
        (dest) => dest.request('prepare-incoming', { vm: args.vm, from }),
        'operator',
      );
      return (await client.request('migrate', { ...args, to: to.listen!, ticket, destName: to.name })).migrationId;
    },

    /** Migrate as the operator and follow it to its report; `during` runs while it goes on. */
    migrate(
      from: Member,
      to: Member | string,
      args: MigrateArgs,
      during?: (client: ControlClient, migrationId: string) => Promise<void>,
    ): Promise<MigrationReport> {
      return fleet.ask(
        from,
        async (client) => {
          const migrationId = await fleet.start(client, to, args);
          const report = followMigration(client, migrationId, { progress: false });
          if (during) await during(client, migrationId);
          return await report;
        },
        'operator',
      );
    },

    /** The determinism oracle on `agent`'s VM (stop and digest: the admin's). */
    oracle(agent: Member, vm: string, spec: VmSpec): Promise<OracleResult> {
      return fleet.ask(agent, (client) => checkOracle(client, vm, spec));
    },

    /** `livemig <args>` as `as`. */
    cli(args: readonly string[], as: Person = 'operator'): ReturnType<typeof runCli> {
      return runCli([...args, ...thePki().flags(as)]);
    },
  };
  return fleet;
}
