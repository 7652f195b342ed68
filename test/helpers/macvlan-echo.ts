/**
 * A stand-in for a VM's network service, run inside a lab host's namespace by
 * macvlan.integration.test.ts: `ip netns exec <ns> node --import tsx macvlan-echo.ts <json>`
 * with `{ host, ip, port, mac, parent, take }`. It prepares a MacvlanAddress (taking it at once
 * when `take` is true), serves a UDP echo on ip:port while it holds the address (replies are
 * "<host> <datagram>"), and obeys one command per stdin line:
 *
 *   take          take the address, then bind        → {"event":"taken","ms":…} (`at`: bound)
 *   prepare-give  mover.prepareGive() (a migration starts) → {"event":"give-prepared"}
 *   give          close the socket, give the address → {"event":"given","closedAt":…,"ipRuns":…}
 *                 (`ipRuns`: `ip` commands the mover started during give(), forks at handoff)
 *   exit          give, dispose, exit                → {"event":"disposed"}, then exit 0
 *
 * Every state reached is one JSON line on stdout ({"event":"ready"} after prepare and the
 * optional take); failures are {"event":"error","message":…} and exit 1. stdin closing (the test
 * process died) disposes and exits too, so no link outlives a crashed test.
 */
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import { MacvlanAddress } from '@livemig/shared/net';
import { pino } from 'pino';

interface EchoOptions {
  host: string;
  ip: string;
  port: number;
  mac: string;
  parent: string;
  take: boolean;
}

const options = JSON.parse(process.argv[2] ?? '{}') as EchoOptions;
/** `ip` commands the mover ran (runIp logs each at debug as address.command). */
let ipRuns = 0;
const logger = pino(
  { level: 'debug' },
  { write: (line: string) => void (line.includes('"address.command"') && (ipRuns += 1)) },
);
const mover = new MacvlanAddress({ address: options, parent: options.parent, logger });
let socket: dgram.Socket | undefined;

/** One JSON line; `at` is wall-clock ms with sub-ms precision, comparable across processes. */
function say(event: string, fields: Record<string, unknown> = {}): void {
  const at = performance.timeOrigin + performance.now();
  process.stdout.write(JSON.stringify({ event, host: options.host, link: mover.linkName, at, ...fields }) + '\n');
}

async function take(): Promise<number> {
  const { ms } = await mover.take();
  const server = dgram.createSocket('udp4');
  server.on('message', (message, from) =>
    server.send(`${options.host} ${message.toString()}`, from.port, from.address),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.bind(options.port, options.ip, () => resolve());
  });
  socket = server;
  return ms;
}

/** Close the socket (the service stops answering), then give the address; when it closed, and `ip` runs it took. */
async function give(): Promise<{ closedAt: number; ipRuns: number }> {
  const server = socket;
  socket = undefined;
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  const closedAt = performance.timeOrigin + performance.now();
  const before = ipRuns;
  await mover.give();
  return { closedAt, ipRuns: ipRuns - before };
}

let exiting = false;
async function exit(): Promise<void> {
  if (exiting) return;
  exiting = true;
  await give();
  await mover.dispose();
  say('disposed');
  process.exit(0);
}

function fail(error: unknown): never {
  say('error', { message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}

// Commands are handled one at a time, in order.
let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  queue = queue
    .then(async () => {
      const command = line.trim();
      if (command === 'take') say('taken', { ms: await take() });
      else if (command === 'prepare-give') {
        mover.prepareGive();
        say('give-prepared');
      } else if (command === 'give') say('given', await give());
      else if (command === 'exit') await exit();
      else if (command !== '') throw new Error(`unknown command "${command}"`);
    })
    .catch(fail);
});
lines.on('close', () => {
  queue = queue.then(exit).catch(fail);
});

try {
  await mover.prepare();
  say('ready', options.take ? { ms: await take() } : {});
} catch (error) {
  await mover.dispose().catch(() => undefined);
  fail(error);
}
