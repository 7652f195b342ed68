/**
 * The probe client: a request every `intervalMs` to a kv service over UDP, every reply recorded,
 * then summarizeProbe(). Sends are scheduled on absolute times (start + k × interval), so a late
 * timer catches up instead of drifting. With `writes`, every request is a PUT of a distinct key;
 * afterwards every acknowledged PUT is read back (GET, a few tries each) and a value that is not
 * there is a lost write — what a migration must never cause.
 */
import dgram from 'node:dgram';
import type { HostPort } from '@livemig/shared';
import { decodeKvReply, encodeKvRequest, KvOp, KvStatus } from '@livemig/shared/kv';
import { summarizeProbe, type ProbeSummary } from './summarize.ts';

export interface ProbeOptions {
  target: HostPort;
  /** @default 1 */
  intervalMs?: number;
  /** @default 10000 */
  durationMs?: number;
  /** PUT distinct keys, then read every acknowledged one back. @default false */
  writes?: boolean;
  /** How long to wait for late replies after the last request. @default 250 */
  graceMs?: number;
  /** Stop sending when this settles (before durationMs), e.g. when a migration is over. */
  until?: Promise<unknown>;
  /** Called at every reply to a request (not to read-backs). */
  onReply?: () => void;
  /** Stop at once, without the grace period or the read-back (the run is abandoned). */
  signal?: AbortSignal;
}

export interface ProbeResult extends ProbeSummary {
  target: string;
  intervalMs: number;
  durationMs: number;
  /** Present with `writes`: acknowledged PUTs, and how many of them could not be read back. */
  writes?: { acknowledged: number; lostWrites: number };
  /** Socket errors seen (e.g. ICMP port unreachable), counted, never fatal. */
  socketErrors: number;
  /**
   * Reply arrival times, ascending, on this process's performance.now() clock; add
   * `timeOriginMs` for ms since the epoch (to line up with an agent's report).
   */
  arrivalsMs: number[];
  timeOriginMs: number;
  /** Every request: when it left (ms since the epoch) and its reply's latency (null: none came). */
  timeline: { sentAt: number; latencyMs: number | null }[];
}

/** Request id of read-backs (probe requests count from 1). */
const READ_BACK_ID = 0;
/** Read-backs in flight at once (well under the VM's 256-slot receive ring). */
const READ_BACK_WINDOW = 32;
/** Times an unanswered read-back is asked again. */
const READ_BACK_PASSES = 5;

/** A value derived from the key, so a read-back can tell a right value from a stale one. */
const valueOf = (key: number): number => (Math.imul(key, 2654435761) ^ 0x5bd1e995) >>> 0;

export async function runProbe(options: ProbeOptions): Promise<ProbeResult> {
  const intervalMs = options.intervalMs ?? 1;
  const durationMs = options.durationMs ?? 10_000;
  const graceMs = options.graceMs ?? 250;
  const socket = dgram.createSocket(options.target.host.includes(':') ? 'udp6' : 'udp4');
  const sentAt = new Map<number, number>();
  const repliedAt = new Map<number, number>();
  const acknowledged = new Set<number>();
  /** Read-back answers: the value read, or null for NOT_FOUND. */
  const readBack = new Map<number, number | null>();
  let readBackArrived: (() => void) | undefined;
  let socketErrors = 0;
  socket.on('error', () => (socketErrors += 1));
  socket.on('message', (bytes) => {
    const reply = decodeKvReply(bytes);
    if (!reply) return;
    if (reply.id === READ_BACK_ID) {
      if (reply.op === KvOp.Get) readBack.set(reply.key, reply.status === KvStatus.Ok ? reply.value : null);
      readBackArrived?.();
      return;
    }
    if (sentAt.has(reply.id) && !repliedAt.has(reply.id)) {
      repliedAt.set(reply.id, performance.now());
      options.onReply?.();
    }
    if (reply.op === KvOp.Put && reply.status === KvStatus.Ok) acknowledged.add(reply.key);
  });
  const send = (op: KvOp, id: number, key: number): void => {
    socket.send(
      encodeKvRequest({ op, id, key, value: op === KvOp.Put ? valueOf(key) : 0 }),
      options.target.port,
      options.target.host,
    );
  };
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  let stopped = false;
  void options.until?.finally(() => (stopped = true));
  options.signal?.addEventListener('abort', () => (stopped = true), { once: true });
  try {
    const start = performance.now();
    let next = 1;
    let lastSent = start;
    while (!stopped && performance.now() - start < durationMs) {
      const due = Math.floor((performance.now() - start) / intervalMs) + 1;
      for (; next <= due && (next - 1) * intervalMs < durationMs; next++) {
        lastSent = performance.now();
        sentAt.set(next, lastSent);
        send(options.writes ? KvOp.Put : KvOp.Get, next, next);
      }
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, start + (next - 1) * intervalMs - performance.now())),
      );
    }
    if (!options.signal?.aborted) await new Promise((resolve) => setTimeout(resolve, graceMs));
    // The window ends one interval after the last request: when the next one would have left.
    const end = lastSent + intervalMs;
    const summary = summarizeProbe(sentAt, repliedAt, start, end);
    const result: ProbeResult = {
      target: `${options.target.host}:${options.target.port}`,
      intervalMs,
      durationMs: end - start,
      ...summary,
      socketErrors,
      arrivalsMs: [...repliedAt.values()].sort((a, b) => a - b),
      timeOriginMs: performance.timeOrigin,
      timeline: [...sentAt].map(([id, at]) => {
        const replied = repliedAt.get(id);
        return { sentAt: performance.timeOrigin + at, latencyMs: replied === undefined ? null : replied - at };
      }),
    };
    if (options.writes && !options.signal?.aborted) {
      // Read back in small windows, each waited for: a burst of thousands of GETs would only
      // overflow the VM's receive ring and make writes look lost. A key whose GET went
      // unanswered is asked again (up to READ_BACK_PASSES times); an answer is final.
      for (let pass = 0; pass < READ_BACK_PASSES; pass++) {
        const unanswered = [...acknowledged].filter((key) => !readBack.has(key));
        if (unanswered.length === 0) break;
        for (let i = 0; i < unanswered.length; i += READ_BACK_WINDOW) {
          const window = unanswered.slice(i, i + READ_BACK_WINDOW);
          for (const key of window) send(KvOp.Get, READ_BACK_ID, key);
          const deadline = performance.now() + graceMs;
          while (window.some((key) => !readBack.has(key)) && performance.now() < deadline) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, deadline - performance.now());
              readBackArrived = () => {
                clearTimeout(timer);
                resolve();
              };
            });
          }
          readBackArrived = undefined;
        }
      }
      const lostWrites = [...acknowledged].filter((key) => readBack.get(key) !== valueOf(key)).length;
      result.writes = { acknowledged: acknowledged.size, lostWrites };
    }
    return result;
  } finally {
    socket.close();
  }
}
