/**
 * The source's post-copy fault worker itself (see fault-worker.ts for why and how it is wired):
 * loaded by fault-worker-boot.mjs. Here:
 *
 *   connect  on the main thread's word: connect to the destination's fault thread (the port
 *            SetupDone named), TLS with this agent's certificate when it is secure (the destination
 *            must prove the name the migration expects, as on every data connection), Hello →
 *            Welcome, then Attach fault with the token SetupDone gave. A new channel (after a
 *            reconnect) replaces the old.
 *   answer   each PageRequest at once, from paused guest memory: every page not sent yet (claimed
 *            first, fault-answers.ts, so the push skips it), and pages already sent when the
 *            destination negotiated `fault-thread` (it installs each page once); counted in the
 *            shared counters. Requests on a channel wait until the main thread says `serve` for it
 *            (the switchover armed the pusher, or a reconnect resynced it): meanwhile the channel's
 *            bounded inbox fills and TCP pushes back on the peer.
 *   refuse   anything else from the destination — another message type, a page outside the VM,
 *            more than MAX_REQUEST_PAGES in a request, bytes that are no frame — ends the channel
 *            with an Error frame naming the code; the main thread hears `lost` with that code and
 *            recovers (as when the channel breaks).
 *
 * What it wrote to the wire is in the shared `wire` counter, read by the main thread for the report.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MigrationError, silentLogger, toMigrationError } from '@livemig/shared';
import { connectPeer, msg, type PeerChannel } from '@livemig/shared/channel';
import { messageName, MsgType, type PageRequestMsg } from '@livemig/shared/protocol';
import { GuestMemory } from '@livemig/shared/vm';
import type { FaultWorkerData, FromFaultWorker, ToFaultWorker } from './fault-worker.ts';
import { Counter, FaultAnswers, SENT_BY_FAULT_WORKER } from './sections/ram/fault-answers.ts';
import { encodeBatch } from './sections/ram/page-batch.ts';
import { MigrationStats } from './stats.ts';

const data = workerData as FaultWorkerData;
const main = parentPort!;
const memory = GuestMemory.attach(data.memory);
const wire = new BigInt64Array(data.wire);

/** Pages one PageRequest may ask for (a destination asks for at most 16 at a time, 64 in flight). */
const MAX_REQUEST_PAGES = 1024;
/** From connect to Welcome on the fault channel (TLS included). */
const CONNECT_TIMEOUT_MS = 10_000;

function post(message: FromFaultWorker): void {
  main.postMessage(message);
}

function log(level: 'info' | 'warn', text: string, fields: Record<string, unknown>): void {
  post({ type: 'log', level, text, fields });
}

/** The fault channel in use, whether its requests may be answered yet, and who waits for that. */
interface Channel {
  channel: PeerChannel;
  serving: boolean;
  wake: (() => void) | undefined;
}
let current: Channel | undefined;
/** Wire bytes of this worker's fault channels already replaced or closed. */
let closedBytes = 0;
/** What the main thread armed: the shared page state and the round its pages are sent as. */
let armed: { answers: FaultAnswers; round: number } | undefined;
/** Page bytes and kinds as encodeBatch counts them (folded into the shared counters per answer). */
const tally = new MigrationStats();

/** Request arrived → answer handed to the socket, ms (logged at the end: where the time goes). */
const answerMs: number[] = [];
const MAX_ANSWER_TIMES = 1 << 16;

function countWire(): void {
  Atomics.store(wire, 0, BigInt(closedBytes + (current?.channel.bytesSent ?? 0)));
}

/** Let go of the channel in use (its bytes kept in the count). */
function drop(c: Channel): void {
  if (current !== c) return;
  closedBytes += c.channel.bytesSent;
  current = undefined;
  countWire();
}

async function connect(message: Extract<ToFaultWorker, { type: 'connect' }>): Promise<void> {
  try {
    const channel = await connectPeer({
      host: data.host,
      port: message.port,
      agentId: data.agentId,
      logger: silentLogger(),
      signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
      ...(data.capabilities ? { capabilities: data.capabilities } : {}),
      ...(data.tls ? { tls: data.tls } : {}),
    });
    channel.send(msg.attach(message.migrationId, 'fault', message.token));
    if (current) {
      current.channel.abort(new MigrationError('ERR_CONNECTION', 'replaced by a new fault channel'));
      drop(current);
    }
    const c: Channel = { channel, serving: false, wake: undefined };
    current = c;
    countWire();
    post({ type: 'connected', id: message.id });
    void serve(c);
  } catch (error) {
    const failure = toMigrationError(error, 'ERR_CONNECTION');
    const cause = failure.cause as NodeJS.ErrnoException | undefined;
    const refused = cause?.code === 'ECONNREFUSED' || /ECONNREFUSED/.test(failure.message);
    post({ type: 'connect-failed', id: message.id, code: failure.code, message: failure.message, refused });
  }
}

/** Read `c`'s requests and answer each, until the channel fails or is replaced. */
async function serve(c: Channel): Promise<void> {
  try {
    for (;;) {
      const message = await c.channel.next();
      const arrived = performance.now();
      if (message.type !== MsgType.PageRequest) {
        throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `${messageName(message.type)} on the fault channel`);
      }
      checkRequest(message);
      if (!c.serving) {
        const armedNow = new Promise<void>((resolve) => (c.wake = resolve));
        // A channel that fails while it waits is lost now, not when it is next written to.
        await Promise.race([armedNow, c.channel.whenFailed().then((failure) => Promise.reject(failure))]);
      }
      if (current !== c) return;
      const ok = answer(c.channel, message);
      if (answerMs.length < MAX_ANSWER_TIMES) answerMs.push(performance.now() - arrived);
      if (!ok) await c.channel.drained();
    }
  } catch (error) {
    const failure = toMigrationError(error, 'ERR_CONNECTION');
    // Tells the destination why when it still listens (its own hostile input refused with a code).
    c.channel.abort(failure);
    if (current !== c) return;
    drop(c);
    post({ type: 'lost', code: failure.code, message: failure.message });
  }
}

/** Hostile input: a request that could not come from a destination of this VM is refused before anything is read. */
function checkRequest(request: PageRequestMsg): void {
  if (request.pages.length > MAX_REQUEST_PAGES) {
    throw new MigrationError(
      'ERR_BAD_METADATA',
      `PageRequest for ${request.pages.length} pages: at most ${MAX_REQUEST_PAGES} at once`,
    );
  }
  for (const page of request.pages) {
    if (page >= memory.pageCount) {
      throw new MigrationError('ERR_PAGE_OUT_OF_RANGE', `PageRequest for page ${page} of ${memory.pageCount}`);
    }
  }
}

/** Answer one request (armed: serve() waits for that); false when the channel's buffer is full. */
function answer(channel: PeerChannel, request: PageRequestMsg): boolean {
  const { answers, round } = armed!;
  answers.add(Counter.Requests, 1);
  const answerAgain = channel.capabilities.has('fault-thread');
  const fresh: number[] = [];
  const again: number[] = [];
  for (const page of request.pages) {
    if (answers.absent.has(page) && answers.claim(page, SENT_BY_FAULT_WORKER)) fresh.push(page);
    else if (answerAgain) again.push(page);
  }
  const last = request.pages[request.pages.length - 1];
  if (last !== undefined) answers.asked(last);
  if (fresh.length === 0 && again.length === 0) return true;
  const pages = Uint32Array.from([...fresh, ...again]);
  const before = { raw: tally.rawPages, zero: tally.zeroPages, payload: tally.pagePayloadBytes };
  const { kinds, views } = encodeBatch(pages, {
    memory,
    stats: tally,
    zeroPages: channel.capabilities.has('zero-pages'),
    onPageSent: () => {}, // the main thread's ledger records these pages as its push reaches them
  });
  const ok = channel.sendPages({ round, requestId: request.id, pages, kinds }, views);
  answers.add(Counter.Fetched, fresh.length);
  answers.add(Counter.Again, again.length);
  answers.add(Counter.RawPages, tally.rawPages - before.raw);
  answers.add(Counter.ZeroPages, tally.zeroPages - before.zero);
  answers.add(Counter.PayloadBytes, tally.pagePayloadBytes - before.payload);
  countWire();
  return ok;
}

function arm(message: Extract<ToFaultWorker, { type: 'serve' }>): void {
  if (armed?.answers.buffer !== message.answers) {
    armed = { answers: new FaultAnswers(memory.pageCount, message.answers), round: message.round };
  }
  armed.round = message.round;
  const c = current;
  if (!c || c.serving) return;
  c.serving = true;
  c.wake?.();
}

async function close(message: Extract<ToFaultWorker, { type: 'close' }>): Promise<void> {
  const c = current;
  if (c) {
    drop(c);
    const { error } = message;
    if (error) c.channel.abort(new MigrationError(error.code, error.message));
    else await c.channel.close();
    c.wake?.(); // its reader sees it is no longer current and ends
  }
  post({ type: 'closed', id: message.id });
}

function logAnswerTimes(): void {
  if (answerMs.length === 0) return;
  const sorted = [...answerMs].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  log('info', 'fault worker: request read → answer queued, ms', {
    event: 'fault-worker.answers',
    answers: sorted.length,
    p50: at(0.5),
    p99: at(0.99),
    max: at(1),
  });
}

async function stop(): Promise<void> {
  logAnswerTimes();
  const c = current;
  if (c) {
    drop(c);
    await Promise.race([c.channel.close(), new Promise((resolve) => setTimeout(resolve, 1000))]);
  }
  process.exit(0);
}

main.on('message', (message: ToFaultWorker) => {
  switch (message.type) {
    case 'connect':
      void connect(message);
      return;
    case 'serve':
      arm(message);
      return;
    case 'close':
      void close(message);
      return;
    case 'stop':
      void stop();
      return;
    default:
  }
});
post({ type: 'ready' });
