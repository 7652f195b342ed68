/**
 * `livemig probe` against a real UDP socket on loopback that nobody serves: every request is
 * lost, the network downtime is the whole run, and it is a report — not a crash — with exit
 * status 1 (nothing answered).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, stopAll } from '../helpers/processes.ts';
import { freeUdpPort } from '../helpers/udp.ts';

afterEach(stopAll);

describe('livemig probe', () => {
  it('an address nobody serves: total loss, downtime = the whole run, the report, then ERR_CONNECTION and exit 1', async () => {
    const port = await freeUdpPort();
    const result = await runCli([
      'probe',
      '--target',
      `127.0.0.1:${port}`,
      '--interval',
      '5ms',
      '--duration',
      '500ms',
      '--writes',
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/^livemig: ERR_CONNECTION: no reply from 127\.0\.0\.1:\d+: all \d+ requests lost/);
    const report = JSON.parse(result.stdout) as {
      sent: number;
      replies: number;
      lostReplies: number;
      networkDowntimeMs: number;
      writes: { acknowledged: number; lostWrites: number };
    };
    expect(report.sent).toBeGreaterThanOrEqual(90);
    expect(report.replies).toBe(0);
    expect(report.lostReplies).toBe(report.sent);
    expect(report.networkDowntimeMs).toBeGreaterThanOrEqual(500);
    expect(report.writes).toEqual({ acknowledged: 0, lostWrites: 0 });
  });

  it('rejects a bad target with exit status 2', async () => {
    const result = await runCli(['probe', '--target', 'nowhere']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/HOST:PORT/);
  });
});
