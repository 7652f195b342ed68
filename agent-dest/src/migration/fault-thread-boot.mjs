// The post-copy fault thread's first module (fault-thread.ts starts it). Plain JavaScript on
// purpose: it needs no TypeScript loader, so the thread listens within milliseconds of starting
// and the destination can name the port in SetupDone at once. Then it loads the TypeScript half
// (fault-thread-worker.ts, through tsx: a few hundred milliseconds on a busy machine) and hands
// it the server and the connections that arrived meanwhile — held, unread, until then.
//
// workerData: see FaultThreadData in fault-thread.ts. This file reads host, tls, entry and
// handshakeTimeoutMs; it posts { type: 'listening', port } or { type: 'listen-failed', message }.
import net from 'node:net';
import tls from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';
import { prioritizeFaultThread } from '../../../shared/src/vm/fault-priority.mjs';
import { announceThread, sealThread } from '../../../shared/src/vm/thread-cpu.mjs';

// First: the host reads this thread's CPU time by its id (the report's `fault` thread), and the
// final figure is sealed as the thread exits (the TypeScript half ends it with process.exit()).
announceThread(workerData.thread);
process.on('exit', () => sealThread(workerData.thread));
// Ahead of the bulk work on a busy machine (fault-priority.mjs): a blocked guest waits for this thread.
prioritizeFaultThread();

/** Connections held while the TypeScript half loads, at most (one is expected: the source's). */
const MAX_EARLY = 8;

const early = [];
let take = (socket) => {
  if (early.length >= MAX_EARLY) return void socket.destroy();
  early.push(socket);
  socket.on('error', () => {});
};
const accept = (socket) => take(socket);
const server = workerData.tls
  ? tls.createServer(
      {
        ...workerData.tls,
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: workerData.handshakeTimeoutMs,
      },
      accept,
    )
  : net.createServer({ pauseOnConnect: true }, accept);
// A failed TLS handshake (no or a foreign certificate) ends here, before any livemig byte.
server.on('tlsClientError', (error, socket) => {
  parentPort.postMessage({ type: 'refused', code: 'ERR_UNAUTHENTICATED', message: error.message });
  socket.destroy();
});
server.once('error', (error) => parentPort.postMessage({ type: 'listen-failed', message: error.message }));
server.listen(0, workerData.host, () => {
  parentPort.postMessage({ type: 'listening', port: server.address().port });
});

// The entry is a bundle of it (shared/src/worker-bundle.ts), or the TypeScript itself through tsx.
if (/\.[cm]?ts$/.test(workerData.entry)) (await import('tsx/esm/api')).register();
const { serve } = await import(workerData.entry);
take = serve(server);
for (const socket of early.splice(0)) take(socket);
