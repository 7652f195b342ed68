// The source end of one multifd channel (issue 18; the main-thread side is multifd-sender.ts).
// Plain JavaScript on purpose: no TypeScript loader, so it connects within milliseconds.
//
// It owns one connection to its destination worker's port (TLS 1.3 with the agent's credentials
// when given, the destination's certificate checked for its name), says Attach { channel:
// 'multifd', index, migrationId, token } and waits for the destination's Attach back. Then, for
// each round the main thread hands it (its share of the round's pages, partition.ts), it reads the
// pages straight from the guest memory's SharedArrayBuffers and writes them in Pages frames of up
// to batchPages: header and metadata in one buffer, then views of guest memory — the page bytes are
// never copied in JavaScript (socket.cork, write each run of consecutive pages as one view, uncork).
// Each page is hashed as it is sent (xxhash64: the memory digest's page hash) into the shared
// page-hash table the source's digest is combined from; zero pages go as PageKind Zero without
// bytes. The round ends with the channel's marker (RoundEnd: pages, bytes, page-number hash,
// content hash, stable), and the main thread is told { type: 'sent', marker }.
//
// Backpressure: at most the socket's high-water mark is queued; a write that stays blocked longer
// than writeTimeoutMs is this channel's error (ERR_TIMEOUT). Any error (the connection failing or
// closing, an Error frame from the destination, a deadline) goes to the main thread as { type:
// 'failed', code, message } and the worker exits.
//
// workerData: { host, port, tls: { ca, cert, key, expectName } | null, token, migrationId, index,
//   (port and token null: wait for { type: 'connect', port, token } — the worker was started early)
//   memory: GuestMemoryLayout, hashes: SharedArrayBuffer (pageCount × 8), batchPages,
//   connectTimeoutMs, writeTimeoutMs, highWaterMark, thread: SharedArrayBuffer | undefined }
// in:  { type: 'pages', round, pages: Uint32Array } (more of the round's share: any number of these)
//    | { type: 'end', round, stable } (the round's share is all given: write the marker) | { type: 'stop' }
// out: { type: 'attached' } | { type: 'progress', pages, bytes, wire } (after each 'pages' part is
//      written: its pages, page payload bytes and wire bytes — the sender's window and figures)
//    | { type: 'sent', marker, wire } | { type: 'failed', code, message } | { type: 'stopped' }
import net from 'node:net';
import tls from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';
import { createXXHash64 } from 'hash-wasm';
import { createPageHasher } from '../vm/digest-pages.mjs';
import { announceThread, sealThread } from '../vm/thread-cpu.mjs';
import {
  FrameParser,
  KIND_RAW,
  KIND_ZERO,
  PAGE_BYTES,
  TYPE,
  coded,
  errorFrame,
  frameHead,
  keepHash,
} from './channel-wire.mjs';

const HASH_BYTES = 8;
const data = workerData;
/** False only to measure what hashing costs (bench/multifd-pipeline.ts): no digest is then kept. */
const hashPages = data.hashPages !== false;
announceThread(data.thread);
const main = parentPort;
const { memory } = data;
const regionPages = memory.regionBytes / PAGE_BYTES;
const regions = memory.regions.map((r) => Buffer.from(r));
const words = memory.regions.map((r) => new Uint32Array(r));
const hashes = new Uint8Array(data.hashes);
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES);

// The memory digest's page hash, a batch of pages per call (digest-pages.mjs).
const pageHasher = createPageHasher();
const pagesHasher = await createXXHash64();
const contentHasher = await createXXHash64();
const ZERO_HASH = pageHasher.hashPage(ZERO_PAGE);

let socket;
let finished = false;
let attached = false;
/** Rejects a pending wait (drain, attach) when the channel fails. */
let failWaits = () => {};

function post(message) {
  main.postMessage(message);
}

function fail(error, tellPeer = false) {
  if (finished) return;
  finished = true;
  const code = typeof error?.code === 'string' && error.code.startsWith('ERR_') ? error.code : 'ERR_CONNECTION';
  const message = String(error?.message ?? error);
  post({ type: 'failed', code, message: `channel ${data.index}: ${message}` });
  failWaits(coded(code, message));
  if (socket && tellPeer && !socket.destroyed) {
    socket.end(errorFrame(code, message));
    setTimeout(() => socket.destroy(), 200).unref();
  } else socket?.destroy();
  exit();
}

function exit() {
  sealThread(data.thread);
  setTimeout(() => process.exit(0), 50).unref();
}

/** Resolves on `event` of the socket, rejects when the channel fails or after `ms`. */
function waitFor(event, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(coded('ERR_TIMEOUT', `${what} took longer than ${ms} ms`)), ms);
    const done = (error) => {
      clearTimeout(timer);
      socket.off(event, onEvent);
      failWaits = () => {};
      if (error) reject(error);
      else resolve();
    };
    const onEvent = () => done();
    socket.once(event, onEvent);
    failWaits = done;
  });
}

// ---- connecting ---------------------------------------------------------------------------------
const parser = new FrameParser({
  frame(type, meta, payloadLen) {
    if (payloadLen !== 0) throw coded('ERR_BAD_PAYLOAD', 'a payload from the destination');
    if (type === TYPE.Error) {
      throw coded(
        'ERR_PEER_ABORTED',
        `the destination ended channel ${data.index}: ${String(meta.code)} ${String(meta.message).slice(0, 200)}`,
      );
    }
    if (type !== TYPE.Attach || attached)
      throw coded('ERR_UNEXPECTED_MESSAGE', `frame type ${type} from the destination`);
    if (meta.channel !== 'multifd' || meta.index !== data.index || meta.migrationId !== data.migrationId) {
      throw coded('ERR_HANDSHAKE', 'the destination accepted another channel');
    }
    return undefined;
  },
  end() {
    attached = true;
    socket.emit('attached');
  },
});

// Started before the destination named its ports (the engine starts the workers beside Setup, so
// that their start-up is off the critical path): wait to be told where to connect.
if (data.port === undefined || data.port === null) {
  const address = await new Promise((resolve) => {
    const onMessage = (message) => {
      if (message?.type !== 'connect' && message?.type !== 'stop') return;
      main.off('message', onMessage);
      resolve(message.type === 'connect' ? message : null);
    };
    main.on('message', onMessage);
  });
  if (address === null) {
    finished = true;
    post({ type: 'stopped' });
    exit();
    await new Promise(() => {}); // the thread ends (exit()); nothing below runs
  }
  data.port = address.port;
  data.token = address.token;
}

const options = { host: data.host, port: data.port, highWaterMark: data.highWaterMark, noDelay: true };
socket = data.tls
  ? tls.connect({
      ...options,
      ca: data.tls.ca,
      cert: data.tls.cert,
      key: data.tls.key,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      checkServerIdentity: (_host, peer) => tls.checkServerIdentity(data.tls.expectName, peer),
    })
  : net.connect(options);
socket.on('data', (chunk) => {
  try {
    parser.feed(chunk);
  } catch (error) {
    fail(error, error.code !== 'ERR_PEER_ABORTED');
  }
});
socket.on('error', (error) => fail(coded('ERR_CONNECTION', error.message)));
socket.on('close', () => {
  if (!stopping) fail(coded('ERR_CONNECTION', 'the destination closed the channel'));
});

let stopping = false;
const jobs = [];
let sending = false;

try {
  await waitFor(data.tls ? 'secureConnect' : 'connect', data.connectTimeoutMs, 'connecting');
  socket.write(
    frameHead(
      TYPE.Attach,
      { migrationId: data.migrationId, channel: 'multifd', index: data.index, token: data.token },
      0,
    ),
  );
  await waitFor('attached', data.connectTimeoutMs, 'the destination accepting the channel');
  post({ type: 'attached' });
} catch (error) {
  fail(error);
}

main.on('message', (message) => {
  if (finished) return;
  if (message?.type === 'stop') {
    stopping = true;
    finished = true;
    post({ type: 'stopped' });
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
    exit();
  } else if (message?.type === 'pages' || message?.type === 'end') {
    jobs.push(message);
    if (!sending) void work();
  }
});

// ---- sending ------------------------------------------------------------------------------------
async function work() {
  sending = true;
  try {
    while (jobs.length > 0 && !finished) {
      const job = jobs.shift();
      if (job.type === 'pages') await sendPages(job.round, job.pages);
      else endRound(job.round, job.stable);
    }
  } catch (error) {
    fail(error);
  }
  sending = false;
}

/** The round being sent: what its marker will say (the share may come in several parts). */
let current = { round: -1, pages: 0, bytes: 0 };

function openRound(round) {
  if (current.round === round) return;
  if (round <= current.round) throw coded('ERR_INTERNAL', `round ${round} after round ${current.round}`);
  current = { round, pages: 0, bytes: 0 };
  pagesHasher.init();
  contentHasher.init();
}

/** Page n's bytes in guest memory (a view). */
function pageView(page) {
  const offset = (page % regionPages) * PAGE_BYTES;
  return regions[Math.floor(page / regionPages)].subarray(offset, offset + PAGE_BYTES);
}

function isZero(region, w, offset) {
  const w0 = offset >>> 2;
  if ((w[w0] | w[w0 + 1] | w[w0 + 2] | w[w0 + 3] | w[w0 + 4] | w[w0 + 5] | w[w0 + 6] | w[w0 + 7]) !== 0) return false;
  return ZERO_PAGE.compare(region, offset, offset + PAGE_BYTES) === 0;
}

/** Bytes this channel put on the wire (frame heads and payloads). */
let wire = 0;

async function sendPages(round, pages) {
  openRound(round);
  const wireBefore = wire;
  let bytes = 0;
  const batchPages = data.batchPages;
  const content = new Uint8Array(batchPages * HASH_BYTES);
  /** The batch's raw pages, by their index in the batch (hashed together once the batch is classified). */
  const raw = new Int32Array(batchPages);
  for (let from = 0; from < pages.length; from += batchPages) {
    if (finished) return;
    const batch = pages.subarray(from, Math.min(pages.length, from + batchPages));
    const count = batch.length;
    const kinds = Buffer.allocUnsafe(count);
    const views = [];
    let runRegion = -1;
    let runStart = 0;
    let runEnd = 0;
    let raws = 0;
    for (let i = 0; i < count; i++) {
      const page = batch[i];
      const r = Math.floor(page / regionPages);
      const region = regions[r];
      const offset = (page % regionPages) * PAGE_BYTES;
      const zero = isZero(region, words[r], offset);
      if (zero || !hashPages) {
        hashes.set(ZERO_HASH, page * HASH_BYTES);
        content.set(ZERO_HASH, i * HASH_BYTES);
      } else raw[raws++] = i;
      if (zero) kinds[i] = KIND_ZERO;
      else {
        kinds[i] = KIND_RAW;
        // Consecutive raw pages of one region go as one view (one iovec).
        if (r === runRegion && offset === runEnd) runEnd += PAGE_BYTES;
        else {
          if (runRegion !== -1) views.push(regions[runRegion].subarray(runStart, runEnd));
          runRegion = r;
          runStart = offset;
          runEnd = offset + PAGE_BYTES;
        }
        bytes += PAGE_BYTES;
      }
    }
    // The raw pages' hashes, in one call: into the page-hash table (the digest) and the content hash.
    pageHasher.hashPages(
      raws,
      (k) => pageView(batch[raw[k]]),
      (k, out, at) => keepHash(out, at, hashes, batch[raw[k]], content, raw[k]),
    );
    if (runRegion !== -1) views.push(regions[runRegion].subarray(runStart, runEnd));
    // The page numbers as u32 LE bytes (copied: `pages` may be a view at any offset).
    const pageBytes = Buffer.from(batch.slice().buffer);
    pagesHasher.update(pageBytes);
    contentHasher.update(content.subarray(0, count * HASH_BYTES));
    let payload = 0;
    for (const view of views) payload += view.length;
    const head = frameHead(TYPE.Pages, { round, requestId: 0, pages: pageBytes, kinds }, payload);
    wire += head.length + payload;
    socket.cork();
    socket.write(head);
    let ok = true;
    for (const view of views) ok = socket.write(view);
    socket.uncork();
    if (!ok) await waitFor('drain', data.writeTimeoutMs, 'a blocked write');
  }
  current.pages += pages.length;
  current.bytes += bytes;
  post({ type: 'progress', pages: pages.length, bytes, wire: wire - wireBefore });
}

function endRound(round, stable) {
  openRound(round);
  const marker = {
    round,
    pages: current.pages,
    bytes: current.bytes,
    pagesHash: pagesHasher.digest('hex'),
    contentHash: contentHasher.digest('hex'),
    stable: stable === true,
  };
  const head = frameHead(
    TYPE.RoundEnd,
    {
      ...marker,
      pagesHash: Buffer.from(marker.pagesHash, 'hex'),
      contentHash: Buffer.from(marker.contentHash, 'hex'),
    },
    0,
  );
  wire += head.length;
  socket.write(head);
  post({ type: 'sent', marker, wire: head.length });
}
