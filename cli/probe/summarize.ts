/**
 * What a probe run means, from when requests left and replies came back: a pure function, so
 * the figures are tested on their own.
 *
 * Network downtime = the longest gap a client saw without any reply: between consecutive reply
 * arrivals, and also from the start to the first reply and from the last reply to the end (a
 * service that never answers was down for the whole run). The papers' figure of merit.
 */
export interface ProbeSummary {
  sent: number;
  replies: number;
  lostReplies: number;
  networkDowntimeMs: number;
  latencyMs: { p50: number; p99: number; max: number } | null;
}

/**
 * @param sentAt request id → send time (ms)
 * @param repliedAt request id → reply arrival time (ms); ids never sent are ignored
 * @param startMs when probing started; @param endMs when it stopped waiting for replies
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
  let previous = startMs;
  for (const at of [...arrivals, endMs]) {
    longestGap = Math.max(longestGap, at - previous);
    previous = at;
  }
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return {
    sent: sentAt.size,
    replies: arrivals.length,
    lostReplies: sentAt.size - arrivals.length,
    networkDowntimeMs: longestGap,
    latencyMs: latencies.length ? { p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1]! } : null,
  };
}
