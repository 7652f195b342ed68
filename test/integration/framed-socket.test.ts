/**
 * FramedSocket over real TCP sockets on 127.0.0.1: both connection directions read into reused
 * buffers, pages land in memory through a PageSink, backpressure against a slow reader, the
 * buffer cap, heartbeats and idle timeout, and hostile peers (garbage, truncated frames, a
 * version-2 peer, oversized frames) each ending with its documented code while the server keeps
 * serving others.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import net from 'node:net';
import { randomFillSync } from 'node:crypto';
import { MigrationError } from '../../shared/src/errors.ts';
import {
  FrameDecoder,
  FramedSocket,
  MsgType,
  createFramedServer,
  encodeFrame,
  makeHello,
  msg,
  negotiate,
  type FramedSocketOptions,
  type Message,
  type PageSink,
  type PagesMeta,
} from '../../shared/src/protocol/index.ts';
import { sendToSlowReader } from '../helpers/slow-reader.ts';

const PAGE = 4096;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** A listening framed server; `accepted` yields its connections in order. */
async function server(options: FramedSocketOptions = {}) {
  const queue: FramedSocket[] = [];
  const waiters: ((s: FramedSocket) => void)[] = [];
  const srv = createFramedServer(options, (s) => {
    const w = waiters.shift();
    if (w) w(s);
    else queue.push(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  const sockets: FramedSocket[] = [];
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return {
    srv,
    port,
    accepted(): Promise<FramedSocket> {
      const next = queue.shift();
      const p = next ? Promise.resolve(next) : new Promise<FramedSocket>((resolve) => waiters.push(resolve));
      return p.then((s) => (sockets.push(s), s));
    },
  };
}

async function client(port: number, options: FramedSocketOptions = {}): Promise<FramedSocket> {
  const s = await FramedSocket.connect({ port, ...options });
  cleanups.push(() => s.destroy());
  return s;
}

async function rawClient(port: number): Promise<net.Socket & { received: Buffer[] }> {
  const s = net.connect({ port, host: '127.0.0.1' }) as net.Socket & { received: Buffer[] };
  s.received = [];
  s.on('data', (chunk: Buffer) => s.received.push(chunk));
  s.on('error', () => {});
  await once(s, 'connect');
  cleanups.push(() => s.destroy());
  return s;
}

function collect(s: FramedSocket): Message[] {
  const out: Message[] = [];
  s.on('message', (m) => out.push(m));
  return out;
}

function memorySink(memory: Uint8Array): PageSink & { batches: number } {
  let pages: Uint32Array = new Uint32Array(0);
  const sink = {
    batches: 0,
    pagesBegin(meta: PagesMeta) {
      pages = meta.pages;
      for (let i = 0; i < meta.kinds.length; i++) {
        if (meta.kinds[i] === 1) memory.fill(0, pages[i]! * PAGE, (pages[i]! + 1) * PAGE);
      }
    },
    pageBytes(index: number, offset: number, bytes: Uint8Array) {
      memory.set(bytes, pages[index]! * PAGE + offset);
    },
    pagesEnd() {
      sink.batches++;
    },
  };
  return sink;
}

async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const setupMsg = msg.setup({
  migrationId: 'm1',
  mode: 'precopy',
  vm: { name: 'vm', memoryBytes: 1024 * PAGE, pageSize: PAGE, workload: 'idle', init: 'random', seed: 3, nic: '' },
});

describe('FramedSocket over loopback', () => {
  it('exchanges messages both ways; both ends read into a reused buffer (onread)', async () => {
    const { port, accepted } = await server();
    const c = await client(port);
    const s = await accepted();
    expect(c.readMode).toBe('onread');
    expect(s.readMode).toBe('onread');
    expect(c.socket.writableHighWaterMark).toBe(4 * 1024 * 1024);
    expect(s.socket.writableHighWaterMark).toBe(4 * 1024 * 1024);
    const atServer = collect(s);
    const atClient = collect(c);
    c.send(makeHello({ agentId: 'src', capabilities: ['postcopy'] }));
    c.sendAll([setupMsg, msg.cpuState(42, new Uint8Array([1, 2, 3, 4]))]);
    await until(() => atServer.length === 3);
    s.send(negotiate({ agentId: 'dst', capabilities: ['postcopy'] }, atServer[0] as never));
    s.send(msg.pageRequest(1, [5, 6]));
    await until(() => atClient.length === 2);
    expect(atServer.map((m) => m.type)).toEqual([MsgType.Hello, MsgType.Setup, MsgType.CpuState]);
    expect(atClient[0]).toMatchObject({ type: MsgType.Welcome, version: 1, capabilities: ['postcopy'] });
    expect(atClient[1]).toEqual(msg.pageRequest(1, [5, 6]));
    expect([...(atServer[2] as { registers: Uint8Array }).registers]).toEqual([1, 2, 3, 4]);
  });

  it('moves pages into memory through the sink, in both connection directions', async () => {
    for (const direction of ['client sends', 'server sends'] as const) {
      const source = new Uint8Array(new SharedArrayBuffer(1024 * PAGE));
      randomFillSync(source);
      source.fill(0, 10 * PAGE, 12 * PAGE); // pages 10, 11 are zero
      const target = new Uint8Array(1024 * PAGE).fill(0x77);
      const sink = memorySink(target);
      const { port, accepted } = await server(direction === 'client sends' ? { sink } : {});
      const c = await client(port, direction === 'server sends' ? { sink } : {});
      const s = await accepted();
      const [sender, receiver] = direction === 'client sends' ? [c, s] : [s, c];
      const done = new Promise<void>((resolve) =>
        receiver.on('message', (m) => m.type === MsgType.RoundEnd && resolve()),
      );
      for (let first = 0; first < 1024; first += 64) {
        const pages = Uint32Array.from({ length: 64 }, (_, i) => first + i);
        const kinds = pages.map((p) => (p === 10 || p === 11 ? 1 : 0)) as unknown as Uint8Array;
        const views = [...pages]
          .filter((p) => p !== 10 && p !== 11)
          .map((p) => source.subarray(p * PAGE, (p + 1) * PAGE));
        if (!sender.sendPages({ round: 0, pages, kinds: Uint8Array.from(kinds) }, views)) await sender.onDrain();
      }
      sender.send(msg.roundEnd({ round: 0, pages: 1024, bytes: 1022 * PAGE }));
      await done;
      expect(sink.batches).toBe(16);
      expect(Buffer.from(target).equals(Buffer.from(source))).toBe(true);
    }
  });

  it('reads runs of pages straight into the memory the sink offers (pageTarget), in both directions', async () => {
    for (const direction of ['client receives', 'server receives'] as const) {
      const source = new Uint8Array(new SharedArrayBuffer(2048 * PAGE));
      randomFillSync(source);
      const target = new Uint8Array(2048 * PAGE).fill(0x77);
      let meta: PagesMeta | undefined;
      let inPlaceCalls = 0;
      let copied = 0;
      let batches = 0;
      const sink: PageSink = {
        maxRunPages: 2048,
        pagesBegin: (m) => (meta = m),
        pageBytes: (index, offset, bytes) => {
          copied += bytes.length;
          target.set(bytes, meta!.pages[index]! * PAGE + offset);
        },
        pageTarget: (index, offset, length) => {
          inPlaceCalls++;
          const start = meta!.pages[index]! * PAGE + offset;
          return target.subarray(start, start + length);
        },
        pagesEnd: (m) => {
          batches++;
          for (let i = 0; i < m.kinds.length; i++) {
            if (m.kinds[i] === 1) target.fill(0, m.pages[i]! * PAGE, (m.pages[i]! + 1) * PAGE);
          }
        },
      };
      const { port, accepted } = await server(direction === 'server receives' ? { sink } : {});
      const c = await client(port, direction === 'client receives' ? { sink } : {});
      const s = await accepted();
      const [sender, receiver] = direction === 'server receives' ? [c, s] : [s, c];
      const done = new Promise<void>((resolve) =>
        receiver.on('message', (m) => m.type === MsgType.Complete && resolve()),
      );
      // 8 batches of 256 pages: mostly one run each, with a zero page and a gap in one of them.
      for (let first = 0; first < 2048; first += 256) {
        const pages = Uint32Array.from({ length: 256 }, (_, i) => first + i).filter((p) => p !== 700);
        const kinds = Uint8Array.from(pages, (p) => (p === 600 ? 1 : 0));
        if (!sender.sendPagesFrom({ round: 0, pages, kinds }, source)) await sender.onDrain();
      }
      sender.send(msg.complete());
      await done;
      expect(batches).toBe(8);
      source.fill(0, 600 * PAGE, 601 * PAGE);
      target.set(source.subarray(700 * PAGE, 701 * PAGE), 700 * PAGE); // never sent
      expect(Buffer.from(target).equals(Buffer.from(source))).toBe(true);
      expect(inPlaceCalls).toBeGreaterThan(0);
      expect(copied).toBeLessThan(2047 * PAGE);
    }
  });

  it('backpressure: a slow reader makes the writer wait, and its buffer stays under the cap', async () => {
    const cap = { writeHighWaterMark: 256 * 1024, maxFrameBytes: 1024 * 1024, maxWriteBufferBytes: 2 * 1024 * 1024 };
    const memory = new Uint8Array(64 * PAGE);
    const target = new Uint8Array(64 * PAGE);
    const sink = memorySink(target);
    const { port, accepted } = await server({ sink, ...cap });
    const c = await client(port, cap);
    const s = await accepted();
    s.pause();
    const pages = Uint32Array.from({ length: 64 }, (_, i) => i);
    const kinds = new Uint8Array(64);
    const batch = () => c.sendPages({ round: 0, pages, kinds }, [memory]);
    // Fill until send() says stop; the paused reader does not drain, so onDrain stays pending.
    let sent = 0;
    while (batch()) sent++;
    expect(sent).toBeGreaterThan(0);
    let drained = false;
    const drain = c.onDrain().then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(drained).toBe(false);
    expect(c.writableLength).toBeLessThanOrEqual(cap.maxWriteBufferBytes);
    // The reader resumes slowly (pauses again every 20 ms); the writer keeps honouring send()'s
    // result; its buffered bytes never pass the cap.
    const maxBuffered = await sendToSlowReader(c, s, batch, 200);
    await drain;
    c.send(msg.complete());
    await until(() => sink.batches === sent + 1 + 200);
    expect(maxBuffered).toBeLessThanOrEqual(cap.maxWriteBufferBytes);
    expect(maxBuffered).toBeLessThanOrEqual(cap.writeHighWaterMark + cap.maxFrameBytes);
  });

  it('ERR_BUFFER_OVERFLOW: a writer that ignores send() returning false hits the hard cap', async () => {
    const cap = { writeHighWaterMark: 64 * 1024, maxFrameBytes: 512 * 1024, maxWriteBufferBytes: 1024 * 1024 };
    const { port, accepted } = await server();
    const c = await client(port, cap);
    const s = await accepted();
    s.pause();
    const memory = new Uint8Array(64 * PAGE);
    const pages = Uint32Array.from({ length: 64 }, (_, i) => i);
    let thrown: unknown;
    try {
      for (let i = 0; i < 10_000; i++) c.sendPages({ round: 0, pages, kinds: new Uint8Array(64) }, [memory]);
    } catch (err) {
      thrown = err;
    }
    expect((thrown as MigrationError).code).toBe('ERR_BUFFER_OVERFLOW');
    expect((await c.closed)?.code).toBe('ERR_BUFFER_OVERFLOW');
    expect(() => c.send(msg.complete())).toThrow(MigrationError);
  });

  it('ERR_IDLE_TIMEOUT: a peer that connects and sends nothing', async () => {
    const { port, accepted } = await server({ idleTimeoutMs: 200, heartbeatIntervalMs: 0 });
    const raw = await rawClient(port);
    const s = await accepted();
    const started = Date.now();
    const err = await s.closed;
    expect(err?.code).toBe('ERR_IDLE_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(2000);
    // the peer is told why
    await until(() => raw.received.length > 0 || raw.destroyed);
    const [frame] = new FrameDecoder().push(Buffer.concat(raw.received));
    expect(frame).toMatchObject({ type: MsgType.Error, code: 'ERR_IDLE_TIMEOUT' });
  });

  it('heartbeats keep an otherwise silent connection alive past the idle timeout', async () => {
    const opts = { heartbeatIntervalMs: 40, idleTimeoutMs: 250 };
    const { port, accepted } = await server({ ...opts, emitHeartbeats: true });
    const c = await client(port, opts);
    const s = await accepted();
    const beats = collect(s);
    const heartbeats = (): number => beats.filter((m) => m.type === MsgType.Heartbeat).length;
    // Until 20 heartbeats arrived — at least 800 ms, three idle timeouts — or either side closed:
    // counted in heartbeats received, so a loaded machine that delays timers lengthens the window.
    await until(() => c.socket.destroyed || s.socket.destroyed || heartbeats() >= 20, 30_000);
    expect(c.socket.destroyed || s.socket.destroyed).toBe(false);
    expect(heartbeats()).toBeGreaterThanOrEqual(20);
  });

  it('a paused reader does not time out while paused', async () => {
    const opts = { heartbeatIntervalMs: 0, idleTimeoutMs: 150 };
    const { port, accepted } = await server(opts);
    await client(port, { heartbeatIntervalMs: 0, idleTimeoutMs: 0 });
    const s = await accepted();
    s.pause();
    // The window: at least 400 ms, and until a silent connection opened after this one and not
    // paused has timed out — so the idle timer demonstrably had time to fire.
    await client(port, { heartbeatIntervalMs: 0, idleTimeoutMs: 0 });
    const control = await accepted();
    const [closed] = await Promise.all([control.closed, new Promise((r) => setTimeout(r, 400))]);
    expect(closed?.code).toBe('ERR_IDLE_TIMEOUT');
    expect(s.socket.destroyed).toBe(false);
    s.resume();
    expect((await s.closed)?.code).toBe('ERR_IDLE_TIMEOUT');
  });

  it('ERR_BAD_MAGIC: garbage closes that connection with an Error frame; the server keeps serving', async () => {
    const { port, accepted } = await server();
    const raw = await rawClient(port);
    const s1 = await accepted();
    const errors: MigrationError[] = [];
    s1.on('error', (e) => errors.push(e));
    raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await s1.closed)?.code).toBe('ERR_BAD_MAGIC');
    expect(errors.map((e) => e.code)).toEqual(['ERR_BAD_MAGIC']);
    await until(() => raw.destroyed);
    expect(new FrameDecoder().push(Buffer.concat(raw.received))[0]).toMatchObject({
      type: MsgType.Error,
      code: 'ERR_BAD_MAGIC',
    });
    const c = await client(port);
    const s2 = await accepted();
    const got = collect(s2);
    c.send(msg.heartbeat(1));
    c.send(msg.complete());
    await until(() => got.length === 1);
    expect(got[0]!.type).toBe(MsgType.Complete);
  });

  it('ERR_TRUNCATED: the peer ends the stream in the middle of a frame', async () => {
    const { port, accepted } = await server();
    const raw = await rawClient(port);
    const s = await accepted();
    const frame = Buffer.concat(encodeFrame(setupMsg));
    raw.end(frame.subarray(0, frame.length - 3));
    expect((await s.closed)?.code).toBe('ERR_TRUNCATED');
  });

  it('a clean end at a frame boundary closes without an error', async () => {
    const { port, accepted } = await server();
    const c = await client(port);
    const s = await accepted();
    c.send(msg.complete());
    await c.close();
    expect(await s.closed).toBeUndefined();
  });

  it('ERR_PROTOCOL_VERSION: a fake version-2 peer, at the frame level and at the handshake', async () => {
    const { port, accepted } = await server();
    const raw = await rawClient(port);
    const s1 = await accepted();
    const hello2 = msg.hello({ agentId: 'future', capabilities: [], versions: [2] });
    raw.write(Buffer.concat(encodeFrame(hello2, { version: 2 })));
    expect((await s1.closed)?.code).toBe('ERR_PROTOCOL_VERSION');

    // A v1-framed Hello that offers only version 2: the destination's negotiate() rejects it.
    const c = await client(port);
    const s2 = await accepted();
    s2.on('message', (m) => {
      if (m.type === MsgType.Hello) negotiate({ agentId: 'dst', capabilities: [] }, m);
    });
    const toClient = collect(c);
    c.send(hello2);
    expect((await s2.closed)?.code).toBe('ERR_PROTOCOL_VERSION');
    await c.closed;
    expect(toClient[0]).toMatchObject({ type: MsgType.Error, code: 'ERR_PROTOCOL_VERSION' });
  });

  it('ERR_FRAME_TOO_LARGE: an oversized frame is rejected from its header', async () => {
    const { port, accepted } = await server({ maxFrameBytes: 64 * 1024 });
    const raw = await rawClient(port);
    const s = await accepted();
    const head = Buffer.concat(encodeFrame(msg.cpuState(1, new Uint8Array(100)))).subarray(0, 14);
    head.writeUInt32LE(1024 * 1024 * 1024, 10);
    raw.write(head);
    expect((await s.closed)?.code).toBe('ERR_FRAME_TOO_LARGE');
  });

  it('ERR_UNEXPECTED_MESSAGE: a frame travelling the wrong way for the role', async () => {
    const { port, accepted } = await server({ role: 'dest' });
    const c = await client(port);
    const s = await accepted();
    c.send(msg.pageRequest(1, [1]));
    expect((await s.closed)?.code).toBe('ERR_UNEXPECTED_MESSAGE');
  });

  it('ERR_CONNECTION: connecting to a port nobody listens on', async () => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    await expect(FramedSocket.connect({ port })).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
  });

  it('a message listener throwing a MigrationError fails the connection with it and tells the peer', async () => {
    const { port, accepted } = await server();
    const c = await client(port);
    const s = await accepted();
    s.on('message', () => {
      throw new MigrationError('ERR_UNEXPECTED_MESSAGE', 'Handoff before Ready');
    });
    const toClient = collect(c);
    c.send(msg.handoff());
    expect((await s.closed)?.code).toBe('ERR_UNEXPECTED_MESSAGE');
    // the peer's close carries ERR_PEER_ABORTED, and the Error frame was delivered first
    expect((await c.closed)?.code).toBe('ERR_PEER_ABORTED');
    expect(toClient[0]).toMatchObject({ type: MsgType.Error, code: 'ERR_UNEXPECTED_MESSAGE' });
  });

  it('a sink whose pageTarget throws fails the connection (ERR_INTERNAL), it does not crash the process', async () => {
    const sink: PageSink = {
      maxRunPages: 1 << 20,
      pagesBegin: () => {},
      pageBytes: () => {},
      pageTarget: () => {
        throw new TypeError('sink bug');
      },
      pagesEnd: () => {},
    };
    const { port, accepted } = await server({ sink });
    const c = await client(port);
    const s = await accepted();
    const memory = new Uint8Array(256 * PAGE);
    c.sendPagesFrom(
      { round: 0, pages: Uint32Array.from({ length: 256 }, (_, i) => i), kinds: new Uint8Array(256) },
      memory,
    );
    expect((await s.closed)?.code).toBe('ERR_INTERNAL');
  });

  it('onDrain rejects with the connection error when the connection dies while waiting', async () => {
    const opts = { writeHighWaterMark: 64 * 1024, maxFrameBytes: 512 * 1024, maxWriteBufferBytes: 8 * 1024 * 1024 };
    const { port, accepted } = await server();
    const c = await client(port, opts);
    const s = await accepted();
    s.pause();
    const memory = new Uint8Array(64 * PAGE);
    const pages = Uint32Array.from({ length: 64 }, (_, i) => i);
    while (c.sendPages({ round: 0, pages, kinds: new Uint8Array(64) }, [memory]));
    const drain = c.onDrain();
    s.destroy(new MigrationError('ERR_CANCELLED', 'operator'));
    await expect(drain).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
  });

  it('onWritten: called once the socket is done with a payload — after the write, or when the connection is torn down first', async () => {
    const opts = {
      writeHighWaterMark: 64 * 1024,
      maxFrameBytes: 2 * 1024 * 1024,
      maxWriteBufferBytes: 64 * 1024 * 1024,
    };
    const { port, accepted } = await server(opts);
    const c = await client(port, opts);
    const s = await accepted();
    const atServer = collect(s);
    const data = randomFillSync(new Uint8Array(256 * 4096));
    let written = 0;
    c.send(msg.diskBlocks({ blocks: Uint32Array.from({ length: 256 }, (_, i) => i), data }), () => written++);
    await until(() => written === 1 && atServer.length === 1);
    // Read in place into the payload buffer (no scratch copy), and intact.
    expect(Buffer.from((atServer[0] as { data: Uint8Array }).data).equals(Buffer.from(data))).toBe(true);
    // A reader that stops: writes queue in the socket; tearing it down still releases each one.
    s.pause();
    let released = 0;
    const queued = 32; // 32 MiB: more than the kernel's socket buffers take, so some wait in the socket's
    for (let i = 0; i < queued; i++) {
      c.send(msg.diskBlocks({ blocks: Uint32Array.from({ length: 256 }, (_, k) => k), data }), () => released++);
    }
    expect(c.socket.writableLength).toBeGreaterThan(0);
    expect(released).toBeLessThan(queued);
    c.destroy(new MigrationError('ERR_CANCELLED', 'test'));
    await until(() => released === queued);
  });

  it("adopting an already-flowing socket falls back to 'data' events and still works", async () => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    const acceptedRaw = once(srv, 'connection') as Promise<[net.Socket]>;
    const c = await client((srv.address() as net.AddressInfo).port);
    const [sock] = await acceptedRaw;
    sock.on('data', () => {}); // already flowing
    sock.removeAllListeners('data');
    const s = FramedSocket.adopt(sock, { heartbeatIntervalMs: 0 });
    cleanups.push(() => s.destroy());
    expect(s.readMode).toBe('data');
    const got = collect(s);
    c.send(msg.cancel('operator'));
    await until(() => got.length === 1);
    expect(got[0]).toEqual(msg.cancel('operator'));
  });

  it('the server closes once its re-wrapped connections are closed', async () => {
    const srv = createFramedServer({}, () => {});
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const c = await FramedSocket.connect({ port: (srv.address() as net.AddressInfo).port });
    await until(() => (srv as unknown as { _connections: number })._connections === 1);
    const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
    c.destroy();
    await closed; // would hang if the connection count leaked
  });
});
