/**
 * A minimal network-namespace lab for tests that need a real link to break: one namespace joined
 * to the test's own namespace by a veth pair, addresses from a private test range that exists
 * only on that pair. `flap(ms)` takes the link down and up again; `remove()` deletes it all.
 * Namespaces carry a per-run prefix; stale ones from a crashed run are removed at creation, and
 * every namespace made here is removed on process exit too.
 *
 * Needs root and iproute2. `netnsUnavailable()` says why not, for describeWhenAvailable (prerequisites.ts).
 */
import { execFileSync } from 'node:child_process';

const PREFIX = 'lmtest';
const created = new Set<string>();

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why network-namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, veth)';
  try {
    ip('netns', 'list');
  } catch {
    return 'iproute2 (`ip`) is not available';
  }
  return undefined;
}

export interface PairLab {
  /** Namespace the far end lives in (run agents there with `wrap`). */
  ns: string;
  /** Address of this end (in the test's namespace) and of the far end. */
  nearAddress: string;
  farAddress: string;
  /** Prefix for startAgentProcess's `wrap` to run a command inside the namespace. */
  wrap: readonly string[];
  /** Take the link down for `ms`, then up again. */
  flap(ms: number): Promise<void>;
  remove(): void;
}

function removeStale(): void {
  for (const line of ip('netns', 'list').split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const pid = Number(name.slice(PREFIX.length).split('x')[0]);
    const stale = name.startsWith(PREFIX) && !(pid > 0 && processExists(pid));
    if (stale) removeNamespace(name);
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function removeNamespace(ns: string): void {
  try {
    ip('netns', 'del', ns);
  } catch {
    // Already gone.
  }
  created.delete(ns);
}

process.once('exit', () => {
  for (const ns of [...created]) removeNamespace(ns);
});

let counter = 0;

/** Create the lab: namespace + veth pair + addresses, link up. */
export function createPairLab(): PairLab {
  removeStale();
  const id = `${process.pid}x${counter++}`;
  const ns = `${PREFIX}${id}`;
  const near = `lmn${id}`.slice(0, 15);
  const far = `lmf${id}`.slice(0, 15);
  const subnet = 200 + (process.pid % 50);
  const octet = (counter * 4) % 250;
  const nearAddress = `10.${subnet}.${octet}.1`;
  const farAddress = `10.${subnet}.${octet}.2`;
  ip('netns', 'add', ns);
  created.add(ns);
  try {
    ip('link', 'add', near, 'type', 'veth', 'peer', 'name', far);
    ip('link', 'set', far, 'netns', ns);
    ip('addr', 'add', `${nearAddress}/30`, 'dev', near);
    ip('link', 'set', near, 'up');
    ip('-n', ns, 'addr', 'add', `${farAddress}/30`, 'dev', far);
    ip('-n', ns, 'link', 'set', far, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  } catch (error) {
    removeNamespace(ns);
    throw error;
  }
  return {
    ns,
    nearAddress,
    farAddress,
    wrap: ['ip', 'netns', 'exec', ns],
    flap: async (ms) => {
      ip('link', 'set', near, 'down');
      await new Promise((resolve) => setTimeout(resolve, ms));
      ip('link', 'set', near, 'up');
    },
    // Deleting the namespace deletes the veth pair with it.
    remove: () => removeNamespace(ns),
  };
}
