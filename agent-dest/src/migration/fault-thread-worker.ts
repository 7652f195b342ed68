/**
 * The post-copy fault thread itself (see fault-thread.ts for why and how it is wired): loaded by
 * fault-thread-boot.mjs, which listens and hands over the server. Here:
 *
 *   accept   a connection must finish the handshake (TLS: the migration's own source only),
 *            then say Attach fault with this migration's id and token, within the deadline —
 *            else it is refused with an Error frame naming the code and closed; at most
 *            MAX_IN_HANDSHAKE at once. A new fault channel (after a reconnect) replaces the old.
 *   faults   the vCPU's fault ring is read here (FaultRing); FaultHandler — the same one the main
 *            thread runs without a fault thread — turns faults into PageRequests.
 *   answers  Pages frames answering those requests (a requestId this thread issued, nothing
 *            else) go through a PageApplier straight into guest memory, each page only under this
 *            thread's claim (page-claims.ts); then hashed, marked present, the vCPU woken.
 *   reports  installed pages with their hashes and the measured latencies go to the main thread
 *            after each batch; it flushes before it checks the digest.
 *
 * A page the main thread installs (the bulk push) also resolves a fault: the vCPU's wake-up
 * word changes, and this thread finds the waited-for pages present.
 */
import type net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { timingSafeEqual } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { MigrationError, toMigrationError } from '@livemig/shared';
import { FramedPeerChannel, identityOf, PageApplier, type PeerChannel } from '@livemig/shared/channel';
import {
  FramedSocket,
  isKnownCapability,
  messageName,
  MsgType,
  negotiate,
  negotiatedEncodings,
  resolveFramedSocketOptions,
  type PageSink,
  type PagesMeta,
} from '@livemig/shared/protocol';
import {
  CLAIM_FAULT_THREAD,
  FaultRing,
  GuestMemory,
  hashPage,
  PageClaims,
  PresenceMap,
  type PageFault,
} from '@livemig/shared/vm';
import type { FaultThreadData, FromFaultThread, ToFaultThread } from './fault-thread.ts';
import { FaultHandler } from './page-faults.ts';

const data = workerData as FaultThreadData;
const main = parentPort!;
const memory = GuestMemory.attach(data.memory);
const presence = new PresenceMap(memory.pageCount, { buffer: data.presence });
const claims = new PageClaims(memory.pageCount, data.claims);
const ring = new FaultRing(data.control, true);
const isPresent = (n: number): boolean => presence.has(n);
const socketOptions = resolveFramedSocketOptions({ readBufferBytes: 64 * 1024, role: 'dest' });
const HASH_BYTES = 8;

function post(message: FromFaultThread, transfer: ArrayBuffer[] = []): void {
  main.postMessage(message, transfer);
}

/** What this thread did since its last report. */
const pending = { pages: [] as number[], hashes: [] as Uint8Array[], received: 0, raw: 0, latencies: [] as number[] };
let reportScheduled = false;

function report(): void {
  reportScheduled = false;
  if (pending.pages.length === 0 && pending.latencies.length === 0 && pending.received === 0) return;
  const pages = Uint32Array.from(pending.pages);
  const hashes = new Uint8Array(pages.length * HASH_BYTES);
  pending.hashes.forEach((hash, i) => hashes.set(hash, i * HASH_BYTES));
  const latencies = Float64Array.from(pending.latencies);
  post({ type: 'installed', pages, hashes, received: pending.received, raw: pending.raw, latencies }, [
    pages.buffer,
    hashes.buffer,
    latencies.buffer,
  ]);
  pending.pages = [];
  pending.hashes = [];
  pending.latencies = [];
  pending.received = 0;
  pending.raw = 0;
}

function reportSoon(): void {
  if (reportScheduled) return;
  reportScheduled = true;
  setImmediate(report);
}

/**
 * When each PageRequest in flight went out, and request → first answer byte per answer: the part
 * of a fault's latency spent on the wire and at the source (logged at the end: where time goes).
 */
const requestedAt = new Map<number, number>();
const answerMs: number[] = [];
/** Answer times kept, at most (a long post-copy keeps its first ones). */
const MAX_ANSWER_TIMES = 1 << 16;

function answered(requestId: number): void {
  const at = requestedAt.get(requestId);
  if (at === undefined) return;
  requestedAt.delete(requestId);
  if (answerMs.length < MAX_ANSWER_TIMES) answerMs.push(performance.now() - at);
}

function logAnswerTimes(): void {
  if (answerMs.length === 0) return;
  const sorted = [...answerMs].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  post({
    type: 'log',
    text: 'fault thread: request → answer times',
    fields: { event: 'fault-thread.answers', answers: sorted.length, p50: at(0.5), p99: at(0.99), max: at(1) },
  });
}

const listeners = new Set<(fault: PageFault) => void>();
const faults = new FaultHandler(
  {
    onFault: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    isPresent,
  },
  { info: (fields: Record<string, unknown>, text: string) => post({ type: 'log', text, fields }) },
  {
    onLatency: (ms, noticeMs) => {
      pending.latencies.push(ms, noticeMs);
      reportSoon();
    },
    onRequest: (id) => requestedAt.set(id, performance.now()),
  },
);

/** The fault channel in use, and the sink its answers go to. */
let current: { channel: PeerChannel; applier: PageApplier } | undefined;
let stopping = false;

/** Read the fault ring and resolve faults whose page arrived, until stopped. */
async function watchFaults(): Promise<void> {
  while (!stopping) {
    ring.drain((page, time) => {
      for (const listener of listeners) listener({ page, time });
    });
    for (const page of [...faults.waitingFor()]) if (presence.has(page)) faults.pageArrived(page);
    await ring.changed();
  }
}

/** An answer's page is in guest memory, under this thread's claim: hash it, then let the guest have it. */
function installed(page: number): void {
  pending.pages.push(page);
  pending.hashes.push(hashPage(memory.page(page)));
  if (presence.mark(page)) ring.pageArrived(page);
  faults.pageArrived(page);
}

/** The applier behind a check that every batch answers a request this thread sent. */
function answersOnly(applier: PageApplier): PageSink {
  return {
    maxRunPages: applier.maxRunPages,
    pagesBegin(meta: PagesMeta): void {
      if (meta.requestId === 0 || meta.requestId > faults.lastRequestId) {
        throw new MigrationError(
          'ERR_UNEXPECTED_MESSAGE',
          `Pages for request ${meta.requestId} on the fault channel: this side asked up to ${faults.lastRequestId}`,
        );
      }
      answered(meta.requestId);
      applier.pagesBegin(meta);
    },
    pageBytes: (index, offset, bytes) => applier.pageBytes(index, offset, bytes),
    pagesEnd(meta: PagesMeta, encoded?: Uint8Array): void {
      const before = applier.rawPagesReceived;
      applier.pagesEnd(meta, encoded);
      pending.received += meta.pages.length;
      pending.raw += applier.rawPagesReceived - before;
      report();
    },
  };
}

function tokenMatches(token: string | undefined): boolean {
  if (token === undefined || token.length !== data.token.length) return false;
  return timingSafeEqual(Buffer.from(token), Buffer.from(data.token));
}

/** Connections in their handshake at once, at most (one is expected: the source's fault channel). */
const MAX_IN_HANDSHAKE = 8;
let inHandshake = 0;

/** Handshake, authentication, Attach: the connection becomes the fault channel, or is refused. */
async function accept(raw: net.Socket): Promise<void> {
  if (inHandshake >= MAX_IN_HANDSHAKE) {
    post({
      type: 'refused',
      code: 'ERR_TOO_MANY_CONNECTIONS',
      message: `${MAX_IN_HANDSHAKE} already in their handshake`,
    });
    raw.destroy();
    return;
  }
  inHandshake += 1;
  try {
    await handshake(raw);
  } finally {
    inHandshake -= 1;
  }
}

async function handshake(raw: net.Socket): Promise<void> {
  const deadline = AbortSignal.timeout(data.handshakeTimeoutMs);
  const framed = FramedSocket.adoptResolved(raw, socketOptions);
  framed.setGeometry({ pageSize: memory.pageSize, pageCount: memory.pageCount });
  const applier = new PageApplier();
  framed.setSink(applier); // not attached to memory yet: Pages before Attach are refused
  const remote = `${raw.remoteAddress ?? '?'}:${raw.remotePort ?? '?'}`;
  const channel = new FramedPeerChannel(framed, { remoteAgentId: remote, rttMs: 0 });
  try {
    if (data.tls) {
      const peer = identityOf(framed.socket as TLSSocket);
      if (peer.role !== 'agent' || peer.name !== data.sourceName) {
        throw new MigrationError(
          'ERR_FORBIDDEN',
          `migration ${data.migrationId} belongs to "${data.sourceName}", not "${peer.name}" (${peer.role})`,
        );
      }
      channel.authenticated(peer);
    }
    const hello = await channel.expect(MsgType.Hello, deadline);
    const welcome = negotiate({ agentId: data.agentId, capabilities: data.capabilities }, hello);
    channel.send(welcome);
    const capabilities = new Set(welcome.capabilities.filter(isKnownCapability));
    channel.identify(hello.agentId, 0, capabilities);
    const attach = await channel.expect(MsgType.Attach, deadline);
    if (attach.channel !== 'fault' || attach.migrationId !== data.migrationId || !tokenMatches(attach.token)) {
      throw new MigrationError(
        'ERR_FORBIDDEN',
        'this port takes only the fault channel of its migration, with its token',
      );
    }
    if (!capabilities.has('fault-channel')) {
      throw new MigrationError('ERR_UNSUPPORTED', 'Attach fault, but fault-channel was not negotiated');
    }
    applier.encodings = negotiatedEncodings(capabilities);
    applier.attach(memory);
    applier.wanted = (page) => claims.claim(page, CLAIM_FAULT_THREAD, isPresent);
    applier.onPage = installed;
    framed.setSink(answersOnly(applier));
    use(channel, applier);
  } catch (error) {
    const failure = toMigrationError(error, 'ERR_HANDSHAKE');
    post({ type: 'refused', code: failure.code, message: `${remote}: ${failure.message}` });
    channel.abort(failure);
  }
}

/** `channel` is the fault channel from now on: re-ask for every page in flight there; serve it until it fails. */
function use(channel: PeerChannel, applier: PageApplier): void {
  if (current) {
    current.channel.abort(new MigrationError('ERR_CONNECTION', 'replaced by a new fault channel'));
    lost();
  }
  current = { channel, applier };
  post({ type: 'channel', event: 'attached' });
  faults.attachChannel(channel);
  void (async () => {
    try {
      for (;;) {
        const message = await channel.next();
        throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `${messageName(message.type)} on the fault channel`);
      }
    } catch (error) {
      const failure = toMigrationError(error, 'ERR_CONNECTION');
      channel.abort(failure);
      if (current?.channel !== channel) return;
      lost();
      if (!stopping) post({ type: 'channel', event: 'lost', code: failure.code, message: failure.message });
    }
  })();
}

/** The fault channel is gone: requests wait for the next; pages half-received on it are free to install again. */
function lost(): void {
  current = undefined;
  faults.detachChannel();
  claims.release(CLAIM_FAULT_THREAD, isPresent);
}

async function stop(): Promise<void> {
  stopping = true;
  report();
  logAnswerTimes();
  const channel = current?.channel;
  current = undefined;
  await Promise.race([channel?.close(), new Promise((resolve) => setTimeout(resolve, 1000))]);
  process.exit(0);
}

/** Called by fault-thread-boot.mjs with the listening server; returns where to send each connection. */
export function serve(server: net.Server): (socket: net.Socket) => void {
  main.on('message', (message: ToFaultThread) => {
    if (message.type === 'flush') {
      report();
      post({ type: 'flushed', id: message.id });
    } else if (message.type === 'stop') {
      server.close();
      void stop();
    }
  });
  faults.start();
  void watchFaults();
  return (socket) => void accept(socket);
}
