/**
 * What a lab link's queue does to a small answer while a migration pushes bulk data across it,
 * for bench/postcopy.bench.ts's lan rows: a TCP ping (one byte each way, Nagle off) from the
 * `to` host to a server on the `from` host, so every echo leaves `from` through the same shaped
 * egress (tc tbf on its eth0) as the bulk pages and the fault answers; a control ping that
 * avoids that queue; and samples of the queue's backlog (`tc -s -j qdisc show`). All are
 * timestamped on this machine's clock (ms since the epoch, as the report's pausedAt) so the
 * caller can pick the post-copy window. Each ping has a deadline; every process is killed at
 * stop, or on a failure to start.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Lab } from '../cli/lab/topology.ts';

export interface RttSample {
  /** When the ping was sent, ms since the epoch. */
  at: number;
  /** Its round trip; Infinity when no echo came within the deadline. */
  rttMs: number;
}

export interface BacklogSample {
  at: number;
  /** Bytes queued in the root qdisc (and its children) at that moment. */
  backlogBytes: number;
  /** Packets dropped by the qdisc so far. */
  drops: number;
  /** Under bench/lan-priority-qdisc.ts's shaping: the part of backlogBytes in the priority class. */
  priorityBacklogBytes?: number;
}

export interface QueueProbe {
  /** Stop the pings and the sampler and return what they saw. */
  stop(): Promise<{ through: RttSample[]; around: RttSample[]; backlog: BacklogSample[] }>;
}

/** How long a ping may wait for its echo before it counts as lost and the next one goes. */
const PING_DEADLINE_MS = 2000;

const SERVER = `
const net = require('node:net');
const server = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('data', (chunk) => s.write(chunk.subarray(0, 1)));
  s.on('error', () => {});
});
server.listen(0, process.argv[1], () => console.log(server.address().port));
`;

// One ping in flight at a time; the next one goes intervalMs after the echo (or the deadline).
const CLIENT = `
const net = require('node:net');
const [host, port, intervalMs, deadlineMs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
const s = net.connect({ host, port }, () => {
  s.setNoDelay(true);
  let sent = 0, sentAt = 0, timer = null;
  const next = () => setTimeout(ping, intervalMs);
  const ping = () => {
    sentAt = performance.now(); sent = performance.timeOrigin + sentAt;
    s.write(Buffer.from([80]));
    timer = setTimeout(() => { timer = null; console.log(sent.toFixed(3) + ' Infinity'); next(); }, deadlineMs);
  };
  s.on('data', () => {
    if (timer === null) return; // a late echo of a ping already counted as lost
    clearTimeout(timer); timer = null;
    console.log(sent.toFixed(3) + ' ' + (performance.now() - sentAt).toFixed(4));
    next();
  });
  ping();
});
s.on('error', (e) => { console.error('lan-queue-probe client: ' + e.message); process.exit(1); });
`;

function inNamespace(ns: string, script: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

function firstLine(child: ChildProcess, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lan-queue-probe: ${what} did not start within 10 s`)), 10_000);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`lan-queue-probe: ${what} exited ${code}`));
    });
  });
}

function readBacklog(ns: string, dev: string): Promise<BacklogSample | undefined> {
  const at = Date.now();
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, 'tc', '-s', '-j', 'qdisc', 'show', 'dev', dev], (error, stdout) => {
      if (error) return resolve(undefined);
      try {
        const qdiscs = JSON.parse(stdout) as { root?: boolean; handle?: string; backlog?: number; drops?: number }[];
        const root = qdiscs.find((q) => q.root) ?? qdiscs[0];
        // bench/lan-priority-qdisc.ts's priority class has leaf 10:; the lab's tbf has none.
        const priority = qdiscs.find((q) => q.handle === '10:' && !q.root);
        resolve(
          root
            ? {
                at,
                backlogBytes: root.backlog ?? 0,
                drops: root.drops ?? 0,
                ...(priority ? { priorityBacklogBytes: priority.backlog ?? 0 } : {}),
              }
            : undefined,
        );
      } catch {
        resolve(undefined);
      }
    });
  });
}

interface Pinger {
  samples: RttSample[];
  stop(): void;
}

/**
 * A ping server on `server` (a lab host) and a client in namespace `clientNs` (undefined: the
 * controller's, i.e. this process's), running until stop(); resolves once the first echo came.
 */
async function startPinger(
  lab: Lab,
  server: string,
  clientNs: string | undefined,
  intervalMs: number,
): Promise<Pinger> {
  const host = lab.host(server);
  const serverProcess = inNamespace(host.ns, SERVER, [host.address]);
  let client: ChildProcess | undefined;
  try {
    const port = await firstLine(serverProcess, 'ping server');
    const args = [host.address, port, String(intervalMs), String(PING_DEADLINE_MS)];
    client =
      clientNs === undefined
        ? spawn(process.execPath, ['-e', CLIENT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
        : inNamespace(clientNs, CLIENT, args);
    const samples: RttSample[] = [];
    const started = client;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('lan-queue-probe: no echo within 10 s')), 10_000);
      createInterface({ input: started.stdout! }).on('line', (line) => {
        const [at, ms] = line.split(' ').map(Number);
        if (at === undefined || ms === undefined || Number.isNaN(at) || Number.isNaN(ms)) return;
        samples.push({ at, rttMs: ms });
        clearTimeout(timer);
        resolve();
      });
      started.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`lan-queue-probe: ping client exited ${code}`));
      });
    });
    return {
      samples,
      stop() {
        started.kill();
        serverProcess.kill();
      },
    };
  } catch (error) {
    client?.kill();
    serverProcess.kill();
    throw error;
  }
}

/**
 * Start the probe of `from`'s egress queue (`from` sends the bulk data to `to`): a ping from `to`
 * whose echoes leave `from` through that queue ("through"), a control ping from the controller
 * to `to` whose packets never enter it ("around": same machine, same CPU contention, no bulk
 * queue on its path — the controller link is not shaped and `to` sends little), and samples of
 * the queue's backlog every `backlogEveryMs`.
 */
export async function startQueueProbe(
  lab: Lab,
  options: { from: string; to: string; intervalMs: number; backlogEveryMs: number },
): Promise<QueueProbe> {
  const pingers: Pinger[] = [];
  try {
    pingers.push(await startPinger(lab, options.from, lab.host(options.to).ns, options.intervalMs));
    pingers.push(await startPinger(lab, options.to, undefined, options.intervalMs));
  } catch (error) {
    for (const pinger of pingers) pinger.stop();
    throw error;
  }
  const [through, around] = pingers as [Pinger, Pinger];
  const backlog: BacklogSample[] = [];
  const ns = lab.host(options.from).ns;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const sample = await readBacklog(ns, 'eth0');
      if (sample) backlog.push(sample);
      await new Promise((resolve) => setTimeout(resolve, options.backlogEveryMs));
    }
  })();
  return {
    async stop() {
      sampling = false;
      await sampler;
      for (const pinger of pingers) pinger.stop();
      return { through: through.samples, around: around.samples, backlog };
    },
  };
}
