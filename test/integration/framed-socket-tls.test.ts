/**
 * FramedSocket over mutual TLS 1.3 (the agents' secure data channel, channel/tls.ts), on real
 * loopback sockets: both ends — the connecting one and the one a tls.Server accepted — read
 * through `onread` (socket-handle.ts gives an established TLS socket the option), runs of pages
 * are decrypted straight into the memory the sink offers, a paused reader holds the writer back
 * under its cap, and the frame decoder's checks still close a connection sending garbage.
 */
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectTls, createTlsServer } from '../../shared/src/channel/tls.ts';
import { MigrationError } from '../../shared/src/errors.ts';
import {
  FramedSocket,
  MsgType,
  msg,
  type FramedSocketOptions,
  type PageSink,
  type PagesMeta,
} from '../../shared/src/protocol/index.ts';
import { initPki, issueCertificate, loadPki, type LoadedPki } from '../../shared/src/security/index.ts';
import { sendToSlowReader } from '../helpers/slow-reader.ts';

const PAGE = 4096;
let dir: string;
let dest: LoadedPki;
let source: LoadedPki;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-framed-tls-'));
  await initPki(dir);
  await issueCertificate(dir, { name: 'dest-a', role: 'agent' });
  await issueCertificate(dir, { name: 'src-a', role: 'agent' });
  dest = await loadPki(dir, 'dest-a');
  source = await loadPki(dir, 'src-a');
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** A connected pair over mutual TLS: the accepting end adopts the server's TLS socket, as the agents do. */
async function pair(
  serverOptions: FramedSocketOptions = {},
  clientOptions: FramedSocketOptions = {},
): Promise<{ c: FramedSocket; s: FramedSocket }> {
  let onAccepted!: (s: FramedSocket) => void;
  const accepted = new Promise<FramedSocket>((resolve) => (onAccepted = resolve));
  const server = createTlsServer({ ca: dest.ca, cert: dest.cert, key: dest.key, allowSource: () => true }, (socket) => {
    const s = FramedSocket.adopt(socket, { heartbeatIntervalMs: 0, ...serverOptions });
    cleanups.push(() => s.destroy());
    onAccepted(s);
  });
  server.listen(0, '127.0.0.1');
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const socket = await connectTls(
    '127.0.0.1',
    port,
    { ca: source.ca, cert: source.cert, key: source.key, expectName: 'dest-a' },
    5000,
  );
  const c = FramedSocket.adopt(socket, { heartbeatIntervalMs: 0, ...clientOptions });
  cleanups.push(() => c.destroy());
  return { c, s: await accepted };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A sink writing pages into `target`; with `inPlace`, runs are decrypted straight into it. */
function sinkInto(target: Uint8Array, inPlace: boolean) {
  let meta: PagesMeta | undefined;
  const sink = {
    copied: 0,
    inPlace: 0,
    batches: 0,
    maxRunPages: 4096,
    pagesBegin: (m: PagesMeta) => void (meta = m),
    pageBytes: (index: number, offset: number, bytes: Uint8Array) => {
      sink.copied += bytes.length;
      target.set(bytes, meta!.pages[index]! * PAGE + offset);
    },
    ...(inPlace
      ? {
          pageTarget: (index: number, offset: number, length: number) => {
            sink.inPlace++;
            const start = meta!.pages[index]! * PAGE + offset;
            return target.subarray(start, start + length);
          },
        }
      : {}),
    pagesEnd: (m: PagesMeta) => {
      sink.batches++;
      for (let i = 0; i < m.kinds.length; i++) {
        if (m.kinds[i] === 1) target.fill(0, m.pages[i]! * PAGE, (m.pages[i]! + 1) * PAGE);
      }
    },
  } satisfies PageSink & Record<string, unknown>;
  return sink;
}

describe('FramedSocket over mutual TLS', () => {
  it('both ends read through onread: the connecting socket and the one the TLS server accepted', async () => {
    const { c, s } = await pair();
    expect(c.readMode).toBe('onread');
    expect(s.readMode).toBe('onread');
    const got: MsgType[] = [];
    s.on('message', (m) => got.push(m.type));
    c.sendAll([msg.roundEnd({ round: 1, pages: 0, bytes: 0 }), msg.complete()]);
    await until(() => got.length === 2);
    expect(got).toEqual([MsgType.RoundEnd, MsgType.Complete]);
    const back: MsgType[] = [];
    c.on('message', (m) => back.push(m.type));
    s.send(msg.pageRequest(1, [5, 6]));
    await until(() => back.length === 1);
    expect(back).toEqual([MsgType.PageRequest]);
  });

  for (const inPlace of [true, false]) {
    it(`pages arrive intact, ${inPlace ? 'decrypted straight into the memory the sink offers' : 'through the scratch buffer'}`, async () => {
      const memory = new Uint8Array(new SharedArrayBuffer(4096 * PAGE));
      randomFillSync(memory);
      const target = new Uint8Array(4096 * PAGE).fill(0x77);
      const sink = sinkInto(target, inPlace);
      const { c, s } = await pair({ sink });
      const done = new Promise<void>((resolve) => s.on('message', (m) => m.type === MsgType.Complete && resolve()));
      // 16 batches of 256 pages, one with a zero page and a gap.
      for (let first = 0; first < 4096; first += 256) {
        const pages = Uint32Array.from({ length: 256 }, (_, i) => first + i).filter((p) => p !== 700);
        const kinds = Uint8Array.from(pages, (p) => (p === 600 ? 1 : 0));
        if (!c.sendPagesFrom({ round: 0, pages, kinds }, memory)) await c.onDrain();
      }
      c.send(msg.complete());
      await done;
      expect(sink.batches).toBe(16);
      memory.fill(0, 600 * PAGE, 601 * PAGE);
      target.set(memory.subarray(700 * PAGE, 701 * PAGE), 700 * PAGE); // never sent
      expect(Buffer.from(target).equals(Buffer.from(memory))).toBe(true);
      if (inPlace) {
        expect(sink.inPlace).toBeGreaterThan(0);
        expect(sink.copied).toBeLessThan(4094 * PAGE * 0.1); // only the short tails of runs
      } else expect(sink.copied).toBe(4094 * PAGE);
    });
  }

  it('backpressure: a paused reader holds the writer back, its buffer stays under the cap, nothing is lost', async () => {
    const cap = { writeHighWaterMark: 256 * 1024, maxFrameBytes: 1024 * 1024, maxWriteBufferBytes: 2 * 1024 * 1024 };
    const memory = new Uint8Array(64 * PAGE);
    randomFillSync(memory);
    const target = new Uint8Array(64 * PAGE);
    const sink = sinkInto(target, true);
    const { c, s } = await pair({ sink, ...cap }, cap);
    s.pause();
    const pages = Uint32Array.from({ length: 64 }, (_, i) => i);
    const kinds = new Uint8Array(64);
    const batch = (): boolean => c.sendPages({ round: 0, pages, kinds }, [memory]);
    // Fill the pipe: send until onDrain stays pending (the kernel's buffers are full too).
    let sent = 0;
    for (;;) {
      while (batch()) sent++;
      sent++;
      const drained = await Promise.race([c.onDrain().then(() => true), sleep(300).then(() => false)]);
      if (!drained) break;
    }
    await sleep(100);
    expect(s.stats.bytesReceived).toBe(0); // paused before the first byte: nothing was read
    expect(c.writableLength).toBeLessThanOrEqual(cap.maxWriteBufferBytes);
    const maxBuffered = await sendToSlowReader(c, s, batch, 200);
    await until(() => sink.batches === sent + 200);
    expect(maxBuffered).toBeLessThanOrEqual(cap.maxWriteBufferBytes);
    expect(Buffer.from(target).equals(Buffer.from(memory))).toBe(true);
  });

  it('the frame decoder still checks every byte: garbage closes the connection with ERR_BAD_MAGIC', async () => {
    const { c, s } = await pair();
    const closed = s.closed;
    (c.socket as tls.TLSSocket).write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    const err = await closed;
    expect(err).toBeInstanceOf(MigrationError);
    expect(err?.code).toBe('ERR_BAD_MAGIC');
    expect((await c.closed)?.code).toBe('ERR_PEER_ABORTED');
  });
});
