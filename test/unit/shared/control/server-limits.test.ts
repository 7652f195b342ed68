/**
 * The control server's availability limits, on a real ControlServer on loopback: a per-client
 * token bucket (over it: ERR_RATE_LIMITED, the connection stays up and is not read until its
 * next token; a client that keeps sending while refused is disconnected), and a cap on
 * connected clients (beyond it: HTTP 503, which the client reports as ERR_TOO_MANY_CLIENTS).
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { MigrationError } from '@livemig/shared';
import { ControlClient, type CommandHandlers } from '@livemig/shared/control';
import { useControlServers } from '../../../helpers/control-server.ts';
import { waitUntil } from '../../../helpers/wait.ts';

let handled = 0;
const handlers: CommandHandlers = {
  'query-vms': () => {
    handled += 1;
    return { vms: [] };
  },
};

const { start, connect, track } = useControlServers(handlers);

/** The request's error code, or 'ok'. */
function outcome(client: ControlClient): Promise<string> {
  return client.request('query-vms', {}).then(
    () => 'ok',
    (error: MigrationError) => error.code,
  );
}

describe('ControlServer rate limit', () => {
  it('answers a request over the rate ERR_RATE_LIMITED and keeps the connection up', async () => {
    const client = await connect(await start({ rateLimit: { ratePerSec: 10, burst: 3 } }));
    handled = 0;
    const first = await Promise.all([outcome(client), outcome(client), outcome(client), outcome(client)]);
    expect(first).toEqual(['ok', 'ok', 'ok', 'ERR_RATE_LIMITED']);
    expect(handled).toBe(3); // the refused request never reached its handler
    // Same connection, once a token is back (100 ms at 10/s).
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(await outcome(client)).toBe('ok');
  });

  it('slows a client that retries at once to the rate, without disconnecting it', async () => {
    const client = await connect(await start({ rateLimit: { ratePerSec: 40, burst: 4 } }));
    const counts = { ok: 0, refused: 0 };
    const began = performance.now();
    while (performance.now() - began < 500) {
      if ((await outcome(client)) === 'ok') counts.ok += 1;
      else counts.refused += 1;
    }
    const seconds = (performance.now() - began) / 1000;
    // The burst, then 40/s; and each refusal pauses the client until its next token, so it is
    // refused about as often as served — not thousands of times.
    expect(counts.ok).toBeLessThanOrEqual(4 + Math.ceil(40 * seconds) + 1);
    expect(counts.ok).toBeGreaterThanOrEqual(4 + Math.floor(40 * 0.5 * 0.5));
    expect(counts.refused).toBeLessThanOrEqual(counts.ok + 2);
    expect(await outcome(client).then(() => 'still connected')).toBe('still connected');
  });

  it('disconnects a client that keeps sending while refused (1008); others are served', async () => {
    const url = await start({ rateLimit: { ratePerSec: 10, burst: 5 } });
    const other = await connect(url);
    const flooder = new WebSocket(url);
    await new Promise((resolve, reject) => flooder.once('open', resolve).once('error', reject));
    const closed = new Promise<number>((resolve) => flooder.once('close', (code) => resolve(code)));
    let refused = 0;
    flooder.on('message', (data) => {
      if ((JSON.parse(String(data)) as { error?: { code: string } }).error?.code === 'ERR_RATE_LIMITED') refused += 1;
    });
    for (let id = 1; id <= 500; id++) flooder.send(JSON.stringify({ id, command: 'query-vms' }));
    expect(await closed).toBe(1008);
    // Each pause answers at most burst + 1 refusals before the close; on a busy machine a pause can
    // end (its token due) before the next of the 500 arrives, so a few pauses may pass — still a
    // handful of answers, never one per request sent.
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThanOrEqual(5 * (5 + 1));
    expect(await outcome(other)).toBe('ok');
  });
});

describe('ControlServer client cap', () => {
  it('refuses a connection beyond maxClients with 503 (ERR_TOO_MANY_CLIENTS); a slot frees when a client leaves', async () => {
    const url = await start({ maxClients: 2 });
    const [a] = await Promise.all([connect(url), connect(url)]);
    const refused = await ControlClient.connect(url).then(
      () => undefined,
      (error: MigrationError) => error,
    );
    expect(refused?.code).toBe('ERR_TOO_MANY_CLIENTS');
    expect(refused?.message).toMatch(/503/);
    // The two connected are served as before.
    expect(await outcome(a!)).toBe('ok');
    a!.close();
    await waitUntil(
      () =>
        ControlClient.connect(url).then(
          (client) => (track(client), true),
          () => false,
        ),
      { what: 'a slot freed', intervalMs: 20 },
    );
  });

  it('refuses invalid limits at start (ERR_INVALID_ARGUMENT)', async () => {
    for (const options of [
      { maxClients: 0 },
      { maxClients: 1.5 },
      { rateLimit: { ratePerSec: 0, burst: 10 } },
      { rateLimit: { ratePerSec: 10, burst: 0 } },
    ]) {
      await expect(start(options), JSON.stringify(options)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
  });
});
