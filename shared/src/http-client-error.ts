/**
 * What a small HTTP server of ours (the agent's metrics, the dashboard) answers to a request Node's
 * parser refused before any handler saw it: a one-line status and close — 431 for headers over the
 * limit, 408 for a request that did not arrive in time, 400 otherwise — or, when the peer is gone,
 * nothing. One place, so both servers bound hostile input the same way.
 */
import type { Duplex } from 'node:stream';

/** Node's `clientError` handler body: answer `socket` for `error` and close it. */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? '431 Request Header Fields Too Large'
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? '408 Request Timeout'
        : '400 Bad Request';
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
}
