/**
 * docker-compose.yml, run without Docker: every service's entrypoint and command are read from
 * the file (never copied here, so the two cannot drift) and run the way the containers would,
 * with these stand-ins for what Docker provides:
 *
 *   container            → a network namespace of a Lab whose hosts are the service names, each
 *                          with an eth0 on one bridge; the names resolve everywhere through
 *                          /etc/netns/<ns>/hosts, as they do on compose's network;
 *   image's /app         → this repo: `/app` in the entrypoint and command becomes the repo root,
 *                          and every process runs with cwd = the repo root (working_dir /app);
 *   ${VAR:-default}, $$  → interpolated from process.env, as compose does from its shell (so
 *                          `LINK_PROFILE=wan npx vitest run …` tries another profile);
 *   environment          → merged over process.env;
 *   depends_on           → start order only, no readiness wait (compose's service_started):
 *                          `migrate --wait` must ride out agents that are still starting;
 *   cap_add NET_ADMIN    → we are root.
 *
 * Then the one-shot `migrate` must print exactly one report: completed, digests matching, and
 * the VM must run on the destination. The file's shape is checked without root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ControlClient } from '@livemig/shared/control';
import { REPORT_JSON_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { REPO_ROOT } from '../../cli/agent-process.ts';
import { Lab, labUnavailable } from '../../cli/lab/topology.ts';
import { describeWhenAvailable } from '../helpers/prerequisites.ts';
import { expectCompleted } from '../helpers/report.ts';

const ROOT = REPO_ROOT.replace(/\/$/, '');
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
/** The image's working directory, where the Dockerfile puts the repo. */
const CONTAINER_ROOT = '/app';
/** Services that keep running; the others are one-shots that must exit 0. */
const AGENTS = ['dest', 'source'];
const MIGRATE_TIMEOUT_MS = 75_000;

interface ComposeService {
  entrypoint?: unknown;
  command?: unknown;
  environment?: Record<string, string | number | boolean | null> | string[];
  cap_add?: string[];
  depends_on?: string[] | Record<string, unknown>;
  working_dir?: string;
}

interface ComposeFile {
  services: Record<string, ComposeService>;
}

/** The compose file, parsed (with `<<` merge keys) and interpolated from `env`. */
function loadCompose(env: NodeJS.ProcessEnv = process.env): ComposeFile {
  const raw: unknown = parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true });
  return interpolate(raw, env) as ComposeFile;
}

/** Compose's interpolation of every string: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}. */
function interpolate(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === 'string') {
    return value.replace(
      /\$(?:(\$)|\{([A-Za-z_]\w*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_]\w*))/g,
      (_match, dollar?: string, braced?: string, op?: string, operand?: string, bare?: string) => {
        if (dollar) return '$';
        const set = env[(braced ?? bare)!];
        if (op === ':-') return set ? set : operand!;
        if (op === '-') return set ?? operand!;
        if (op) throw new Error(`the test does not interpolate "\${${braced}${op}…}" yet: ${value}`);
        return set ?? '';
      },
    );
  }
  if (Array.isArray(value)) return value.map((item) => interpolate(item, env));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, env)]));
  }
  return value;
}

/** An entrypoint or command: lists only, so what runs here is exactly the argv Docker runs. */
function argvOf(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new Error(`${what} must be a list of strings in docker-compose.yml, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A container path → the same path in this repo (only /app and below are mapped). */
function fromContainer(text: string): string {
  return text.replace(/(^|[\s='"])\/app(?=$|[\s/'"])/g, `$1${ROOT}`);
}

function environmentOf(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  const entries = Array.isArray(env)
    ? env.map((item) => {
        const at = item.indexOf('=');
        return at < 0 ? [item, null] : [item.slice(0, at), item.slice(at + 1)];
      })
    : Object.entries(env);
  // A key without a value passes the outer environment's through: nothing to merge.
  return Object.fromEntries(entries.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [k, String(v)]));
}

function dependsOn(service: ComposeService): string[] {
  const deps = service.depends_on ?? [];
  return Array.isArray(deps) ? deps : Object.keys(deps);
}

/** Service names, each after the services it depends on. */
function startOrder(compose: ComposeFile): string[] {
  const order: string[] = [];
  const visit = (name: string, path: string[]): void => {
    if (order.includes(name)) return;
    if (path.includes(name)) throw new Error(`depends_on cycle: ${[...path, name].join(' → ')}`);
    const service = compose.services[name];
    if (!service) throw new Error(`depends_on names an unknown service "${name}"`);
    for (const dep of dependsOn(service)) visit(dep, [...path, name]);
    order.push(name);
  };
  for (const name of Object.keys(compose.services)) visit(name, []);
  return order;
}

/** The port of `--control HOST:PORT` in a command. */
function controlPort(command: string[]): number {
  const at = command.indexOf('--control');
  const port = Number(command[at + 1]?.split(':').pop());
  if (at < 0 || !Number.isInteger(port)) throw new Error(`no --control HOST:PORT in ${command.join(' ')}`);
  return port;
}

interface RunningService {
  name: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ name: string; code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();
let lab: Lab | undefined;

/** Run one service as its container would, in its namespace of the lab. */
function startService(l: Lab, name: string, service: ComposeService): RunningService {
  expect(service.working_dir ?? CONTAINER_ROOT).toBe(CONTAINER_ROOT);
  const argv = [...argvOf(service.entrypoint, `${name}.entrypoint`), ...argvOf(service.command, `${name}.command`)];
  const [command, ...args] = [...l.wrap(name), ...argv.map(fromContainer)] as [string, ...string[]];
  // Its own process group, so the kill below also takes whatever the entrypoint started.
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...environmentOf(service) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ name: string; code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ name, code, signal })),
  );
  return { name, child, stdout: () => stdout, stderr: () => stderr, exited };
}

function killAll(): Promise<unknown> {
  const waits = [...children].map((child) => {
    children.delete(child);
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return undefined;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
    return gone;
  });
  return Promise.all(waits);
}

afterEach(async () => {
  try {
    await killAll();
  } finally {
    lab?.destroy();
    lab = undefined;
  }
});

describe('docker-compose.yml', () => {
  const compose = loadCompose();

  it('has dest, source and a one-shot migrate that depends on both', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['dest', 'migrate', 'source']);
    expect(dependsOn(compose.services.migrate!).sort()).toEqual(['dest', 'source']);
  });

  it.each(['dest', 'source', 'migrate'])('%s: NET_ADMIN, LINK_PROFILE, the entrypoint, a list command', (name) => {
    const service = compose.services[name]!;
    expect(service.cap_add).toContain('NET_ADMIN');
    expect(['lan', 'wan', 'constrained', 'none']).toContain(environmentOf(service).LINK_PROFILE);
    expect(() => argvOf(service.command, 'command')).not.toThrow();
    // The compose file and the Dockerfile name the same entrypoint.
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
    expect(entrypoint, 'the Dockerfile has an ENTRYPOINT in exec form').toBeDefined();
    expect(argvOf(service.entrypoint, 'entrypoint')).toEqual(JSON.parse(entrypoint!));
  });

  it('agents listen on 0.0.0.0; migrate waits, addresses them by service name and prints JSON', () => {
    const dest = argvOf(compose.services.dest!.command, 'command');
    expect(dest.join(' ')).toMatch(/--listen 0\.0\.0\.0:7070 .*--control 0\.0\.0\.0:7071/);
    expect(argvOf(compose.services.source!.command, 'command').join(' ')).toContain('--control 0.0.0.0:7171');
    const migrate = argvOf(compose.services.migrate!.command, 'command').join(' ');
    for (const part of ['--wait 60s', '--control ws://source:7171', '--to dest:7070', '--json']) {
      expect(migrate).toContain(part);
    }
  });

  it('the source VM comes from VM_MEMORY, VM_INIT, VM_WORKLOAD and VM_SEED, with defaults', () => {
    const env = environmentOf(compose.services.source!);
    const command = argvOf(compose.services.source!.command, 'command').join(' ');
    for (const name of ['VM_MEMORY', 'VM_INIT', 'VM_WORKLOAD', 'VM_SEED']) {
      expect(env[name], name).toBeTruthy();
      expect(command).toContain(`$${name}`);
    }
    const overridden = loadCompose({ VM_MEMORY: '64MiB' });
    expect(environmentOf(overridden.services.source!).VM_MEMORY).toBe('64MiB');
  });
});

/** The scenarios: the file's defaults, and a kv VM with its own address (VM_NIC) on the compose network. */
const SCENARIOS: [string, (l: Lab) => NodeJS.ProcessEnv][] = [
  ['the default VM', () => ({})],
  [
    'a kv VM whose address follows it',
    (l) => ({ VM_WORKLOAD: 'kv', VM_MEMORY: '64MiB', VM_NIC: `${l.vmAddress()}:7700` }),
  ],
];

describeWhenAvailable('docker-compose.yml in network namespaces, one per service', labUnavailable(), () => {
  it.each(SCENARIOS)(
    '%s: dest and source start, migrate waits for them, migrates and prints a completed report',
    async (_name, scenario) => {
      lab = Lab.create(Object.keys(loadCompose().services));
      const env = scenario(lab);
      const compose = loadCompose({ ...process.env, ...env });
      const profile = environmentOf(compose.services.dest!).LINK_PROFILE;
      process.stdout.write(`[compose] LINK_PROFILE=${profile} ${JSON.stringify(env)}\n`);
      const running = new Map<string, RunningService>();
      for (const name of startOrder(compose)) running.set(name, startService(lab, name, compose.services[name]!));
      const migrate = running.get('migrate')!;
      const logs = (): string =>
        [...running.values()].map((s) => `--- ${s.name} stderr:\n${s.stderr()}\n--- stdout:\n${s.stdout()}`).join('\n');

      // migrate must end first: an agent that exits, or a migrate that hangs, fails the test.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<{ name: string; code: null; signal: null }>((resolve) => {
        timer = setTimeout(() => resolve({ name: 'timeout', code: null, signal: null }), MIGRATE_TIMEOUT_MS);
      });
      const first = await Promise.race([migrate.exited, ...AGENTS.map((a) => running.get(a)!.exited), timeout]);
      clearTimeout(timer);
      for (const service of running.values()) {
        for (const line of service.stderr().split('\n')) {
          if (/^(lab shape|livemig: waiting)/.test(line)) process.stdout.write(`[compose] ${service.name}: ${line}\n`);
        }
      }
      expect(first.name, logs()).toBe('migrate');
      expect(first.code, logs()).toBe(0);

      const lines = migrate.stdout().trim().split('\n');
      expect(lines, 'migrate --json prints exactly one line').toHaveLength(1);
      const report = JSON.parse(lines[0]!) as MigrationReport;
      process.stdout.write(
        `[compose] ${report.outcome}: ${report.rounds.length} rounds, ${report.times.totalMs.toFixed(0)} ms total, ` +
          `downtime ${report.times.downtimeMs!.toFixed(1)} ms, ${report.bytes.wire} B on the wire\n`,
      );
      expect(report.schema).toBe('livemig.report/1');
      expectCompleted(report);
      expect(report.verify.match).toBe(true);
      const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);
      expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
      if (env.VM_NIC) {
        // migrate --probe: a client in the migrate container kept writing; nothing acknowledged was lost.
        expect(report.network, 'the report has a network section').not.toBeNull();
        expect(report.network!.lostWrites).toBe(0);
        expect(report.network!.addressMode).toBe('macvlan');
        expect(report.network!.address).toBe(env.VM_NIC);
        process.stdout.write(`[compose] network: ${JSON.stringify(report.network)}\n`);
      } else {
        expect(report.network).toBeNull();
      }

      // The VM now runs on the destination, asked over its control port from the lab's controller.
      const destControl = controlPort(argvOf(compose.services.dest!.command, 'command'));
      const client = await ControlClient.connect(`ws://${lab.host('dest').address}:${destControl}`);
      try {
        const { vms } = await client.request('query-vms', {});
        expect(vms.map((vm) => [vm.name, vm.state])).toEqual([[report.vm.name, 'running']]);
      } finally {
        client.close();
      }
      for (const agent of AGENTS) expect(running.get(agent)!.child.exitCode, `${agent} still runs`).toBeNull();
      // The entrypoint shaped every namespace's eth0 before the command started.
      if (profile !== 'none') {
        for (const service of running.values()) expect(service.stderr(), service.name).toMatch(/lab shape: eth0/);
      }
    },
  );
});
