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
 *   a named volume       → a fresh temporary directory per run, removed afterwards: its mount
 *                          path in the entrypoint, command and environment becomes that
 *                          directory (as /app becomes the repo root); mounted `:ro`, it is bound
 *                          read-only in that service's own mount namespace (`ip netns exec`
 *                          gives each service one), so a write fails here as in the container;
 *   ${VAR:-default}, $$  → interpolated from process.env, as compose does from its shell (so
 *                          `LIVEMIG_PROFILE=wan npx vitest run …` shapes the kv scenario's links
 *                          to another profile);
 *   environment          → merged over process.env;
 *   capabilities         → Docker's default set plus the service's cap_add, nothing else
 *                          (setpriv bounds them), so a command that needs more fails here as in
 *                          a container; the default scenario gets no NET_ADMIN even though
 *                          cap_add asks for it, as on a host that refuses it;
 *   healthcheck          → its `test` run the way Docker runs it (CMD-SHELL: sh -c) in the
 *                          service's namespace, with its environment and capabilities, killed
 *                          after `timeout`; 0 is healthy;
 *   depends_on           → service_completed_successfully: the dependency must have exited 0
 *                          before the dependent starts (the one-shot `pki` first);
 *                          service_healthy: its healthcheck, every start_interval, must pass
 *                          within start_period; service_started (or a plain list): start order.
 *
 * Each agent's healthcheck must fail before the agent starts (its certificate already issued:
 * nothing listens), pass before `migrate` starts, pass again once the VM has moved, and fail once
 * the agent is stopped. The one-shot `migrate` must print exactly one report: completed, digests
 * matching, secured (mutual TLS 1.3 between the certificates `source` and `dest` that `pki`
 * issued, with a ticket), and the VM must run on the destination. Without root, the file's shape
 * (and the Dockerfile's) is checked, the services' shell commands run with a stand-in `node` that
 * prints the argv it would get (VM_DISK, STORAGE_MODE and the shared disk directory), and the
 * `pki` one-shot runs (it needs no network): twice, keeping what it made.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import ts from 'typescript';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseSize } from '@livemig/shared';
import { ControlClient } from '@livemig/shared/control';
import { REPORT_JSON_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { loadPki, readIdentity } from '@livemig/shared/security';
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
/** The one-shot that makes the certificates, and the volume it writes them to. */
const PKI_SERVICE = 'pki';
const PKI_VOLUME = 'pki';
/** The volume both agents mount for disk images on shared storage (STORAGE_MODE=shared), and where. */
const DISKS_VOLUME = 'disks';
const DISKS_DIR = '/disks';
/** The identity the test asks the agents as: the one the compose file's header offers people. */
const ADMIN = 'admin';
/** The read-only identity (role viewer) the agents' healthchecks ask as. */
const HEALTH = 'health';
const MIGRATE_TIMEOUT_MS = 75_000;
/** A CA and four certificates, one livemig process each (~2 s apiece on a slow machine). */
const ONE_SHOT_TIMEOUT_MS = 60_000;
/**
 * A whole scenario: pki, each agent's healthcheck before it starts, until healthy, after the
 * migration and once stopped (each a livemig process: 2–6 s on a busy two-core machine), the
 * migration. Seen: 80–90 s.
 */
const SCENARIO_TIMEOUT_MS = 240_000;

/**
 * The capabilities Docker gives a container unless told otherwise (moby's default set, as
 * setpriv names them); cap_add adds to them.
 */
const DOCKER_DEFAULT_CAPS = [
  'chown',
  'dac_override',
  'fsetid',
  'fowner',
  'mknod',
  'net_raw',
  'setgid',
  'setuid',
  'setfcap',
  'setpcap',
  'net_bind_service',
  'sys_chroot',
  'kill',
  'audit_write',
];

type Condition = 'service_started' | 'service_completed_successfully' | 'service_healthy';

interface Healthcheck {
  test?: unknown;
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
  start_interval?: string;
  disable?: boolean;
}

interface ComposeService {
  entrypoint?: unknown;
  command?: unknown;
  environment?: Record<string, string | number | boolean | null> | string[];
  cap_add?: string[];
  depends_on?: string[] | Record<string, { condition?: string } | null>;
  volumes?: unknown[];
  attach?: boolean;
  working_dir?: string;
  healthcheck?: Healthcheck;
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, { ipam?: { config?: { subnet?: string }[] } } | null>;
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

/** A service's command as one string, to look for flags in (`sh -c` commands hold them in one word). */
function commandLine(service: ComposeService): string {
  return argvOf(service.command, 'command').join(' ');
}

/** The value of `--flag VALUE` in a service's command. */
function flagOf(service: ComposeService, flag: string): string {
  const value = new RegExp(`(?:^|\\s)${flag}\\s+(\\S+)`).exec(commandLine(service))?.[1];
  if (value === undefined) throw new Error(`no ${flag} VALUE in ${commandLine(service)}`);
  return value;
}

/** The port of `--control HOST:PORT` in a command. */
function controlPort(service: ComposeService): number {
  const port = Number(flagOf(service, '--control').split(':').pop());
  if (!Number.isInteger(port)) throw new Error(`no --control HOST:PORT in ${commandLine(service)}`);
  return port;
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

/** What a service waits for: each dependency with its condition (a plain list means service_started). */
function dependencies(service: ComposeService): { name: string; condition: Condition }[] {
  const deps = service.depends_on ?? [];
  if (Array.isArray(deps)) return deps.map((name) => ({ name, condition: 'service_started' }));
  return Object.entries(deps).map(([name, spec]) => {
    const condition = spec?.condition ?? 'service_started';
    if (!['service_started', 'service_completed_successfully', 'service_healthy'].includes(condition)) {
      throw new Error(`the test does not wait for depends_on condition "${condition}" (${name}) yet`);
    }
    return { name, condition: condition as Condition };
  });
}

/** Service names, each after the services it depends on. */
function startOrder(compose: ComposeFile): string[] {
  const order: string[] = [];
  const visit = (name: string, path: string[]): void => {
    if (order.includes(name)) return;
    if (path.includes(name)) throw new Error(`depends_on cycle: ${[...path, name].join(' → ')}`);
    const service = compose.services[name];
    if (!service) throw new Error(`depends_on names an unknown service "${name}"`);
    for (const dep of dependencies(service)) visit(dep.name, [...path, name]);
    order.push(name);
  };
  for (const name of Object.keys(compose.services)) visit(name, []);
  return order;
}

/** A compose duration (`30s`, `1m30s`, `500ms`) in milliseconds. */
function durationMs(value: string | undefined, fallback: string): number {
  const text = value ?? fallback;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new Error(`bad duration "${text}"`);
  return parts.reduce((ms, [, n, u]) => ms + Number(n) * unit[u!]!, 0);
}

/** A healthcheck's timing, with Docker's defaults for what it leaves out. */
function healthTiming(check: Healthcheck): {
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  startIntervalMs: number;
} {
  return {
    intervalMs: durationMs(check.interval, '30s'),
    timeoutMs: durationMs(check.timeout, '30s'),
    retries: check.retries ?? 3,
    startPeriodMs: durationMs(check.start_period, '0s'),
    startIntervalMs: durationMs(check.start_interval, '5s'),
  };
}

/** What Docker runs for a healthcheck's `test` (a list: CMD argv, or CMD-SHELL through sh -c). */
function healthcheckArgv(service: ComposeService, name: string): string[] {
  const test = argvOf(service.healthcheck?.test, `${name}.healthcheck.test`);
  const [kind, ...rest] = test;
  if (kind === 'CMD' && rest.length > 0) return rest;
  if (kind === 'CMD-SHELL' && rest.length === 1) return ['/bin/sh', '-c', rest[0]!];
  throw new Error(`${name}.healthcheck.test must be [CMD, …] or [CMD-SHELL, "…"], got ${JSON.stringify(test)}`);
}

interface Mount {
  volume: string;
  target: string;
  readOnly: boolean;
}

/** A service's volumes: named volumes only (`NAME:/path[:ro]`, or the long form), as the test can map them. */
function mountsOf(service: ComposeService): Mount[] {
  return (service.volumes ?? []).map((entry) => {
    if (typeof entry === 'string') {
      const [volume = '', target = '', mode = 'rw', ...rest] = entry.split(':');
      if (rest.length > 0 || !['rw', 'ro'].includes(mode)) throw new Error(`unexpected volume "${entry}"`);
      return { volume, target, readOnly: mode === 'ro' };
    }
    const long = entry as { type?: string; source?: string; target?: string; read_only?: boolean };
    if (long.type !== 'volume') throw new Error(`the test maps named volumes only, got ${JSON.stringify(entry)}`);
    return { volume: long.source ?? '', target: long.target ?? '', readOnly: long.read_only === true };
  });
}

/** Each named volume of the file: a fresh temporary directory, removed after the test. */
function createVolumes(compose: ComposeFile): Map<string, string> {
  const volumes = new Map<string, string>();
  for (const name of Object.keys(compose.volumes ?? {})) {
    const dir = mkdtempSync(join(tmpdir(), `livemig-compose-${name}-`));
    volumeDirs.add(dir);
    volumes.set(name, dir);
  }
  return volumes;
}

/** Container path → host path for one service: /app is the repo, each mount its volume's directory. */
function pathsOf(service: ComposeService, volumes: Map<string, string>): [string, string][] {
  const paths: [string, string][] = [[CONTAINER_ROOT, ROOT]];
  for (const { volume, target } of mountsOf(service)) {
    const dir = volumes.get(volume);
    if (dir === undefined) throw new Error(`volume "${volume}" is not declared under the file's top-level volumes`);
    paths.push([target, dir]);
  }
  return paths;
}

/**
 * Replace each container path in `text` by its host path: wherever it stands as a whole path or a
 * path's leading directories (`/pki`, `/pki/ca.pem`, `--dir=/pki;`), never inside another name.
 */
function fromContainer(text: string, paths: [string, string][]): string {
  return paths.reduce((result, [container, host]) => {
    const escaped = container.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return result.replace(new RegExp(`(?<![\\w./-])${escaped}(?![\\w.-])`, 'g'), () => host);
  }, text);
}

/** Bind each directory read-only over itself, then exec the rest: for `:ro` mounts, in a mount namespace of its own. */
function readOnly(dirs: string[]): string[] {
  if (dirs.length === 0) return [];
  const script = 'while [ "$1" != -- ]; do mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; shift; done; shift';
  return ['sh', '-ec', `${script}; exec "$@"`, 'read-only-volumes', ...dirs, '--'];
}

/**
 * Exec `argv` with only Docker's default capabilities and the service's cap_add (less those in
 * `withhold`), as a container's processes have: bounding set and inheritable set cut down, so a
 * root process gets no more after its exec.
 */
function capabilities(service: ComposeService, withhold: readonly string[]): string[] {
  const added = (service.cap_add ?? []).map((cap) => cap.toLowerCase().replace(/^cap_/, ''));
  const caps = [...new Set([...DOCKER_DEFAULT_CAPS, ...added])].filter((cap) => !withhold.includes(cap));
  return ['setpriv', '--inh-caps', '-all', '--bounding-set', ['-all', ...caps.map((cap) => `+${cap}`)].join(','), '--'];
}

/** How the test runs a service's processes: in its namespace of the lab, without the capabilities in `withhold`. */
interface Container {
  lab: Lab | undefined;
  withhold: readonly string[];
}

/**
 * `argv` as it runs in service `name`'s container: in its lab namespace (without a lab, here:
 * only for what needs no network), its `:ro` volumes bound read-only, its capabilities Docker's,
 * container paths mapped to the host's. Returns the command and its environment.
 */
function inContainer(
  container: Container,
  name: string,
  service: ComposeService,
  volumes: Map<string, string>,
  argv: string[],
): { command: [string, ...string[]]; env: NodeJS.ProcessEnv } {
  const { lab: l, withhold } = container;
  expect(service.working_dir ?? CONTAINER_ROOT).toBe(CONTAINER_ROOT);
  const paths = pathsOf(service, volumes);
  const readOnlyDirs = mountsOf(service).flatMap((m) => (m.readOnly ? [volumes.get(m.volume)!] : []));
  if (!l && readOnlyDirs.length > 0) throw new Error(`${name}: read-only volumes need the lab's mount namespaces`);
  const command = [
    ...(l ? [...l.wrap(name), ...readOnly(readOnlyDirs), ...capabilities(service, withhold)] : []),
    ...argv.map((arg) => fromContainer(arg, paths)),
  ] as [string, ...string[]];
  const environment = Object.entries(environmentOf(service)).map(([k, v]) => [k, fromContainer(v, paths)]);
  return { command, env: { ...process.env, ...Object.fromEntries(environment) } };
}

interface Exit {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface RunningService {
  name: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
  /** performance.now() at spawn. */
  startedAt: number;
}

const children = new Set<ChildProcess>();
const volumeDirs = new Set<string>();
let lab: Lab | undefined;

/** Run one service as its container would (see inContainer), its volumes mapped to `volumes`' directories. */
function startService(
  container: Container,
  name: string,
  service: ComposeService,
  volumes: Map<string, string>,
): RunningService {
  const argv = [...argvOf(service.entrypoint, `${name}.entrypoint`), ...argvOf(service.command, `${name}.command`)];
  const {
    command: [command, ...args],
    env,
  } = inContainer(container, name, service, volumes, argv);
  // Its own process group, so the kill below also takes whatever the entrypoint started.
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ name, code, signal })));
  return { name, child, stdout: () => stdout, stderr: () => stderr, exited, startedAt: performance.now() };
}

interface HealthResult {
  /** The check's exit code (null: killed, e.g. after its timeout). */
  code: number | null;
  output: string;
  ms: number;
}

/** Run service `name`'s healthcheck once, as Docker does in its container: killed after `timeout`. */
async function runHealthcheck(
  container: Container,
  name: string,
  service: ComposeService,
  volumes: Map<string, string>,
): Promise<HealthResult> {
  const { timeoutMs } = healthTiming(service.healthcheck ?? {});
  const {
    command: [command, ...args],
    env,
  } = inContainer(container, name, service, volumes, healthcheckArgv(service, name));
  const started = performance.now();
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  children.delete(child);
  return { code, output: output.trim(), ms: performance.now() - started };
}

/**
 * depends_on service_healthy: the healthcheck, run every start_interval from the service's start,
 * must pass within its start_period (failures there do not count in Docker either); the service
 * must not exit meanwhile.
 */
async function expectHealthy(
  container: Container,
  service: RunningService,
  spec: ComposeService,
  volumes: Map<string, string>,
  logs: () => string,
): Promise<HealthResult> {
  const { startPeriodMs, startIntervalMs } = healthTiming(spec.healthcheck ?? {});
  let exited: Exit | undefined;
  void service.exited.then((exit) => (exited = exit));
  const checks: string[] = [];
  for (;;) {
    const result = await runHealthcheck(container, service.name, spec, volumes);
    const elapsed = performance.now() - service.startedAt;
    if (result.code === 0) {
      process.stdout.write(
        `[compose] ${service.name} healthy ${(elapsed / 1000).toFixed(1)} s after its start ` +
          `(${checks.length + 1} checks, the last ${result.ms.toFixed(0)} ms)\n`,
      );
      return result;
    }
    checks.push(`exit ${result.code} after ${result.ms.toFixed(0)} ms: ${result.output}`);
    const why = `${service.name}'s healthcheck:\n${checks.join('\n')}\n${logs()}`;
    expect(exited, `${service.name} exited before it was healthy; ${why}`).toBeUndefined();
    expect(elapsed, `${service.name} not healthy within its start_period; ${why}`).toBeLessThan(startPeriodMs);
    await new Promise((resolve) => setTimeout(resolve, startIntervalMs));
  }
}

/** The first of `exits` to come, or `{name: 'timeout'}` after `ms`. */
async function firstExit(exits: Promise<Exit>[], ms: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Exit>((resolve) => {
    timer = setTimeout(() => resolve({ name: 'timeout', code: null, signal: null }), ms);
  });
  try {
    return await Promise.race([...exits, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** depends_on service_completed_successfully: the one-shot must exit 0 (in time). */
async function expectCompletedSuccessfully(service: RunningService, logs: () => string): Promise<void> {
  const exit = await firstExit([service.exited], ONE_SHOT_TIMEOUT_MS);
  expect(exit, `${service.name} must complete successfully\n${logs()}`).toEqual({
    name: service.name,
    code: 0,
    signal: null,
  });
  process.stdout.write(
    `[compose] ${service.name} completed in ${((performance.now() - service.startedAt) / 1000).toFixed(1)} s\n`,
  );
}

/**
 * The argv `livemig` would get from service `name`'s command, its environment interpolated from
 * `env` alone: the command's shell runs for real, with a stand-in `node` first on PATH that prints
 * its arguments, one per line, and exits (so the shell's conditionals are what is tested).
 */
function livemigArgv(name: string, env: NodeJS.ProcessEnv): string[] {
  const service = loadCompose(env).services[name]!;
  const bin = mkdtempSync(join(tmpdir(), 'livemig-compose-node-'));
  volumeDirs.add(bin);
  writeFileSync(join(bin, 'node'), '#!/bin/sh\nprintf \'%s\\n\' "$@"\n');
  chmodSync(join(bin, 'node'), 0o755);
  const [command, ...args] = argvOf(service.command, `${name}.command`) as [string, ...string[]];
  const run = spawnSync(command, args, {
    cwd: ROOT,
    env: { PATH: `${bin}:${process.env.PATH ?? ''}`, ...environmentOf(service) },
    encoding: 'utf8',
  });
  expect(run.status, `${name}: ${run.stderr}`).toBe(0);
  const argv = run.stdout.split('\n').slice(0, -1);
  expect(argv[0]).toBe('bin/livemig.mjs');
  return argv.slice(1);
}

/** The value after `flag` in an argv, or undefined. */
function valueOf(argv: readonly string[], flag: string): string | undefined {
  const at = argv.indexOf(flag);
  return at < 0 ? undefined : argv[at + 1];
}

/** Every service's stderr and stdout, for a failure message. */
function logsOf(services: Iterable<RunningService>): string {
  return [...services].map((s) => `--- ${s.name} stderr:\n${s.stderr()}\n--- stdout:\n${s.stdout()}`).join('\n');
}

/** Signal a child's whole process group (spawned detached), or the child alone if that fails. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    child.kill(signal);
  }
}

function killAll(): Promise<unknown> {
  const waits = [...children].map((child) => {
    children.delete(child);
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return undefined;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    signalGroup(child, 'SIGKILL');
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
    for (const dir of volumeDirs) rmSync(dir, { recursive: true, force: true });
    volumeDirs.clear();
  }
});

/** The name and role of every certificate a PKI directory holds, by file name (the CA as role null). */
async function certificatesIn(dir: string): Promise<Record<string, { name: string; role: string | null }>> {
  const files = readdirSync(dir).filter((file) => file.endsWith('.pem') && !file.endsWith('-key.pem'));
  const entries = await Promise.all(
    files.map(async (file) => {
      const { name, role } = await readIdentity(join(dir, file));
      return [file, { name, role }] as const;
    }),
  );
  return Object.fromEntries(entries);
}

/**
 * The packages a source file imports, statically or with import(), as TypeScript's own scanner
 * finds them (comments and strings are not imports); and pino's transports, which it loads by name.
 */
function importedPackages(text: string): string[] {
  const specifiers = [
    ...ts.preProcessFile(text, true, true).importedFiles.map((file) => file.fileName),
    ...[...text.matchAll(/\btarget:\s*['"]([^'"./][^'"]*)['"]/g)].map((match) => match[1]!),
  ];
  return specifiers
    .filter((spec) => !spec.startsWith('.') && !spec.startsWith('/') && !isBuiltin(spec))
    .map((spec) =>
      spec
        .split('/')
        .slice(0, spec.startsWith('@') ? 2 : 1)
        .join('/'),
    );
}

/** Every .ts/.mjs/.js file under `dir` (relative to the repo), recursively. */
function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .map((file) => join(ROOT, dir, file))
    .filter((path) => /\.(ts|mjs|js)$/.test(path) && statSync(path).isFile());
}

/** Every file of a directory and its contents. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).map((file) => [file, readFileSync(join(dir, file), 'utf8')]));
}

describe('docker-compose.yml', () => {
  const compose = loadCompose();
  const services = Object.keys(compose.services);

  it('has a one-shot pki that the others wait for, dest, source and a one-shot migrate that waits for both to be healthy', () => {
    expect([...services].sort()).toEqual(['dest', 'migrate', 'pki', 'source']);
    const completed = { name: PKI_SERVICE, condition: 'service_completed_successfully' };
    for (const agent of AGENTS) expect(dependencies(compose.services[agent]!)).toEqual([completed]);
    expect(dependencies(compose.services.migrate!)).toEqual(
      expect.arrayContaining([
        completed,
        { name: 'dest', condition: 'service_healthy' },
        { name: 'source', condition: 'service_healthy' },
      ]),
    );
    // `up --exit-code-from migrate` stops everything when any attached container exits: not pki's exit.
    expect(compose.services.pki!.attach).toBe(false);
  });

  it.each(AGENTS)('%s: a healthcheck that asks its own control port over mutual TLS as the viewer `health`', (name) => {
    const service = compose.services[name]!;
    const [shell, script] = healthcheckArgv(service, name).slice(1);
    expect(shell).toBe('-c');
    expect(script).toMatch(/^node \/app\/bin\/livemig\.mjs status /);
    expect(script).toContain(`--pki /pki --name ${HEALTH}`);
    expect(script).toContain(`--control wss://127.0.0.1:${controlPort(service)}`);
    expect(script).toContain(`--agent-name ${flagOf(service, '--name')}`);
    // Docker reserves exit code 2; livemig uses it for bad input.
    expect(script).toMatch(/\|\| exit 1$/);
    const timing = healthTiming(service.healthcheck!);
    expect(timing.startIntervalMs).toBeLessThanOrEqual(timing.intervalMs);
    expect(timing.timeoutMs).toBeLessThanOrEqual(timing.intervalMs);
    expect(timing.startPeriodMs).toBeGreaterThanOrEqual(30_000);
    expect(timing.retries).toBeGreaterThanOrEqual(1);
  });

  it('the one-shots have no healthcheck, nor has the image (it also runs them)', () => {
    for (const name of services.filter((n) => !AGENTS.includes(n))) {
      expect(compose.services[name]!.healthcheck, name).toBeUndefined();
    }
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).not.toMatch(/^HEALTHCHECK/m);
  });

  it.each(services)('%s: the entrypoint, a list command', (name) => {
    const service = compose.services[name]!;
    expect(() => argvOf(service.command, 'command')).not.toThrow();
    // The compose file and the Dockerfile name the same entrypoint.
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
    expect(entrypoint, 'the Dockerfile has an ENTRYPOINT in exec form').toBeDefined();
    expect(argvOf(service.entrypoint, 'entrypoint')).toEqual(JSON.parse(entrypoint!));
  });

  it.each(['dest', 'source', 'migrate'])(
    '%s: LINK_PROFILE from LIVEMIG_PROFILE, none by default; NET_ADMIN for when it is not',
    (name) => {
      expect(environmentOf(compose.services[name]!).LINK_PROFILE).toBe(
        process.env.LIVEMIG_PROFILE ? process.env.LIVEMIG_PROFILE : 'none',
      );
      const service = loadCompose({ LIVEMIG_PROFILE: 'wan' }).services[name]!;
      expect(environmentOf(service).LINK_PROFILE).toBe('wan');
      expect(environmentOf(loadCompose({}).services[name]!).LINK_PROFILE).toBe('none');
      expect(service.cap_add).toContain('NET_ADMIN');
    },
  );

  it('the network is LIVEMIG_SUBNET, 10.77.0.0/24 by default', () => {
    const subnet = (file: ComposeFile): unknown => file.networks?.default?.ipam?.config?.map((c) => c.subnet);
    expect(subnet(loadCompose({}))).toEqual(['10.77.0.0/24']);
    expect(subnet(loadCompose({ LIVEMIG_SUBNET: '172.31.7.0/24' }))).toEqual(['172.31.7.0/24']);
  });

  it('every service mounts the volume pki at /pki, read-only but in pki; the agents share disks; pki leaves the network alone', () => {
    expect(Object.keys(compose.volumes ?? {})).toEqual([PKI_VOLUME, DISKS_VOLUME]);
    for (const name of services) {
      const readOnly = name !== PKI_SERVICE;
      const disks = AGENTS.includes(name) ? [{ volume: DISKS_VOLUME, target: DISKS_DIR, readOnly: false }] : [];
      expect(mountsOf(compose.services[name]!), name).toEqual([
        { volume: PKI_VOLUME, target: '/pki', readOnly },
        ...disks,
      ]);
    }
    expect(environmentOf(compose.services.pki!).LINK_PROFILE).toBe('none');
  });

  it('agents listen on 0.0.0.0 with their certificates; migrate waits, names them by service and prints JSON', () => {
    const dest = commandLine(compose.services.dest!);
    expect(dest).toMatch(/--listen 0\.0\.0\.0:7070 .*--control 0\.0\.0\.0:7071/);
    expect(dest).toContain('--pki /pki --name dest --allow-source source');
    expect(commandLine(compose.services.source!)).toContain('--pki /pki --name source --control 0.0.0.0:7171');
    const migrate = commandLine(compose.services.migrate!);
    for (const part of [
      '--wait 60s',
      '--pki /pki --name operator',
      '--control wss://source:7171',
      '--dest-control wss://dest:7071',
      '--to dest:7070',
      '--json',
    ]) {
      expect(migrate).toContain(part);
    }
  });

  it('the source VM comes from VM_MEMORY, VM_INIT, VM_WORKLOAD and VM_SEED, with defaults', () => {
    const env = environmentOf(compose.services.source!);
    const command = commandLine(compose.services.source!);
    for (const name of ['VM_MEMORY', 'VM_INIT', 'VM_WORKLOAD', 'VM_SEED']) {
      expect(env[name], name).toBeTruthy();
      expect(command).toContain(`$${name}`);
    }
    const overridden = loadCompose({ VM_MEMORY: '64MiB' });
    expect(environmentOf(overridden.services.source!).VM_MEMORY).toBe('64MiB');
  });

  it("VM_DISK gives the source VM a disk; STORAGE_MODE is migrate's --storage; none of them by default", () => {
    const defaults = Object.fromEntries(['dest', 'source', 'migrate'].map((n) => [n, livemigArgv(n, {})]));
    expect(defaults.source).not.toContain('--disk');
    expect(defaults.migrate).not.toContain('--storage');
    for (const agent of AGENTS) expect(defaults[agent], agent).not.toContain('--disk-dir');
    // The commands' other flags survive the shell: the default VM and migrate as before.
    expect(valueOf(defaults.source!, '--workload')).toBe('hotset:wss=16MiB,rate=2000');
    expect(valueOf(defaults.migrate!, '--to')).toBe('dest:7070');

    const disk = { VM_DISK: '256MiB', VM_WORKLOAD: 'disk:wss=8MiB', STORAGE_MODE: 'mirror' };
    expect(valueOf(livemigArgv('source', disk), '--disk')).toBe('256MiB');
    expect(valueOf(livemigArgv('migrate', disk), '--storage')).toBe('mirror');
    // Only shared storage puts the agents' images on the shared volume: elsewhere each keeps its own.
    for (const agent of AGENTS) expect(livemigArgv(agent, disk), agent).not.toContain('--disk-dir');
  });

  it('STORAGE_MODE=shared gives both agents --disk-dir on the volume they share', () => {
    const shared = { VM_DISK: '64MiB', VM_WORKLOAD: 'disk', STORAGE_MODE: 'shared' };
    for (const agent of AGENTS) {
      const argv = livemigArgv(agent, shared);
      expect(valueOf(argv, '--disk-dir'), agent).toBe(DISKS_DIR);
      expect(
        argv.filter((arg) => arg === '--disk-dir'),
        agent,
      ).toHaveLength(1);
      expect(mountsOf(compose.services[agent]!)).toContainEqual({
        volume: DISKS_VOLUME,
        target: DISKS_DIR,
        readOnly: false,
      });
    }
    expect(valueOf(livemigArgv('migrate', shared), '--storage')).toBe('shared');
    expect(valueOf(livemigArgv('source', shared), '--disk')).toBe('64MiB');
  });

  it('the image: a maintained Node LTS, production dependencies only, the tools the entrypoint and VM_NIC run', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const node = /^ARG NODE_VERSION=(\d+)\s*$/m.exec(dockerfile)?.[1];
    expect(['22', '24'], 'ARG NODE_VERSION: an LTS line still maintained').toContain(node);
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(bases).toEqual(['node:${NODE_VERSION}-bookworm', 'node:${NODE_VERSION}-bookworm-slim']);
    expect(dockerfile).toMatch(/^RUN npm ci --omit=dev\b/m);
    // tc and ip (shaping, macvlan), nft (loss), arping (the VM address's announcements).
    const apt = /^.*apt-get install.*$/m.exec(dockerfile)?.[0].split(/\s+/) ?? [];
    expect(apt).toEqual(expect.arrayContaining(['iproute2', 'nftables', 'iputils-arping']));
  });

  it('what the CLI and agents import at run time is in dependencies, so `npm ci --omit=dev` is enough', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const runtime = ['bin', 'cli', 'shared/src', 'agent/src', 'agent-source/src', 'agent-dest/src'];
    const imported = new Map<string, string>();
    for (const file of runtime.flatMap(sourceFiles)) {
      for (const name of importedPackages(readFileSync(file, 'utf8'))) imported.set(name, file);
    }
    expect(imported.get('tsx'), 'bin/livemig.mjs loads the sources through tsx').toBeDefined();
    const missing = [...imported]
      .filter(([name]) => !name.startsWith('@livemig/') && !Object.hasOwn(pkg.dependencies, name))
      .map(([name, file]) => `${name} (${file.slice(ROOT.length + 1)})`);
    expect(missing, 'imported at run time but not in dependencies').toEqual([]);
  });

  it('pki issues a CA and every --name the services use, with its role; run again, it issues only what is missing', async () => {
    const volumes = createVolumes(compose);
    const dir = volumes.get(PKI_VOLUME)!;
    const run = async (): Promise<void> => {
      const pki = startService({ lab: undefined, withhold: [] }, PKI_SERVICE, compose.services.pki!, volumes);
      await expectCompletedSuccessfully(pki, () => logsOf([pki]));
    };
    await run();
    // Agents are agents, migrate an operator, the healthchecks a viewer, and `admin` is there for people.
    const [dest, source, operator] = ['dest', 'source', 'migrate'].map((n) => flagOf(compose.services[n]!, '--name'));
    expect(await certificatesIn(dir)).toEqual({
      'ca.pem': { name: expect.stringMatching(/^livemig fleet CA/), role: null },
      [`${dest}.pem`]: { name: 'dest', role: 'agent' },
      [`${source}.pem`]: { name: 'source', role: 'agent' },
      [`${operator}.pem`]: { name: 'operator', role: 'operator' },
      [`${HEALTH}.pem`]: { name: HEALTH, role: 'viewer' },
      [`${ADMIN}.pem`]: { name: ADMIN, role: 'admin' },
    });
    for (const name of [...AGENTS, 'operator', HEALTH, ADMIN]) await loadPki(dir, name); // signed by the CA, key 0600

    const before = snapshot(dir);
    await run();
    expect(snapshot(dir), 'a second run changes nothing').toEqual(before);
    rmSync(join(dir, `${ADMIN}.pem`));
    rmSync(join(dir, `${ADMIN}-key.pem`));
    await run();
    const after = snapshot(dir);
    expect(after[`${ADMIN}.pem`], 'a missing certificate is issued again').not.toBe(before[`${ADMIN}.pem`]);
    const others = (files: Record<string, string>): Record<string, string> =>
      Object.fromEntries(Object.entries(files).filter(([file]) => !file.startsWith(`${ADMIN}`)));
    expect(others(after), 'the CA and the other certificates stay as they were').toEqual(others(before));
    await loadPki(dir, ADMIN); // by the same CA
  });
});

interface Scenario {
  /** The environment compose interpolates from, over process.env. */
  env: (l: Lab) => NodeJS.ProcessEnv;
  /** Capabilities the services do not get although cap_add asks for them. */
  withhold: string[];
}

/**
 * The scenarios: the file's defaults on a host that grants no NET_ADMIN (no shaping, no
 * macvlan: nothing may need it), and a kv VM with its own address (VM_NIC) on the compose
 * network, its links shaped (LIVEMIG_PROFILE, lan unless the environment names another).
 */
const SCENARIOS: [string, Scenario][] = [
  ['the defaults, without NET_ADMIN', { env: () => ({ LIVEMIG_PROFILE: '' }), withhold: ['net_admin'] }],
  [
    'a kv VM whose address follows it, on shaped links',
    {
      env: (l) => ({
        VM_WORKLOAD: 'kv',
        VM_MEMORY: '64MiB',
        VM_NIC: `${l.vmAddress()}:7700`,
        LIVEMIG_PROFILE: process.env.LIVEMIG_PROFILE || 'lan',
      }),
      withhold: [],
    },
  ],
  [
    'a VM with a disk on the volume both agents share (STORAGE_MODE=shared)',
    {
      env: () => ({
        VM_WORKLOAD: 'disk:wss=8MiB,rate=500',
        VM_MEMORY: '64MiB',
        VM_DISK: '64MiB',
        STORAGE_MODE: 'shared',
        LIVEMIG_PROFILE: '',
      }),
      withhold: ['net_admin'],
    },
  ],
];

const SCENARIO_TITLE =
  '%s: pki issues the certificates, dest and source start and become healthy, migrate migrates securely and prints a completed report';

describeWhenAvailable('docker-compose.yml in network namespaces, one per service', labUnavailable(), () => {
  it.each(SCENARIOS)(
    SCENARIO_TITLE,
    async (_name, scenario) => {
      lab = Lab.create(Object.keys(loadCompose().services));
      const env = scenario.env(lab);
      const container: Container = { lab, withhold: scenario.withhold };
      const compose = loadCompose({ ...process.env, ...env });
      const volumes = createVolumes(compose);
      const profile = environmentOf(compose.services.dest!).LINK_PROFILE;
      process.stdout.write(
        `[compose] LINK_PROFILE=${profile} ${JSON.stringify(env)}, withheld capabilities: ${JSON.stringify(scenario.withhold)}\n`,
      );
      const running = new Map<string, RunningService>();
      const logs = (): string => logsOf(running.values());
      const completed = new Set<string>();
      const healthy = new Set<string>();
      /** Each agent's healthcheck before it starts, begun as soon as its dependencies are met. */
      const before = new Map<string, Promise<HealthResult>>();
      for (const name of startOrder(compose)) {
        const service = compose.services[name]!;
        for (const dep of dependencies(service)) {
          if (dep.condition === 'service_completed_successfully' && !completed.has(dep.name)) {
            await expectCompletedSuccessfully(running.get(dep.name)!, logs);
            completed.add(dep.name);
          }
          if (dep.condition === 'service_healthy' && !healthy.has(dep.name)) {
            await expectHealthy(container, running.get(dep.name)!, compose.services[dep.name]!, volumes, logs);
            healthy.add(dep.name);
          }
        }
        if (service.healthcheck) {
          // Its certificate is there (pki completed), but nothing listens yet: unhealthy. The
          // checks of every agent not started yet whose dependencies are met run together (each
          // is a livemig process, 1–2 s): none of them is listening before all are checked.
          for (const other of AGENTS) {
            if (before.has(other) || running.has(other)) continue;
            const met = dependencies(compose.services[other]!).every(
              (dep) =>
                completed.has(dep.name) ||
                healthy.has(dep.name) ||
                (dep.condition === 'service_started' && running.has(dep.name)),
            );
            if (other === name || met)
              before.set(other, runHealthcheck(container, other, compose.services[other]!, volumes));
          }
          const unhealthy = await before.get(name)!;
          expect(unhealthy.code, `${name}'s healthcheck before it starts: ${unhealthy.output}`).toBe(1);
          expect(unhealthy.output).toMatch(/ERR_CONNECTION/);
        }
        running.set(name, startService(container, name, service, volumes));
      }
      const migrate = running.get('migrate')!;

      // migrate must end first: an agent that exits, or a migrate that hangs, fails the test.
      const first = await firstExit([migrate.exited, ...AGENTS.map((a) => running.get(a)!.exited)], MIGRATE_TIMEOUT_MS);
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
          `downtime ${report.times.downtimeMs!.toFixed(1)} ms, ${report.bytes.wire} B on the wire, ` +
          `security ${JSON.stringify(report.security)}\n`,
      );
      expect(report.schema).toBe('livemig.report/1');
      expectCompleted(report);
      expect(report.verify.match).toBe(true);
      const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);
      expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
      // Mutual TLS 1.3 between the certificates pki issued, with the ticket migrate asked dest for.
      expect(report.security).toEqual({
        tls: '1.3',
        cipher: expect.stringMatching(/^TLS_/) as unknown,
        sourceName: 'source',
        destName: 'dest',
        ticket: true,
      });
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
      if (env.VM_DISK) {
        // The disk moved as STORAGE_MODE said, and each side's digest of it matches.
        process.stdout.write(`[compose] storage: ${JSON.stringify(report.storage)}\n`);
        expect(report.storage, 'the report has a storage section').toBeDefined();
        expect(report.storage!.mode).toBe(env.STORAGE_MODE || 'copy');
        expect(report.storage!.sizeBytes).toBe(parseSize(env.VM_DISK));
        expect(report.verify.sections?.disk?.match).toBe(true);
        if (env.STORAGE_MODE === 'shared') {
          expect(report.storage!.wireBytes, 'shared storage: no disk bytes on the wire').toBe(0);
          expect(readdirSync(volumes.get(DISKS_VOLUME)!)).toContain(`${report.vm.name}.img`);
        }
      } else {
        expect(report.storage).toBeUndefined();
      }

      // The VM now runs on the destination, asked over its control port (wss, as admin) from the lab's controller.
      const { ca, cert, key } = await loadPki(volumes.get(PKI_VOLUME)!, ADMIN);
      const client = await ControlClient.connect(
        `wss://${lab.host('dest').address}:${controlPort(compose.services.dest!)}`,
        { tls: { ca, cert, key }, expectName: 'dest' },
      );
      try {
        const { vms } = await client.request('query-vms', {});
        expect(vms.map((vm) => [vm.name, vm.state])).toEqual([[report.vm.name, 'running']]);
      } finally {
        client.close();
      }
      for (const agent of AGENTS) expect(running.get(agent)!.child.exitCode, `${agent} still runs`).toBeNull();
      // The entrypoint shaped every namespace's eth0 before the command started (pki's excepted: LINK_PROFILE none).
      for (const name of [...AGENTS, 'migrate']) {
        const shaped = expect(running.get(name)!.stderr(), name);
        if (profile === 'none') shaped.not.toMatch(/lab shape/);
        else shaped.toMatch(/lab shape: eth0/);
      }

      // Both agents are still healthy with the VM moved; stopped (docker compose stop: SIGTERM),
      // unhealthy. The two agents in parallel: each check asks its own agent only.
      await Promise.all(
        AGENTS.map(async (agent) => {
          const service = compose.services[agent]!;
          const after = await runHealthcheck(container, agent, service, volumes);
          expect(after.code, `${agent}'s healthcheck after the migration: ${after.output}`).toBe(0);
          expect(after.output).toContain(report.vm.name);
          const { child, exited } = running.get(agent)!;
          signalGroup(child, 'SIGTERM');
          const exit = await firstExit([exited], 10_000);
          expect(exit.name, `${agent} stops on SIGTERM\n${logs()}`).toBe(agent);
          const stopped = await runHealthcheck(container, agent, service, volumes);
          expect(stopped.code, `${agent}'s healthcheck once it stopped: ${stopped.output}`).toBe(1);
          expect(stopped.output).toMatch(/ERR_CONNECTION/);
        }),
      );
    },
    SCENARIO_TIMEOUT_MS,
  );
});
