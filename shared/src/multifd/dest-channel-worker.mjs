// The destination end of one multifd channel (issue 18; the main-thread side is
// multifd-receiver.ts). Plain JavaScript on purpose: no TypeScript loader, so it listens within
// milliseconds of starting and the port can go into SetupDone at once.
//
// Node cannot hand a socket to a worker, so this worker listens itself (as the post-copy fault
// thread does): an ephemeral port on the data address, TLS 1.3 with the agent's credentials when
// given (a client certificate of the fleet CA required, of role agent, naming the migration's source). The first
// connection that says Attach { channel: 'multifd', index, migrationId, token } with the one-time
// token becomes the channel and the listener closes; a connection that does not (no Attach within
// the handshake deadline, a wrong token, garbage) is refused with an Error frame and closed, and
// the worker goes on waiting, up to MAX_REFUSED refusals and the attach deadline.
//
// Then: Pages frames are read straight into guest memory (read-in-place.mjs: the kernel, or the
// TLS handle, writes each run of consecutive pages at its place in the SharedArrayBuffer; no copy
// in JavaScript), each page is hashed (xxhash64, the memory digest's page hash) into the shared
// page-hash table (page n at n × 8: what the destination's digest is combined from) and its bit set
// in the shared received map; the channel's tally (pages, bytes, page-number hash, content hash)
// runs along. At the channel's RoundEnd the marker and the tally go to the main thread, which keeps
// the round barrier (round-barrier.ts).
//
// Hostile input: every header is checked before its metadata is buffered, metadata is bounded, page
// numbers must be in the VM, kinds known, the payload exactly the raw pages, rounds may only grow, a
// frame must finish within frameTimeoutMs of its first byte. Any violation, or the connection ending
// or failing, is this channel's error: an Error frame to the peer (when it is the peer's fault), a
// `failed` message { code, message } to the main thread, and the worker exits (nothing left behind).
//
// workerData: { host, port (0: ephemeral), tls: { ca, cert, key } | null, sourceName | null, token,
//   migrationId, index, memory: GuestMemoryLayout, hashes: SharedArrayBuffer (pageCount × 8),
//   received: SharedArrayBuffer (1 bit a page, Int32 words), attachTimeoutMs, frameTimeoutMs,
//   thread: SharedArrayBuffer | undefined (thread-cpu.mjs) }
// out: { type: 'listening', port } | { type: 'listen-failed', message } | { type: 'refused', code, message }
//    | { type: 'attached' } | { type: 'round', marker, tally } | { type: 'failed', code, message }
//    | { type: 'stopped' }
// in:  { type: 'stop' }
import net from 'node:net';
import tls from 'node:tls';
import { timingSafeEqual } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { announceThread, sealThread } from '../vm/thread-cpu.mjs';
import { readInPlace } from './read-in-place.mjs';

// The wire and the hashers load after the port listens (load(), below): their modules (msgpack-lite,
// hash-wasm) take a fresh isolate 100-300 ms, and SetupDone waits for the port. A connection that
// comes meanwhile waits, unread, until they are there.
let FrameParser, KIND_RAW, KIND_ZERO, TYPE, bytesField, coded, errorFrame, frameHead, keepHash, stringField, uintField;
const PAGE_BYTES = 4096;

const MAX_REFUSED = 8;
/** Connections in their handshake at once, at most (one is expected: the source's), as the fault thread bounds its own. */
const MAX_IN_HANDSHAKE = 8;
let inHandshake = 0;
const MAX_BATCH_PAGES = 1024;
const HASH_BYTES = 8;

const data = workerData;
/** False only to measure what hashing costs (bench/multifd-pipeline.ts): no digest is then kept. */
const hashPages = data.hashPages !== false;
announceThread(data.thread);
const main = parentPort;
const { memory } = data;
const pageCount = memory.bytes / PAGE_BYTES;
const regionPages = memory.regionBytes / PAGE_BYTES;
const regions = memory.regions.map((r) => new Uint8Array(r));
const hashes = new Uint8Array(data.hashes);
const received = new Int32Array(data.received);

// The memory digest's page hash, a batch of pages per call (digest-pages.mjs), and the tally's hashers.
let pageHasher, pagesHasher, contentHasher, ZERO_HASH;

async function load() {
  const [wire, { createXXHash64 }, { createPageHasher }] = await Promise.all([
    import('./channel-wire.mjs'),
    import('hash-wasm'),
    import('../vm/digest-pages.mjs'),
  ]);
  ({ FrameParser, KIND_RAW, KIND_ZERO, TYPE, bytesField, coded, errorFrame, frameHead, keepHash } = wire);
  ({ stringField, uintField } = wire);
  if (wire.PAGE_BYTES !== PAGE_BYTES) throw new Error(`a page is ${wire.PAGE_BYTES} bytes on the wire`);
  pageHasher = createPageHasher();
  [pagesHasher, contentHasher] = await Promise.all([createXXHash64(), createXXHash64()]);
  ZERO_HASH = pageHasher.hashPage(new Uint8Array(PAGE_BYTES));
}

/** A batch's raw pages, by index in the batch (hashed together once the batch is in memory). */
const raw = new Int32Array(MAX_BATCH_PAGES);

let channel; // the attached socket
let finished = false;
let refused = 0;
const discard = Buffer.allocUnsafe(64 * 1024);

function post(message) {
  main.postMessage(message);
}

/** The channel's first error: tell the peer (if it is its fault) and the main thread, then exit. */
function fail(error, tellPeer) {
  if (finished) return;
  finished = true;
  const code = typeof error?.code === 'string' && error.code.startsWith('ERR_') ? error.code : 'ERR_CONNECTION';
  const message = String(error?.message ?? error);
  post({ type: 'failed', code, message: `channel ${data.index}: ${message}` });
  if (channel && tellPeer && !channel.destroyed) {
    channel.end(errorFrame(code, message));
    setTimeout(() => channel.destroy(), 200).unref();
  } else channel?.destroy();
  server.close();
  exit();
}

function exit() {
  clearInterval(watchdog);
  sealThread(data.thread);
  // Let the Error frame and the messages out, then end the thread.
  setTimeout(() => process.exit(0), 50).unref();
  setImmediate(() => channel?.destroy());
}

// ---- the round being received ----------------------------------------------------------------
let round = -1; // the round the current share belongs to (−1: none open)
let lastRound = -1;
let tally = { pages: 0, bytes: 0 };
let frameStarted = 0;

function openRound(r, what) {
  uintField(r, `${what} round`);
  if (round === -1) {
    if (r <= lastRound) throw coded('ERR_UNEXPECTED_MESSAGE', `${what} of round ${r} after round ${lastRound} ended`);
    round = r;
    tally = { pages: 0, bytes: 0 };
    pagesHasher.init();
    contentHasher.init();
  } else if (r !== round) throw coded('ERR_UNEXPECTED_MESSAGE', `${what} of round ${r} inside round ${round}`);
}

/** Pages: check the batch, then hand the parser the payload's targets, run by run, in guest memory. */
function pagesFrame(meta, payloadLen) {
  if (uintField(meta.requestId, 'requestId') !== 0)
    throw coded('ERR_UNEXPECTED_MESSAGE', 'a page request answer on a multifd channel');
  openRound(meta.round, 'Pages');
  const pageBytes = bytesField(meta.pages, 'pages');
  const kinds = bytesField(meta.kinds, 'kinds');
  const count = kinds.length;
  if (pageBytes.length !== count * 4 || count === 0 || count > MAX_BATCH_PAGES) {
    throw coded(
      'ERR_BAD_METADATA',
      `Pages: ${pageBytes.length} bytes of page numbers for ${count} kinds (1..${MAX_BATCH_PAGES} pages)`,
    );
  }
  const pages = new Uint32Array(count);
  let raw = 0;
  for (let i = 0; i < count; i++) {
    const page =
      pageBytes[i * 4] |
      (pageBytes[i * 4 + 1] << 8) |
      (pageBytes[i * 4 + 2] << 16) |
      (pageBytes[i * 4 + 3] * 0x1000000);
    if (page >= pageCount) throw coded('ERR_PAGE_OUT_OF_RANGE', `page ${page} is outside the VM (0..${pageCount - 1})`);
    pages[i] = page;
    if (kinds[i] === KIND_RAW) raw++;
    else if (kinds[i] !== KIND_ZERO)
      throw coded('ERR_BAD_ENCODING', `page kind ${kinds[i]} on a multifd channel (raw or zero only)`);
  }
  if (payloadLen !== raw * PAGE_BYTES) {
    throw coded(
      'ERR_BAD_PAYLOAD',
      `Pages: ${raw} raw pages need ${raw * PAGE_BYTES} bytes, the payload has ${payloadLen}`,
    );
  }
  pagesHasher.update(pageBytes);
  meta.pageList = pages; // for pagesDone, once the payload is in
  return raw === 0 ? undefined : new PageRuns(pages, kinds);
}

/**
 * Where a Pages payload goes: the raw pages in batch order, as runs of consecutive raw entries whose
 * pages are consecutive in one region — each run one target, so one read can fill a whole run.
 */
class PageRuns {
  constructor(pages, kinds) {
    this.pages = pages;
    this.kinds = kinds;
    this.i = 0; // next raw page not yet fully received
    this.filled = 0; // bytes of page i received
    this.stop = 0; // the current run is entries [.., stop)
    this.stopByte = 0; // and ends at this byte of its region
    this.region = undefined;
  }

  target() {
    const { pages, kinds } = this;
    if (this.i >= this.stop) {
      let i = this.i;
      while (kinds[i] !== KIND_RAW) i++;
      this.i = i;
      const first = pages[i];
      const region = Math.floor(first / regionPages);
      let j = i + 1;
      while (
        j < pages.length &&
        kinds[j] === KIND_RAW &&
        pages[j] === pages[j - 1] + 1 &&
        Math.floor(pages[j] / regionPages) === region
      )
        j++;
      this.stop = j;
      this.region = regions[region];
      this.stopByte = ((pages[j - 1] % regionPages) + 1) * PAGE_BYTES;
    }
    return this.region.subarray((this.pages[this.i] % regionPages) * PAGE_BYTES + this.filled, this.stopByte);
  }

  advance(n) {
    this.filled += n;
    const whole = Math.floor(this.filled / PAGE_BYTES);
    this.i += whole; // within a run, entries are consecutive raw pages
    this.filled -= whole * PAGE_BYTES;
  }

  end() {}
}

/** A batch is in memory (raw pages) or to be cleared (zero pages): hash each, record it. */
function pagesDone(meta) {
  const kinds = meta.kinds;
  const count = kinds.length;
  const pages = meta.pageList;
  const content = new Uint8Array(count * HASH_BYTES);
  let raws = 0;
  for (let i = 0; i < count; i++) {
    const page = pages[i];
    const region = regions[Math.floor(page / regionPages)];
    const offset = (page % regionPages) * PAGE_BYTES;
    if (kinds[i] === KIND_ZERO) region.fill(0, offset, offset + PAGE_BYTES);
    else tally.bytes += PAGE_BYTES;
    if (kinds[i] === KIND_ZERO || !hashPages) {
      hashes.set(ZERO_HASH, page * HASH_BYTES);
      content.set(ZERO_HASH, i * HASH_BYTES);
    } else raw[raws++] = i;
    Atomics.or(received, page >>> 5, 1 << (page & 31));
  }
  // The raw pages' hashes, in one call: into the page-hash table (the digest) and the content hash.
  pageHasher.hashPages(
    raws,
    (k) => {
      const page = pages[raw[k]];
      const offset = (page % regionPages) * PAGE_BYTES;
      return regions[Math.floor(page / regionPages)].subarray(offset, offset + PAGE_BYTES);
    },
    (k, out, at) => keepHash(out, at, hashes, pages[raw[k]], content, raw[k]),
  );
  contentHasher.update(content);
  tally.pages += count;
}

function roundEnd(meta) {
  openRound(meta.round, 'RoundEnd');
  const marker = {
    round: meta.round,
    pages: uintField(meta.pages, 'pages', Number.MAX_SAFE_INTEGER),
    bytes: uintField(meta.bytes, 'bytes', Number.MAX_SAFE_INTEGER),
    pagesHash: Buffer.from(bytesField(meta.pagesHash, 'pagesHash', 8)).toString('hex'),
    contentHash: Buffer.from(bytesField(meta.contentHash, 'contentHash', 8)).toString('hex'),
    stable: meta.stable === true,
  };
  const counted = {
    pages: tally.pages,
    bytes: tally.bytes,
    pagesHash: pagesHasher.digest('hex'),
    contentHash: contentHasher.digest('hex'),
  };
  lastRound = round;
  round = -1;
  post({ type: 'round', marker, tally: counted });
}

const channelHandler = {
  frame(type, meta, payloadLen) {
    if (type === TYPE.Pages) return pagesFrame(meta, payloadLen);
    if (payloadLen !== 0) throw coded('ERR_BAD_PAYLOAD', `a ${payloadLen}-byte payload where none belongs`);
    if (type === TYPE.RoundEnd) return undefined;
    if (type === TYPE.Error) {
      throw coded(
        'ERR_PEER_ABORTED',
        `the source ended channel ${data.index}: ${String(meta.code)} ${String(meta.message).slice(0, 200)}`,
      );
    }
    throw coded('ERR_UNEXPECTED_MESSAGE', 'a second Attach on an attached channel');
  },
  end(type, meta) {
    if (type === TYPE.Pages) pagesDone(meta);
    else if (type === TYPE.RoundEnd) roundEnd(meta);
  },
};

// ---- accepting --------------------------------------------------------------------------------
function tokenMatches(token) {
  const theirs = Buffer.from(token);
  const ours = Buffer.from(data.token);
  return theirs.length === ours.length && timingSafeEqual(theirs, ours);
}

function refuse(socket, code, message) {
  post({ type: 'refused', code, message });
  if (!socket.destroyed) socket.end(errorFrame(code, message));
  setTimeout(() => socket.destroy(), 200).unref();
  if (++refused >= MAX_REFUSED)
    fail(coded('ERR_HANDSHAKE', `${refused} connections refused: no channel attached`), false);
}

/** A connection: its first frame must be this channel's Attach; then it is the channel. */
function accept(socket) {
  if (channel || finished) return void socket.destroy();
  if (inHandshake >= MAX_IN_HANDSHAKE) {
    post({
      type: 'refused',
      code: 'ERR_TOO_MANY_CONNECTIONS',
      message: `${MAX_IN_HANDSHAKE} already in their handshake`,
    });
    return void socket.destroy();
  }
  inHandshake += 1;
  let handshaking = true;
  const handshakeOver = () => {
    if (handshaking) inHandshake -= 1;
    handshaking = false;
  };
  socket.once('close', handshakeOver);
  if (data.tls) {
    const certificate = socket.getPeerCertificate();
    const name = peerName(certificate);
    const role = peerRole(certificate);
    if (!socket.authorized || name !== data.sourceName || role !== 'agent') {
      return refuse(
        socket,
        'ERR_FORBIDDEN',
        `this channel belongs to agent "${data.sourceName}", not "${name}" (${role})`,
      );
    }
  }
  let attached = false;
  let parser;
  let live; // the socket reading in place (set below; the onread buffer is asked for at once)
  const handshake = setTimeout(
    () => refuse(live, 'ERR_TIMEOUT', 'no Attach within the handshake deadline'),
    data.attachTimeoutMs,
  );
  handshake.unref();
  const attachHandler = {
    frame(type, meta, payloadLen) {
      if (attached) return channelHandler.frame(type, meta, payloadLen);
      if (type !== TYPE.Attach || payloadLen !== 0)
        throw coded('ERR_UNEXPECTED_MESSAGE', `frame type ${type} before Attach`);
      return undefined;
    },
    end(type, meta) {
      if (attached) return channelHandler.end(type, meta);
      const ok =
        stringField(meta.channel, 'channel') === 'multifd' &&
        stringField(meta.migrationId, 'migrationId') === data.migrationId &&
        uintField(meta.index, 'index') === data.index &&
        tokenMatches(stringField(meta.token, 'token'));
      if (!ok) throw coded('ERR_FORBIDDEN', 'this port takes only its own multifd channel, with its token');
      if (channel || finished) throw coded('ERR_BUSY', 'the channel is attached already');
      attached = true;
      handshakeOver();
      clearTimeout(handshake);
      channel = live;
      currentParserInFrame = () => parser.inFrame;
      server.close();
      live.write(frameHead(TYPE.Attach, { migrationId: data.migrationId, channel: 'multifd', index: data.index }, 0));
      post({ type: 'attached' });
    },
  };
  parser = new FrameParser(attachHandler);
  const onError = (error) => {
    if (attached) fail(error, true);
    else refuse(live, error.code ?? 'ERR_HANDSHAKE', error.message);
  };
  const onread = {
    buffer: () => (finished || live?.destroyed ? discard : parser.target()),
    callback: (n) => {
      if (finished || live.destroyed) return true;
      if (!parser.inFrame) frameStarted = performance.now();
      try {
        parser.advance(n);
      } catch (error) {
        onError(error);
      }
      return true;
    },
  };
  live = readInPlace(socket, onread);
  if (live === null) {
    live = socket;
    socket.on('data', (chunk) => {
      if (finished || live.destroyed) return;
      if (!parser.inFrame) frameStarted = performance.now();
      try {
        parser.feed(chunk);
      } catch (error) {
        onError(error);
      }
    });
    socket.resume();
  }
  // The handle may have moved to a new socket (read in place): its close ends the handshake too.
  if (live !== socket) live.once('close', handshakeOver);
  live.setNoDelay(true);
  live.on('error', (error) => {
    if (attached) fail(coded('ERR_CONNECTION', error.message), false);
  });
  // The source ending or closing the channel is always an error here: the receiver stops its
  // workers before a source closes (after the last round's barrier). Inside a frame it is a
  // truncated stream; between frames, a lost connection.
  const lost = () => {
    clearTimeout(handshake);
    if (!attached || finished) return;
    const where = parser.inFrame ? ' inside a frame' : round !== -1 ? ` inside round ${round}` : '';
    const code = parser.inFrame ? 'ERR_TRUNCATED' : 'ERR_CONNECTION';
    fail(coded(code, `the source closed channel ${data.index}${where}`), false);
  };
  live.on('end', lost);
  live.on('close', lost);
}

/** The certificate's DNS name (SAN), as the agents name each other. */
function peerName(certificate) {
  const alt = certificate?.subjectaltname ?? '';
  const dns = alt.split(', ').find((entry) => entry.startsWith('DNS:'));
  return dns ? dns.slice(4) : null;
}

/** The certificate's livemig role: its one `livemig-role:` OU (shared/src/security/pki.ts roleOf), else null. */
function peerRole(certificate) {
  const ou = certificate?.subject?.OU;
  const roles = (ou === undefined ? [] : Array.isArray(ou) ? ou : [ou])
    .filter((value) => value.startsWith('livemig-role:'))
    .map((value) => value.slice('livemig-role:'.length));
  return roles.length === 1 ? roles[0] : null;
}

/** Resolves once load() is done (set once the port listens). */
let loaded;
/** Hold a connection until the wire and the hashers are loaded. */
const acceptLoaded = (socket) => {
  socket.on('error', () => {}); // until accept() watches it
  void loaded.then(() => accept(socket));
};

const server = data.tls
  ? tls.createServer(
      {
        ca: data.tls.ca,
        cert: data.tls.cert,
        key: data.tls.key,
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: data.attachTimeoutMs,
      },
      acceptLoaded,
    )
  : net.createServer({ pauseOnConnect: true }, acceptLoaded);
server.on('tlsClientError', (error, socket) => {
  post({ type: 'refused', code: 'ERR_UNAUTHENTICATED', message: error.message });
  socket.destroy();
});
server.once('error', (error) => {
  post({ type: 'listen-failed', message: error.message });
  finished = true;
  exit();
});
server.listen(data.port ?? 0, data.host, () => post({ type: 'listening', port: server.address().port }));
loaded = load();
loaded.catch((error) => {
  if (finished) return;
  finished = true;
  post({ type: 'failed', code: 'ERR_INTERNAL', message: `channel ${data.index}: ${error?.message ?? error}` });
  server.close();
  exit();
});

// The attach deadline, and a frame's deadline from its first byte.
const attachBy = performance.now() + data.attachTimeoutMs;
const watchdog = setInterval(
  () => {
    const now = performance.now();
    if (!channel && now > attachBy)
      fail(codedError('ERR_TIMEOUT', `no channel attached within ${data.attachTimeoutMs} ms`), false);
    else if (channel && isMidFrame() && now - frameStarted > data.frameTimeoutMs) {
      fail(codedError('ERR_IDLE_TIMEOUT', `a frame took longer than ${data.frameTimeoutMs} ms`), true);
    }
  },
  Math.max(50, Math.min(1000, data.frameTimeoutMs / 4)),
);

/** An Error with a code, before the wire module may have loaded (channel-wire.mjs coded()). */
function codedError(code, message) {
  return Object.assign(new Error(message), { code });
}

let currentParserInFrame = () => false;
function isMidFrame() {
  return currentParserInFrame();
}

main.on('message', (message) => {
  if (message?.type !== 'stop' || finished) return;

  finished = true;
  server.close();
  // Destroyed, not ended: a socket still open would read its next bytes into the buffer it was
  // given last — guest memory — and the main thread takes 'stopped' to mean no more writes there.
  channel?.destroy();
  post({ type: 'stopped' });
  exit();
});
