/**
 * Child process of bench/protocol.bench.ts: the *sending* side of the loopback streaming
 * benchmark, in its own process (the receiver is the parent), as a source agent would be.
 *
 * argv: <mode: framed | framed-views | raw> <dial: listen | connect> <port (connect only)> <totalBytes> <runs>
 * `listen`: listens on 127.0.0.1:0, tells the parent the port over IPC, and serves `runs`
 * connections one after the other; `connect`: tells the parent it is ready, then connects to the
 * parent's port each time the parent sends 'go' (`runs` times). Each
 * connection carries `totalBytes` of page bytes from a 64 MiB random "guest memory", in batches
 * of 256 pages (1 MiB): framed = FramedSocket.sendPagesFrom(memory) (views cut per run of
 * consecutive pages, no copy), framed-views = FramedSocket.sendPages with 256 per-page views,
 * raw = socket.write of the same 1 MiB views. All honour backpressure with the same high-water
 * mark.
 */
import net from 'node:net';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { FramedSocket, createFramedServer, msg } from '../shared/src/protocol/index.ts';

const PAGE = 4096;
const BATCH = 256;
const MEMORY_BYTES = 64 * 1024 * 1024;
const HWM = 4 * 1024 * 1024;

const [mode = 'framed', dial = 'listen', portArg = '0', totalArg = String(2 ** 30), runsArg = '1'] =
  process.argv.slice(2);
const total = Number(totalArg);
const runs = Number(runsArg);
// Guest memory is a SharedArrayBuffer in livemig; page views are plain Uint8Array subarrays.
const memory = new Uint8Array(new SharedArrayBuffer(MEMORY_BYTES));
randomFillSync(memory);
const memPages = MEMORY_BYTES / PAGE;

async function sendFramed(socket: FramedSocket): Promise<void> {
  const pages = new Uint32Array(BATCH);
  const kinds = new Uint8Array(BATCH);
  let first = 0;
  for (let sent = 0; sent < total; sent += BATCH * PAGE) {
    for (let i = 0; i < BATCH; i++) pages[i] = first + i;
    let ok: boolean;
    if (mode === 'framed-views') {
      const views: Uint8Array[] = [];
      for (let i = 0; i < BATCH; i++) views.push(memory.subarray((first + i) * PAGE, (first + i + 1) * PAGE));
      ok = socket.sendPages({ round: 0, pages, kinds }, views);
    } else {
      ok = socket.sendPagesFrom({ round: 0, pages, kinds }, memory);
    }
    if (!ok) await socket.onDrain();
    first = (first + BATCH) % memPages;
  }
  socket.send(msg.complete());
  await socket.close();
}

async function sendRaw(socket: net.Socket): Promise<void> {
  let first = 0;
  for (let sent = 0; sent < total; sent += BATCH * PAGE) {
    if (!socket.write(memory.subarray(first * PAGE, (first + BATCH) * PAGE))) await once(socket, 'drain');
    first = (first + BATCH) % memPages;
  }
  socket.end();
  await once(socket, 'close');
}

const framedOptions = { writeHighWaterMark: HWM, heartbeatIntervalMs: 0, idleTimeoutMs: 0 };

async function main(): Promise<void> {
  if (dial === 'listen') {
    let served = 0;
    const done = (): void => {
      if (++served === runs) server.close(() => process.exit(0));
    };
    const server =
      mode !== 'raw'
        ? createFramedServer(framedOptions, (s) => void sendFramed(s).then(done))
        : net.createServer({ highWaterMark: HWM } as net.ServerOpts, (s) => {
            s.setNoDelay(true);
            void sendRaw(s).then(done);
          });
    server.listen(0, '127.0.0.1', () => {
      process.send?.({ port: (server.address() as net.AddressInfo).port });
    });
  } else {
    const goes: (() => void)[] = [];
    let pending = 0;
    process.on('message', () => {
      const next = goes.shift();
      if (next) next();
      else pending++;
    });
    const go = (): Promise<void> =>
      pending > 0 ? (pending--, Promise.resolve()) : new Promise<void>((resolve) => goes.push(resolve));
    process.send?.({ ready: true });
    for (let r = 0; r < runs; r++) {
      await go();
      if (mode !== 'raw') {
        await sendFramed(await FramedSocket.connect({ port: Number(portArg), ...framedOptions }));
      } else {
        const s = net.connect({
          port: Number(portArg),
          host: '127.0.0.1',
          writableHighWaterMark: HWM,
        } as net.NetConnectOpts);
        await once(s, 'connect');
        s.setNoDelay(true);
        await sendRaw(s);
      }
    }
    process.exit(0);
  }
}

await main();
