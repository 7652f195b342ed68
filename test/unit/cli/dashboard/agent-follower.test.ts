/**
 * The dashboard's agent connection against a stand-in agent (a real ControlServer on loopback
 * whose handlers the test sets): it finds a migration already running, polls it, polls at once on
 * MIGRATION_PASS, fetches a report once, survives the agent going away and coming back on the
 * same port (unreachable, then connected again), treats an agent that stops answering as gone,
 * shows a refused request without dropping the connection, and stops promptly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MigrationError, silentLogger } from '@livemig/shared';
import { ControlClient, ControlServer, type CommandHandlers, type MigrationInfo } from '@livemig/shared/control';
import { REPORT_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { AgentFollower } from '../../../../cli/dashboard/agent-follower.ts';
import { initialModel, reduce, type DashboardInput, type DashboardModel } from '../../../../cli/dashboard/model.ts';
import { waitUntil } from '../../../helpers/wait.ts';

const servers: ControlServer[] = [];
const followers: AgentFollower[] = [];
afterEach(async () => {
  await Promise.all(followers.splice(0).map((f) => f.stop()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function info(overrides: Partial<MigrationInfo> = {}): MigrationInfo {
  return {
    direction: 'outgoing',
    migrationId: 'm1',
    vm: 'vm1',
    mode: 'precopy',
    status: 'precopy',
    startedAt: 0,
    transferred: 1000,
    remaining: 9000,
    total: 10_000,
    duplicate: 0,
    normal: 0,
    dirtyPagesRate: null,
    mbps: null,
    dirtySyncCount: 1,
    cpuThrottlePercentage: 0,
    expectedDowntime: null,
    totalTime: 10,
    setupTime: 1,
    downtime: null,
    timeRemaining: null,
    passProgress: 0.1,
    pass: 0,
    postcopy: null,
    ...overrides,
  };
}

const report: MigrationReport = {
  schema: REPORT_SCHEMA,
  migrationId: 'm1',
  agents: { source: 'a', dest: 'b' },
  mode: 'precopy',
  outcome: 'completed',
  error: null,
  vm: { name: 'vm1', memoryBytes: 10_000, pageSize: 4096, workload: 'idle' },
  times: { startedAt: '', endedAt: '', totalMs: 123, downtimeMs: 4, setupMs: 1 },
  bytes: { wire: 11_000, pagePayload: 10_000 },
  pages: { total: 3, sent: 3, zero: 0, resent: 0, faulted: 0 },
  rounds: [],
  verify: { sourceDigest: null, destDigest: null, match: null },
  network: null,
  security: null,
};

/** A stand-in agent: its handlers, and every request it was sent. */
async function agent(handlers: CommandHandlers, port = 0) {
  const asked: Array<{ command: string; args: unknown }> = [];
  const recorded: CommandHandlers = {};
  for (const [command, handler] of Object.entries(handlers)) {
    (recorded as Record<string, unknown>)[command] = (args: unknown, context: unknown) => {
      asked.push({ command, args });
      return (handler as (a: unknown, c: unknown) => unknown)(args, context);
    };
  }
  const server = await ControlServer.start({ host: '127.0.0.1', port, logger: silentLogger() }, recorded);
  servers.push(server);
  return { server, asked, url: `ws://127.0.0.1:${server.address().port}`, port: server.address().port };
}

/** A follower of `url` feeding a real model; every input it dispatched. */
function follower(url: string, options: { pollMs?: number; requestTimeoutMs?: number } = {}) {
  let model: DashboardModel = initialModel(url, 0);
  const inputs: DashboardInput[] = [];
  const f = new AgentFollower({
    connect: () => ControlClient.connect(url, { timeoutMs: 1000 }),
    dispatch: (input) => {
      inputs.push(input);
      model = reduce(model, input);
    },
    model: () => model,
    pollMs: options.pollMs ?? 50,
    requestTimeoutMs: options.requestTimeoutMs ?? 2000,
    backoff: () => 50,
  });
  followers.push(f);
  f.start();
  return { follower: f, inputs, model: () => model };
}

describe('AgentFollower', () => {
  it('finds a migration in progress, polls it by id until it ends, then fetches its report once', async () => {
    let current = info();
    const a = await agent({
      'query-migrate': ({ migrationId }) => (migrationId === undefined || migrationId === 'm1' ? current : null),
      'query-report': ({ migrationId }) => (migrationId === 'm1' && current.status === 'completed' ? report : null),
    });
    const f = follower(a.url);
    await waitUntil(() => f.model().agent.state === 'connected', { what: 'connected' });
    await waitUntil(
      () => a.asked.filter((r) => (r.args as { migrationId?: string }).migrationId === 'm1').length >= 3,
      {
        what: 'polls by id',
      },
    );
    expect(a.asked[0]).toEqual({ command: 'query-migrate', args: {} });
    current = info({ transferred: 5000, pass: 1 });
    await waitUntil(() => f.model().migrations[0]?.roundMarks.at(-1)?.pass === 1, { what: 'the new figures' });
    current = info({ transferred: 10_000, status: 'completed' });
    await waitUntil(() => f.model().migrations[0]?.report?.totalMs === 123, { what: 'the report' });
    const polls = a.asked.length;
    // Nothing in flight: no more requests (a report is asked for once).
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(a.asked.length).toBe(polls);
    expect(a.asked.filter((r) => r.command === 'query-report')).toHaveLength(1);
  });

  it('polls at once when a round ends (MIGRATION_PASS), not at the next interval', async () => {
    const a = await agent({ 'query-migrate': () => info() });
    const f = follower(a.url, { pollMs: 60_000 });
    await waitUntil(() => f.model().migrations.length === 1, { what: 'the migration found' });
    await waitUntil(() => a.asked.length >= 2, { what: 'the first poll by id' });
    const before = a.asked.length;
    a.server.emit('MIGRATION_PASS', { migrationId: 'm1', pass: 1 });
    await waitUntil(() => a.asked.length > before, { what: 'a poll right after the event', timeoutMs: 2000 });
    expect(f.model().migrations[0]!.passesDone).toBe(1);
  });

  it('the agent goes away: unreachable with why and when it retries; back on the same port: connected again', async () => {
    const a = await agent({ 'query-migrate': () => null });
    const f = follower(a.url);
    await waitUntil(() => f.model().agent.state === 'connected', { what: 'connected' });
    await a.server.close();
    servers.splice(servers.indexOf(a.server), 1);
    await waitUntil(() => f.model().agent.state === 'unreachable', { what: 'unreachable' });
    const link = f.model().agent;
    expect(link.error).toMatch(/^ERR_CONNECTION: /);
    expect(link.retryAt).toBeGreaterThan(link.since);
    // Still down at the next attempts: it says so and keeps trying.
    await waitUntil(() => f.inputs.filter((i) => i.type === 'unreachable').length >= 3, { what: 'retries' });
    expect(f.model().agent.error).toMatch(/ECONNREFUSED/);
    await agent({ 'query-migrate': () => null }, a.port);
    await waitUntil(() => f.model().agent.state === 'connected', { what: 'connected again' });
  });

  it('an agent that stops answering is treated as gone: ERR_TIMEOUT, then a new connection', async () => {
    let answer = true;
    const a = await agent({
      'query-migrate': () => (answer ? info() : new Promise<never>(() => {})),
    });
    const f = follower(a.url, { requestTimeoutMs: 200 });
    await waitUntil(() => f.model().migrations.length === 1, { what: 'the migration found' });
    answer = false;
    await waitUntil(() => f.model().agent.state === 'unreachable', { what: 'given up on' });
    expect(f.model().agent.error).toMatch(/^ERR_TIMEOUT: the agent did not answer query-migrate within 200 ms/);
    answer = true;
    await waitUntil(() => f.model().agent.state === 'connected', { what: 'connected again' });
  });

  it('a refused request is shown and the connection kept; a migration the agent forgot is marked lost', async () => {
    let refuse = true;
    const a = await agent({
      'query-migrate': ({ migrationId }) => {
        if (migrationId === undefined) return info();
        if (refuse) throw new MigrationError('ERR_FORBIDDEN', 'role viewer may not');
        return null;
      },
    });
    const f = follower(a.url);
    await waitUntil(() => f.model().agent.error?.startsWith('ERR_FORBIDDEN'), { what: 'the refusal shown' });
    expect(f.model().agent.state).toBe('connected');
    refuse = false;
    await waitUntil(() => f.model().migrations[0]?.lost, { what: 'marked lost' });
    expect(f.inputs.filter((i) => i.type === 'connected')).toHaveLength(1);
  });

  it('stop() ends it promptly, connected or waiting to retry', async () => {
    const a = await agent({ 'query-migrate': () => null });
    const connected = follower(a.url);
    await waitUntil(() => connected.model().agent.state === 'connected', { what: 'connected' });
    const nowhere = follower('ws://127.0.0.1:1');
    await waitUntil(() => nowhere.model().agent.state === 'unreachable', { what: 'unreachable' });
    const started = performance.now();
    await Promise.all([connected.follower.stop(), nowhere.follower.stop()]);
    expect(performance.now() - started).toBeLessThan(1000);
    const inputs = connected.inputs.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(connected.inputs.length).toBe(inputs);
  });
});
