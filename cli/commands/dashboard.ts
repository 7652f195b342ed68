/**
 * `livemig dashboard`: a small web page that follows one agent live — its migrations in flight
 * and the last ones that ended, a progress bar, bytes per round, rate, dirty rate, expected
 * downtime, post-copy faults — for people who would rather watch than poll `livemig status`.
 *
 * This process is the agent's only client on the dashboard's behalf (dashboard/agent-follower.ts:
 * events plus query-migrate while a migration runs); browsers talk to this process only, over
 * its own HTTP server (dashboard/server.ts), and can send it nothing. What the page shows is the
 * model (dashboard/model.ts, a pure reducer of what the agent said) seen through view.ts.
 *
 * The page has no login, so it is served on loopback only unless --insecure-listen (the
 * listen-address.ts check); the agent's certificate and ours work as for every client command.
 * It keeps going when the agent goes away (the page says "agent unreachable" and the dashboard
 * reconnects with backoff) and stops on SIGINT or SIGTERM.
 */
import type { Command } from 'commander';
import { formatHostPort, MigrationError } from '@livemig/shared';
import { AgentFollower } from '../dashboard/agent-follower.ts';
import { checkListenAddress, isLoopbackIp, isLoopbackListenHost } from '../dashboard/listen-address.ts';
import { initialModel, reduce, type AgentLink, type DashboardInput } from '../dashboard/model.ts';
import { DashboardServer } from '../dashboard/server.ts';
import { pageView } from '../dashboard/view.ts';
import { controlUrlFlag, durationInRangeFlag, hostPortFlag, intInRangeFlag } from '../options.ts';
import {
  addClientSecurityOptions,
  connectControl,
  credentialsFromFlags,
  type SecurityFlags,
} from '../security-flags.ts';

interface DashboardFlags extends SecurityFlags {
  control: string;
  listen: string;
  insecureListen?: boolean;
  poll: number;
  maxBrowsers: number;
}

/** How long stopping may take before the process exits regardless (a half-dead agent's close handshake). */
const STOP_DEADLINE_MS = 3000;

export function registerDashboardCommand(program: Command): void {
  const command = program
    .command('dashboard')
    .description(
      'Serve a web page that follows an agent live: migrations in flight, progress, bytes per round, rates, downtime.',
    )
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .option(
      '--listen <host:port>',
      'where to serve the page (loopback only, unless --insecure-listen)',
      hostPortFlag,
      '127.0.0.1:8080',
    )
    .option(
      '--insecure-listen',
      'serve the page beyond loopback: it has no login, so anyone who can reach the address sees the migrations',
    )
    .option(
      '--poll <duration>',
      'how often to ask for live figures while a migration runs',
      durationInRangeFlag(50, 10_000),
      250,
    )
    .option(
      '--max-browsers <n>',
      'browsers following the page at once; more are refused (HTTP 503)',
      intInRangeFlag(1, 1024),
      32,
    );
  addClientSecurityOptions(command)
    .addHelpText('after', HELP)
    .action(async (flags: DashboardFlags) => {
      const insecure = flags.insecureListen === true;
      const listen = checkListenAddress(flags.listen, insecure);
      // Half an identity, or one that cannot be read, is the operator's to fix, not something to retry.
      await credentialsFromFlags(flags);

      let model = initialModel(flags.control, Date.now());
      const server = await DashboardServer.start({
        ...listen,
        maxBrowsers: flags.maxBrowsers,
        anyHost: insecure && !isLoopbackListenHost(listen.host),
        view: () => pageView(model, Date.now()),
      });
      const bound = server.address();
      if (!insecure && !isLoopbackIp(bound.host)) {
        // `localhost` resolved beyond loopback on this machine: refuse rather than serve there.
        await server.close();
        throw new MigrationError(
          'ERR_INVALID_ARGUMENT',
          `--listen ${flags.listen} bound ${formatHostPort(bound)}, which is not loopback; give 127.0.0.1 or [::1]`,
        );
      }
      if (!isLoopbackIp(bound.host)) {
        process.stderr.write(
          `dashboard: WARNING: serving on ${formatHostPort(bound)} without login (--insecure-listen): ` +
            `anyone who can reach it sees this agent's migrations\n`,
        );
      }
      process.stderr.write(`dashboard: ${server.url}\n`);

      const dispatch = (input: DashboardInput): void => {
        const next = reduce(model, input);
        if (next === model) return;
        const before = model.agent;
        model = next;
        server.changed();
        reportLink(before, model.agent);
      };
      const follower = new AgentFollower({
        connect: () => connectControl(flags.control, flags),
        dispatch,
        model: () => model,
        pollMs: flags.poll,
      });
      follower.start();

      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        const on = (name: NodeJS.Signals) => (): void => {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          resolve(name);
        };
        const onInt = on('SIGINT');
        const onTerm = on('SIGTERM');
        process.once('SIGINT', onInt);
        process.once('SIGTERM', onTerm);
      });
      process.stderr.write(`dashboard: ${signal}, stopping\n`);
      // The stop is bounded: a connection whose peer stopped answering may hold its socket for
      // the WebSocket close timeout (30 s); nothing is left to do by then, so exit regardless.
      setTimeout(() => process.exit(), STOP_DEADLINE_MS).unref();
      await Promise.all([follower.stop(), server.close()]);
    });
}

/** One line on stderr when the link to the agent changes (not on every retry of the same failure). */
function reportLink(before: AgentLink, after: AgentLink): void {
  if (before.state === after.state && before.error === after.error) return;
  if (after.state === 'connected' && before.state !== 'connected') {
    const name = after.name ? ` (${after.name})` : '';
    process.stderr.write(`dashboard: following ${after.url}${name} (Ctrl-C to stop)\n`);
  } else if (after.state === 'unreachable' && (before.state !== 'unreachable' || before.error !== after.error)) {
    process.stderr.write(`dashboard: agent unreachable: ${after.error ?? 'unknown'}; retrying\n`);
  }
}

const HELP = [
  '',
  'Open the URL it prints on stderr (dashboard: http://127.0.0.1:8080/). The page shows every migration',
  'the agent runs, outgoing or incoming, as it goes — status, a progress bar, bytes sent and remaining,',
  'the rate, the dirty rate, the expected downtime, a bar chart of the bytes of each pre-copy round',
  '(estimated live, exact once the report came), post-copy faults — and the report once it ended.',
  "It is fed by the agent's events and by query-migrate every --poll while a migration runs; this",
  "process is the agent's only client, browsers talk to it alone (Server-Sent Events) and send nothing.",
  'The page has no login: the dashboard listens on loopback only (reach it from elsewhere through an SSH',
  'tunnel: ssh -L 8080:127.0.0.1:8080 HOST) and answers only requests addressed to a loopback name.',
  '--insecure-listen serves it beyond loopback anyway. With --pki/--name it connects over mutual TLS;',
  'a viewer certificate is enough. When the agent goes away the page says "agent unreachable" and the',
  'dashboard reconnects (0.25 s, doubling to 5 s). SIGINT or SIGTERM stops it.',
  'Example: livemig dashboard --control wss://agent-a:7171 --pki pki --name victor',
].join('\n');
