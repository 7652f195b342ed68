/**
 * Prometheus metrics (`--metrics HOST:PORT`) on real agents: scraped with a real HTTP client
 * (Node's fetch; https.request where a client certificate is needed) and parsed as the text
 * format by a strict parser (test/helpers/prometheus-text.ts), so the exposition itself is
 * checked — HELP and TYPE lines, sample lines, histograms — not only the figures.
 *
 * A migration between two secure agents (test/helpers/fleet.ts) moves the figures as it should:
 * the source counts a completed outgoing migration, more bytes sent than the VM has, one downtime
 * equal to its report's; the VM moves from one agent's `running` to the other's; post-copy faults
 * land in the destination's latency histogram, as the report's percentiles say. Also: without
 * --metrics no port is opened; a bad address is a usage error (exit 2), a busy port a coded
 * startup error (exit 1) that leaves nothing open; beyond loopback a plaintext agent refuses to
 * start and a secure one serves HTTPS to fleet certificates of role viewer and above only. The
 * endpoint's own bounds (GET /metrics only, no body, small headers, a connection cap, a request
 * deadline, the port closed on stop) are checked on a MetricsServer in this process.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MetricsServer } from '@livemig/agent';
import { silentLogger } from '@livemig/shared';
import { issueCertificate, loadPki, type LoadedPki } from '@livemig/shared/security';
import { parseVmSpec } from '@livemig/shared/vm';
import { useFleet, type FleetAgent } from '../helpers/fleet.ts';
import { freePort, listenOn, refused } from '../helpers/ports.ts';
import { runCli, startAgent, stopAll, vmArgs } from '../helpers/processes.ts';
import { histogram, parsePrometheusText, value, type MetricFamily } from '../helpers/prometheus-text.ts';
import { expectCompleted } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
afterEach(stopAll);

const METRICS = ['--metrics', '127.0.0.1:0'];

type Families = Map<string, MetricFamily>;

/** GET the agent's /metrics with Node's fetch and parse it (throws on an invalid exposition). */
async function scrape(agent: { metrics?: string }): Promise<Families> {
  const response = await fetch(agent.metrics!);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheusText(await response.text());
}

function vmsByState(families: Families): Record<string, number | undefined> {
  const states = ['running', 'paused', 'migrating-out', 'incoming', 'migrated'];
  return Object.fromEntries(states.map((state) => [state, value(families, 'livemig_vms', { state })]));
}

const completed = (direction: string, mode: string) => ({ direction, mode, outcome: 'completed' });

describe('a migration between two agents, as their metrics show it', () => {
  it('pre-copy: migration counted, bytes, the downtime of the report, the VM moved, dirty rates', async () => {
    const spec = parseVmSpec({ memory: '64MiB', init: 'random', workload: 'uniform:rate=2000', seed: 3 });
    const [source, dest] = await Promise.all([
      fleet.agent({ args: [...vmArgs('vm', spec), ...METRICS] }),
      fleet.agent({ args: METRICS }),
    ]);
    expect(source.metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    const before = await scrape(source);
    // The exposition: every livemig family has HELP and TYPE; prom-client's process metrics are there.
    for (const [name, family] of before) {
      if (name.startsWith('livemig_')) expect(family.help, name).toBeTruthy();
    }
    expect(before.get('livemig_migrations_total')?.type).toBe('counter');
    expect(before.get('livemig_migration_downtime_seconds')?.type).toBe('histogram');
    expect(before.get('livemig_vms')?.type).toBe('gauge');
    expect(before.get('process_cpu_user_seconds_total')?.type).toBe('counter');
    expect(before.get('nodejs_heap_size_used_bytes')?.type).toBe('gauge');
    expect(value(before, 'livemig_migrations_total', completed('outgoing', 'precopy'))).toBe(0);
    expect(vmsByState(before)).toMatchObject({ running: 1, migrated: 0 });
    expect(vmsByState(await scrape(dest))).toMatchObject({ running: 0, migrated: 0 });
    const hosted = value(before, 'livemig_guest_memory_bytes', { use: 'hosted' })!;
    expect(hosted).toBeGreaterThan(spec.memoryBytes);
    expect(hosted).toBeLessThanOrEqual(value(before, 'livemig_guest_memory_budget_bytes')!);
    // The running VM's dirty rate, from harvests of its dirty log a second apart: 2000 writes/s
    // spread over 16384 pages touch nearly 2000 distinct pages a second.
    const rate = await waitUntil(
      async () => value(await scrape(source), 'livemig_vm_dirty_pages_per_second', { vm: 'vm' }),
      { what: "the source's first dirty rate of vm" },
    );
    expect(rate).toBeGreaterThan(1000);
    expect(rate).toBeLessThan(2500);

    const report = await fleet.migrate(source, dest, { vm: 'vm' });
    expectCompleted(report);

    const after = await scrape(source);
    expect(value(after, 'livemig_migrations_total', completed('outgoing', 'precopy'))).toBe(1);
    expect(value(after, 'livemig_migration_bytes_sent_total', { direction: 'outgoing' })).toBeGreaterThan(
      spec.memoryBytes,
    );
    const downtime = histogram(after, 'livemig_migration_downtime_seconds', { mode: 'precopy' });
    expect(downtime.count).toBe(1);
    expect(downtime.sum).toBeCloseTo(report.times.downtimeMs! / 1000, 9);
    expect(histogram(after, 'livemig_migration_downtime_seconds', { mode: 'postcopy' }).count).toBe(0);
    expect(vmsByState(after)).toMatchObject({ running: 0, 'migrating-out': 0, migrated: 1 });
    expect(value(after, 'livemig_guest_memory_bytes', { use: 'hosted' })).toBe(0);
    expect(value(after, 'livemig_vm_dirty_pages_per_second', { vm: 'vm' })).toBeUndefined();

    // The destination ends its side after the source's report (the record exchange): wait for it.
    const there = await waitUntil(
      async () => {
        const families = await scrape(dest);
        return value(families, 'livemig_migrations_total', completed('incoming', 'precopy')) === 1 && families;
      },
      { what: 'the destination counts its incoming migration' },
    );
    expect(value(there, 'livemig_migrations_total', completed('outgoing', 'precopy'))).toBe(0);
    expect(value(there, 'livemig_migration_bytes_received_total', { direction: 'incoming' })).toBeGreaterThan(
      spec.memoryBytes,
    );
    expect(histogram(there, 'livemig_migration_downtime_seconds', { mode: 'precopy' }).count).toBe(0);
    expect(vmsByState(there)).toMatchObject({ running: 1, incoming: 0, migrated: 0 });
    expect(value(there, 'livemig_guest_memory_bytes', { use: 'hosted' })).toBe(hosted);
    await waitUntil(async () => value(await scrape(dest), 'livemig_vm_dirty_pages_per_second', { vm: 'vm' }), {
      what: "the destination's first dirty rate of vm",
    });
  });

  it("post-copy: every fault's latency in the destination's histogram, as the report's percentiles say", async () => {
    const spec = parseVmSpec({ memory: '32MiB', init: 'mixed:0.5', workload: 'uniform:rate=20000', seed: 21 });
    const [source, dest] = await Promise.all([
      fleet.agent({ args: [...vmArgs('vm', spec), ...METRICS] }),
      fleet.agent({ args: METRICS }),
    ]);
    const report = await fleet.migrate(source, dest, { vm: 'vm', mode: 'postcopy' });
    expectCompleted(report);
    const pc = report.postcopy!;
    expect(pc.faults, 'the guest faulted during post-copy').toBeGreaterThan(0);
    const onSource = await scrape(source);
    expect(value(onSource, 'livemig_migrations_total', completed('outgoing', 'postcopy'))).toBe(1);
    expect(histogram(onSource, 'livemig_postcopy_fault_latency_seconds').count).toBe(0);
    const downtime = histogram(onSource, 'livemig_migration_downtime_seconds', { mode: 'postcopy' });
    expect(downtime.count).toBe(1);
    expect(downtime.sum).toBeCloseTo(report.times.downtimeMs! / 1000, 9);

    const onDest = await waitUntil(
      async () => {
        const families = await scrape(dest);
        return value(families, 'livemig_migrations_total', completed('incoming', 'postcopy')) === 1 && families;
      },
      { what: 'the destination counts its incoming migration' },
    );
    // One sample per fault, vCPU blocked → page installed: the samples the report's percentiles
    // were computed from, and those of faults noticed after it was made (the vCPU reports a fault
    // through shared memory; the agent may read it after the last page went in).
    const latency = histogram(onDest, 'livemig_postcopy_fault_latency_seconds');
    expect(latency.count).toBeGreaterThan(0);
    // The report's max is one of the samples: some sample lies beyond the buckets below it.
    const maxS = pc.faultLatencyMs!.max / 1000;
    const below = latency.buckets.filter((b) => b.le < maxS).at(-1)?.count ?? 0;
    expect(below).toBeLessThan(latency.count);
    expect(latency.sum).toBeGreaterThanOrEqual(maxS);
  });
});

/** The TCP ports process `pid` listens on (from /proc: its socket inodes in the LISTEN state). */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode) inodes.add(inode);
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is fields[1] (HEX_IP:HEX_PORT), st fields[3] (0A = LISTEN), inode fields[9].
      if (fields[3] === '0A' && inodes.has(fields[9]!)) ports.push(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

function portOf(address: string): number {
  return Number(/:(\d+)(?:\/|$)/.exec(address)![1]);
}

describe('--metrics: off by default; bad input, a busy port and plaintext beyond loopback refused', () => {
  it('without --metrics no metrics port is opened; with it, exactly one more', async () => {
    const [without, withMetrics] = await Promise.all([fleet.agent(), fleet.agent({ args: METRICS })]);
    expect(without.metrics).toBeUndefined();
    const ports = (agent: FleetAgent): number[] =>
      [agent.control, agent.listen, ...(agent.metrics ? [agent.metrics] : [])].map(portOf).sort((a, b) => a - b);
    expect(await listeningPorts(without.child.pid!)).toEqual(ports(without));
    expect(await listeningPorts(withMetrics.child.pid!)).toEqual(ports(withMetrics));
    expect(ports(withMetrics)).toHaveLength(3);
  });

  it('a bad address is a usage error: `livemig: ERR_INVALID_ARGUMENT: --metrics: …`, exit 2', async () => {
    const run = await runCli(['agent', '--control', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--metrics', 'nowhere']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --metrics: bad address "nowhere": expected HOST:PORT/);
    expect(run.stdout).toBe('');
  });

  it('a busy port: ERR_ADDRESS_IN_USE, exit 1, the control and data ports it had bound closed again', async () => {
    const busy = net.createServer();
    const port = await listenOn(busy);
    try {
      const [control, data] = await Promise.all([freePort(), freePort()]);
      const ports = ['--control', `127.0.0.1:${control}`, '--listen', `127.0.0.1:${data}`];
      const run = await runCli(['agent', ...ports, '--metrics', `127.0.0.1:${port}`], { timeoutMs: 30_000 });
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toMatch(
        new RegExp(
          `^livemig: ERR_ADDRESS_IN_USE: the metrics endpoint cannot listen on 127\\.0\\.0\\.1:${port}: another process`,
          'm',
        ),
      );
      expect(run.stdout).not.toContain('"event":"ready"');
      expect(await refused(control)).toBe(true);
      expect(await refused(data)).toBe(true);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });

  it('plaintext beyond loopback: ERR_INSECURE (exit 2) without --insecure; with it, served and warned about', async () => {
    const run = await runCli([
      'agent',
      '--control',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1:0',
      '--metrics',
      '0.0.0.0:0',
    ]);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/^livemig: ERR_INSECURE: refusing plaintext beyond loopback \(metrics 0\.0\.0\.0:0\)/m);

    const insecure = await startAgent('agent', ['--metrics', '0.0.0.0:0', '--insecure']);
    expect(insecure.metrics).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/metrics$/);
    const families = await scrape({ metrics: `http://127.0.0.1:${portOf(insecure.metrics!)}/metrics` });
    expect(families.has('livemig_vms')).toBe(true);
    expect(insecure.logs()).toMatch(/INSECURE: plaintext beyond loopback/);
    await waitUntil(() => /"port":"metrics".*INSECURE: plaintext connection/.test(insecure.logs()), {
      what: 'the scrape warned about',
    });
  });
});

describe('a secure agent beyond loopback: HTTPS, fleet client certificates of role viewer and above', () => {
  let viewer: LoadedPki;
  beforeAll(async () => {
    await issueCertificate(fleet.pkiDir, { name: 'prometheus', role: 'viewer' });
    viewer = await loadPki(fleet.pkiDir, 'prometheus');
  });

  /** GET /metrics over TLS as `client` (none: no client certificate), checking the agent's name. */
  function httpsGet(
    agent: FleetAgent,
    client: LoadedPki | undefined,
  ): Promise<{ status: number; body: string } | { error: string }> {
    const port = portOf(agent.metrics!);
    return new Promise((resolve) => {
      const request = https.get(
        {
          host: '127.0.0.1',
          port,
          path: '/metrics',
          ca: viewer.ca,
          ...(client ? { cert: client.cert, key: client.key } : {}),
          checkServerIdentity: (_host, cert) => tls.checkServerIdentity(agent.name, cert),
          agent: false,
        },
        (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode!, body }));
        },
      );
      request.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    });
  }

  it('a viewer scrapes; an agent certificate gets 403; no certificate, no TLS session', async () => {
    const agent = await fleet.agent({ args: ['--metrics', '0.0.0.0:0'] });
    const agentCredentials = await loadPki(fleet.pkiDir, agent.name);
    expect(agent.metrics).toMatch(/^https:\/\/0\.0\.0\.0:\d+\/metrics$/);
    const asViewer = await httpsGet(agent, viewer);
    expect(asViewer).toMatchObject({ status: 200 });
    expect(parsePrometheusText((asViewer as { body: string }).body).has('livemig_migrations_total')).toBe(true);
    const asAgent = await httpsGet(agent, agentCredentials);
    expect(asAgent).toMatchObject({ status: 403, body: expect.stringMatching(/role agent may not read metrics/) });
    const anonymous = await httpsGet(agent, undefined);
    expect(anonymous).toHaveProperty('error');
    // Plain HTTP on that port is not served either.
    const plain = await fetch(`http://127.0.0.1:${portOf(agent.metrics!)}/metrics`).catch((error: unknown) => error);
    expect(plain).toBeInstanceOf(Error);
  });
});

describe("the endpoint's bounds (a MetricsServer in this process)", () => {
  let server: MetricsServer;
  let base: string;
  beforeAll(async () => {
    server = await MetricsServer.start(
      { host: '127.0.0.1', port: 0, logger: silentLogger(), maxConnections: 2, requestTimeoutMs: 500 },
      () =>
        Promise.resolve({ contentType: 'text/plain; version=0.0.4; charset=utf-8', text: '# TYPE up gauge\nup 1\n' }),
    );
    base = `http://127.0.0.1:${server.address().port}`;
  });
  afterAll(() => server.close());

  /** Send `request` raw, resolve with everything the server wrote before it closed. */
  function raw(request: string, options: { end?: boolean } = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: server.address().port });
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (answer += chunk));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
      socket.write(request);
      if (options.end !== false) socket.end();
    });
  }

  it('GET /metrics only: other paths 404, other methods 405, a body 400', async () => {
    const ok = await fetch(`${base}/metrics`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('# TYPE up gauge\nup 1\n');
    const notFound = await fetch(`${base}/`);
    expect(notFound.status).toBe(404);
    await notFound.text();
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(400); // the body is refused before the method is looked at
    await post.text();
    const del = await fetch(`${base}/metrics`, { method: 'DELETE' });
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('GET');
    await del.text();
  });

  it('headers over 8 KiB: 431; headers that do not finish within the deadline: 408', async () => {
    const big = await raw(`GET /metrics HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(9000)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    const started = performance.now();
    const slow = await raw('GET /metrics HTTP/1.1\r\nhost: x\r\n', { end: false });
    expect(slow).toMatch(/^HTTP\/1\.1 408 /);
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('at most maxConnections at once: one more is dropped, and served again once one closes', async () => {
    const open = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<net.Socket>((resolve) => {
            const socket = net.connect({ host: '127.0.0.1', port: server.address().port }, () => resolve(socket));
          }),
      ),
    );
    // Let the server count them before the third arrives.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await raw('GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')).toBe('');
    for (const socket of open) socket.destroy();
    await waitUntil(async () => (await fetch(`${base}/metrics`).then((r) => r.text())) === '# TYPE up gauge\nup 1\n', {
      what: 'served again',
    });
  });

  it('close() frees the port', async () => {
    const other = await MetricsServer.start({ host: '127.0.0.1', port: 0, logger: silentLogger() }, () =>
      Promise.resolve({ contentType: 'text/plain', text: '' }),
    );
    const { port } = other.address();
    const keepAlive = await fetch(`http://127.0.0.1:${port}/metrics`);
    await keepAlive.text();
    await other.close();
    expect(await refused(port)).toBe(true);
  });
});
