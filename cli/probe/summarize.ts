/**
 * What a probe run means, from when requests left and replies came back: a pure function, so
 * the figures are tested on their own.
 *
 * Network downtime = the longest gap a client saw without any reply: between consecutive reply
 * arrivals, and also from the start to the first reply and from the last reply to the end of the
 * sending window (a service that never answers was down for the whole run). The grace period
 * spent waiting for late replies after that is not part of it. The papers' figure of merit.
 */
export interface ProbeSummary {
  sent: number;
  replies: number;
  lostReplies: number;
  networkDowntimeMs: number;
  /** When the longest gap began, ms after the start (-1 with no gap at all). */
  longestGapAtMs: number;
  latencyMs: { p50: number; p99: number; max: number } | null;
}

/**
 * @param sentAt request id → send time (ms)
 * @param repliedAt request id → reply arrival time (ms); ids never sent are ignored
 * @param startMs when probing started; @param endMs when sending ended (one interval after the last request)
 */
export function summarizeProbe(
  sentAt: ReadonlyMap<number, number>,
  repliedAt: ReadonlyMap<number, number>,
  startMs: number,
  endMs: number,
): ProbeSummary {
  const arrivals: number[] = [];
  const latencies: number[] = [];
  for (const [id, at] of repliedAt) {
    const sent = sentAt.get(id);
    if (sent === undefined) continue;
    arrivals.push(at);
    latencies.push(at - sent);
  }
  arrivals.sort((a, b) => a - b);
  let longestGap = 0;
  let longestGapAt = -1;
  let previous = startMs;
  for (const at of [...arrivals, endMs]) {
    if (at - previous > longestGap) {
      longestGap = at - previous;
      longestGapAt = previous - startMs;
    }
    previous = at;
  }
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return {
    sent: sentAt.size,
    replies: arrivals.length,
    lostReplies: sentAt.size - arrivals.length,
    networkDowntimeMs: longestGap,
    longestGapAtMs: longestGapAt,
    latencyMs: latencies.length ? { p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1]! } : null,
  };
}

/**
 * The longest gap between consecutive reply arrivals (sorted) that overlaps [from, to] — the
 * window in which the VM was stopped. A gap that merely touches it counts: the reply before
 * the pause and the first after the resume bound the outage a client saw.
 */
export function longestGapOverlapping(arrivals: readonly number[], from: number, to: number): number {
  let longest = 0;
  for (let i = 1; i < arrivals.length; i++) {
    const start = arrivals[i - 1]!;
    const end = arrivals[i]!;
    if (end >= from && start <= to) longest = Math.max(longest, end - start);
  }
  return longest;
}
