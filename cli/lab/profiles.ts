/**
 * Named link profiles (issue 6): what each host's link to the lab bridge should look like.
 * Rates are bytes per second; RTT is host ↔ host; loss is the fraction of packets dropped on
 * the way into each host.
 */
export interface LinkProfile {
  name: string;
  description: string;
  rateBps: number;
  rttMs: number;
  loss: number;
}

export const PROFILES: Readonly<Record<string, LinkProfile>> = {
  lan: { name: 'lan', description: '1 Gbit/s, 0.5 ms RTT, no loss', rateBps: 125e6, rttMs: 0.5, loss: 0 },
  wan: { name: 'wan', description: '100 Mbit/s, 40 ms RTT, 0.1% loss', rateBps: 12.5e6, rttMs: 40, loss: 0.001 },
  constrained: {
    name: 'constrained',
    description: '20 Mbit/s, 100 ms RTT, 1% loss',
    rateBps: 2.5e6,
    rttMs: 100,
    loss: 0.01,
  },
};
