/**
 * Two processes, each one end of N multifd channels (test/helpers/multifd-peer.ts), driven over
 * IPC: what the multifd integration test and bench/multifd-pipeline.ts share. Every wait for a
 * peer's message has a deadline, and a peer that reports `failed` is remembered (failures()) rather
 * than thrown at once: the tests look at how each side failed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { ChannelMarker, PartitionMode, RoundVerdict } from '../../shared/src/multifd/index.ts';

const peerScript = new URL('./multifd-peer.ts', import.meta.url).pathname;

interface PeerMessage {
  type: string;
  [key: string]: unknown;
}

/** A peer process and the messages it sent, waited for by type. */
export class Peer {
  readonly child: ChildProcess;
  readonly messages: PeerMessage[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = fork(peerScript, args, {
      env,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (message: PeerMessage) => {
      this.messages.push(message);
      for (const waiter of [...this.#waiters]) waiter();
    });
    this.child.on('exit', () => {
      for (const waiter of [...this.#waiters]) waiter();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(message: object): void {
    this.child.send(message);
  }

  /** The first message (after `from`) for which `match` holds; rejects after `timeoutMs` or if the process exits. */
  next(match: (message: PeerMessage) => boolean, timeoutMs: number, what: string, from = 0): Promise<PeerMessage> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.messages.slice(from).find(match);
        if (found) return finish(undefined, found);
        if (this.child.exitCode !== null || this.child.signalCode !== null)
          finish(new Error(`${what}: the peer exited`));
      };
      const finish = (error?: Error, message?: PeerMessage): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (error) reject(error);
        else resolve(message!);
      };
      const timer = setTimeout(() => finish(new Error(`${what}: nothing within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** The message of `type`, or the peer's `failed` report, whichever comes first. */
  expect(type: string, timeoutMs: number, from = 0): Promise<PeerMessage> {
    return this.next((m) => m.type === type || m.type === 'failed', timeoutMs, `waiting for ${type}`, from).then(
      (m) => {
        if (m.type === 'failed') throw Object.assign(new Error(String(m.message)), { code: m.code });
        return m;
      },
    );
  }

  /** Stop the channels and end the process (killed if it does not end within `timeoutMs`). */
  async stop(timeoutMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    if (this.child.connected) this.child.send({ type: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }
}

export interface PairOptions {
  memoryBytes: number;
  channels: number;
  mode?: PartitionMode;
  batchPages?: number;
  /** The source's memory: random pages, or the first half zero (a skewed round). @default 'random' */
  init?: 'random' | 'half-zero';
  /** `false`: the workers hash nothing (to measure what hashing costs; no digest). @default true */
  hashPages?: boolean;
  /** A throwaway PKI directory with `source` and `dest` (cli/lab/secure.ts): TLS on every channel. */
  pkiDir?: string;
}

export interface Pair {
  source: Peer;
  dest: Peer;
  ports: number[];
  token: string;
  /** Each process's thread count before its channel workers started. */
  threads: { source: number; dest: number };
  stop(): Promise<void>;
}

/** Start both processes; the destination listens (the source is not connected yet). */
export async function startPair(options: PairOptions, timeoutMs = 20_000): Promise<Pair> {
  const tls = options.pkiDir ? [options.pkiDir] : [];
  const env = options.hashPages === false ? { ...process.env, LIVEMIG_MULTIFD_PEER_HASH: '0' } : process.env;
  const dest = new Peer(['recv', String(options.memoryBytes), String(options.channels), ...tls], env);
  const source = new Peer(
    [
      'send',
      String(options.memoryBytes),
      options.mode ?? 'batches',
      String(options.batchPages ?? 256),
      options.init ?? 'random',
      ...tls,
    ],
    env,
  );
  const stop = async (): Promise<void> => {
    await Promise.all([source.stop(), dest.stop()]);
  };
  try {
    const listening = await dest.expect('listening', timeoutMs);
    const ready = await source.expect('ready', timeoutMs);
    const threads = { source: ready.threads as number, dest: listening.threads as number };
    return { source, dest, ports: listening.ports as number[], token: listening.token as string, threads, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Run `test` with a fresh pair, stopped afterwards whatever happens. */
export async function withPair<T>(options: PairOptions, test: (pair: Pair) => Promise<T>): Promise<T> {
  const pair = await startPair(options);
  try {
    return await test(pair);
  } finally {
    await pair.stop();
  }
}

/** Connect the source's channels to the destination's ports (or to `ports`: relays in front of them). */
export async function connectPair(pair: Pair, timeoutMs = 10_000, ports = pair.ports): Promise<void> {
  pair.source.send({ type: 'connect', host: '127.0.0.1', ports, token: pair.token });
  await pair.source.expect('attached', timeoutMs);
}

export interface RoundResult {
  /** Source's start of sendRound → destination's barrier complete (one machine's clock). */
  ms: number;
  verdict: Extract<RoundVerdict, { status: 'complete' }>;
  markers: ChannelMarker[];
}

/**
 * Send round `round` (all pages, or the first `pages`, handed to the sender in `parts` parts) and
 * wait for the destination's barrier.
 */
export async function transferRound(
  pair: Pair,
  round: number,
  timeoutMs = 60_000,
  pages?: number,
  parts = 1,
): Promise<RoundResult> {
  const fromDest = pair.dest.messages.length;
  const fromSource = pair.source.messages.length;
  pair.dest.send({ type: 'expect', round });
  pair.source.send({ type: 'round', round, parts, ...(pages === undefined ? {} : { pages }) });
  const [done, sent] = await Promise.all([
    pair.dest.expect('round', timeoutMs, fromDest),
    pair.source.expect('sent', timeoutMs, fromSource),
  ]);
  return {
    ms: (done.at as number) - (sent.start as number),
    verdict: done.verdict as RoundResult['verdict'],
    markers: sent.markers as ChannelMarker[],
  };
}

/** Both sides' digests: from the workers' page hashes, and of the memory itself. */
export async function digests(pair: Pair, timeoutMs = 30_000): Promise<{ source: PeerMessage; dest: PeerMessage }> {
  const [fromSource, fromDest] = [pair.source.messages.length, pair.dest.messages.length];
  pair.source.send({ type: 'digest' });
  pair.dest.send({ type: 'digest' });
  const [source, dest] = await Promise.all([
    pair.source.expect('digest', timeoutMs, fromSource),
    pair.dest.expect('digest', timeoutMs, fromDest),
  ]);
  return { source, dest };
}
