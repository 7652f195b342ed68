/**
 * The matrix `livemig compare` runs: techniques × workloads × links, repeated — the default one
 * (about 10 minutes on this machine with root; loopback only without), or one read from a YAML
 * file. Parsing is pure (text in, matrix or a MigrationError naming the file's line out) so it is
 * tested on its own. The schema, as documented in the README:
 *
 *   repeat: 1                        # optional, 1..20
 *   vm: { memory: 128MiB, init: random }   # optional defaults for every workload
 *   techniques: [precopy, postcopy, hybrid, auto:downtime, auto:total-time, auto:bytes]
 *                                    # and any fixed one with engine options (issue 17), e.g.
 *                                    # precopy+compress, precopy+compress=brotli, precopy+xbzrle,
 *                                    # precopy+dedup, precopy+auto-converge, precopy+auto-converge=30/10/99,
 *                                    # precopy+dirty-limit=20MB/s, hybrid+xbzrle+dedup,
 *                                    # precopy+channels=2 (parallel bulk channels, issue 18)
 *                                    # (technique := base ('+' option)*; options.ts in shared/src/predict)
 *   workloads:                       # required, 1..32
 *     - name: hot 40k                # label (unique)
 *       workload: hotset:wss=16MiB,rate=40000   # any --workload spec
 *       memory: 128MiB               # optional: overrides vm.memory
 *       init: random                 # optional: any --init (random, zero, realistic, mixed:…)
 *       probe: 2ms                   # optional (kv only): probe its service every 2 ms
 *   links:                           # required, 1..16
 *     - name: loopback               # label (unique)
 *       profile: lan                 # optional: a lab profile (needs root); absent = loopback
 *       max-bandwidth: 25MB/s        # optional: the engine's cap (sweeps bandwidth on loopback)
 *       workloads: [idle, hot 40k]   # optional: only these workloads on this link
 *       techniques: [precopy]        # optional: only these techniques on this link
 *
 * A technique with options runs its mode with those flags (--compress lz4, --auto-converge,
 * --dirty-limit 20MB/s, …) and is predicted with them (shared/src/predict encodings.ts and
 * throttle.ts); an option it does not name is the engine's default. The default matrix has
 * none: its runtime is budgeted (docs/compare-encodings.yaml is a matrix that uses them).
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import type { Node } from 'yaml';
import { MigrationError, parseDuration, parseRate, parseSize } from '@livemig/shared';
import { parseInitSpec, parseVmSpec } from '@livemig/shared/vm';
import { PROFILES } from '../lab/profiles.ts';
import type { CellSpec, LinkCase, TechniqueName, WorkloadCase } from './results.ts';
import { PLAIN_TECHNIQUE_NAMES, techniqueCase } from './techniques.ts';

/** The techniques without options (a matrix without techniques: runs these); with options, any `base+option…`. */
export const TECHNIQUE_NAMES: readonly TechniqueName[] = PLAIN_TECHNIQUE_NAMES;

export interface Matrix {
  repeat: number;
  techniques: TechniqueName[];
  workloads: WorkloadCase[];
  links: (LinkCase & { workloads?: string[]; techniques?: TechniqueName[] })[];
}

const MiB = 1024 * 1024;
const VM = { memoryBytes: 128 * MiB, init: 'random' } as const;
const HOT = (rate: number): string => `hotset:wss=16MiB,rate=${rate}`;

/**
 * The default: a 128 MiB VM idle, writing a 16 MiB hot set at three rates, and a probed kv
 * service; every technique on loopback and lan; loopback capped at two bandwidths, and wan
 * (100 Mbit/s, 40 ms), with fewer cells (each wan migration takes ~11 s).
 */
export const DEFAULT_MATRIX: Matrix = {
  repeat: 1,
  techniques: ['precopy', 'postcopy', 'hybrid', 'auto:downtime', 'auto:total-time'],
  workloads: [
    { name: 'idle', workload: 'idle', ...VM },
    { name: 'hot 5k', workload: HOT(5000), ...VM },
    { name: 'hot 20k', workload: HOT(20_000), ...VM },
    { name: 'hot 80k', workload: HOT(80_000), ...VM },
    { name: 'kv', workload: 'kv', ...VM, probeIntervalMs: 2 },
  ],
  links: [
    { name: 'loopback', kind: 'loopback', maxBandwidthBps: null },
    {
      name: 'loopback 62.5 MB/s',
      kind: 'loopback',
      maxBandwidthBps: 62.5e6,
      workloads: ['idle', 'hot 20k'],
      techniques: ['precopy', 'postcopy', 'hybrid'],
    },
    {
      name: 'loopback 25 MB/s',
      kind: 'loopback',
      maxBandwidthBps: 25e6,
      workloads: ['idle', 'hot 20k'],
      techniques: ['precopy', 'postcopy', 'hybrid'],
    },
    { name: 'lan', kind: 'lab', profile: 'lan', maxBandwidthBps: null },
    {
      name: 'wan',
      kind: 'lab',
      profile: 'wan',
      maxBandwidthBps: null,
      workloads: ['idle', 'hot 20k', 'kv'],
      techniques: ['precopy', 'postcopy', 'hybrid', 'auto:downtime'],
    },
  ],
};

/** Every cell of the matrix, in run order: link by link (one lab at a time), then repeat, workload, technique. */
export function cellsOf(matrix: Matrix, links: readonly Matrix['links'][number][] = matrix.links): CellSpec[] {
  const cells: CellSpec[] = [];
  for (const link of links) {
    const workloads = matrix.workloads.filter((w) => !link.workloads || link.workloads.includes(w.name));
    const techniques = matrix.techniques.filter((t) => !link.techniques || link.techniques.includes(t));
    for (let repeat = 1; repeat <= matrix.repeat; repeat++) {
      for (const workload of workloads) {
        for (const technique of techniques) {
          const { workloads: _w, techniques: _t, ...linkCase } = link;
          cells.push({
            id: `${link.name}/${workload.name}/${technique}/${repeat}`,
            technique,
            workload,
            link: linkCase,
            repeat,
          });
        }
      }
    }
  }
  return cells;
}

/** Read a matrix from YAML text; errors are ERR_INVALID_ARGUMENT naming `file` and the line. */
export function parseMatrix(text: string, file = 'matrix'): Matrix {
  // Loaded here: every livemig process (agents too) loads this module, and yaml is 70 modules.
  const { LineCounter, parseDocument, isMap, isSeq } = createRequire(import.meta.url)('yaml') as typeof Yaml;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (node: Node | null | undefined): string => {
    const offset = node?.range?.[0];
    return offset === undefined ? file : `${file}:${lines.linePos(offset).line}`;
  };
  const fail = (node: Node | null | undefined, what: string): never => {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `${at(node)}: ${what}`);
  };
  const yamlError = doc.errors[0];
  if (yamlError) {
    const line = yamlError.linePos?.[0]?.line ?? lines.linePos(yamlError.pos[0]).line;
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `${file}:${line}: not valid YAML: ${yamlError.message.split('\n')[0]}`,
    );
  }
  const root = doc.contents;
  if (!isMap(root)) return fail(root, 'the matrix must be a mapping with workloads: and links:');
  const known = new Set(['repeat', 'vm', 'techniques', 'workloads', 'links']);
  for (const pair of root.items) {
    const key = String((pair.key as { value?: unknown }).value);
    if (!known.has(key)) fail(pair.key as Node, `unknown key "${key}" (known: ${[...known].join(', ')})`);
  }
  const node = (path: (string | number)[]): Node | undefined => doc.getIn(path, true) as Node | undefined;
  const value = (path: (string | number)[]): unknown => doc.getIn(path);

  const repeat = value(['repeat']) ?? 1;
  if (!(Number.isSafeInteger(repeat) && (repeat as number) >= 1 && (repeat as number) <= 20)) {
    fail(node(['repeat']), `repeat must be a whole number from 1 to 20, got ${JSON.stringify(repeat)}`);
  }
  const quantity = <T>(path: (string | number)[], parse: (text: string) => T, what: string): T | undefined => {
    const raw = value(path);
    if (raw === undefined || raw === null) return undefined;
    try {
      return parse(String(raw));
    } catch (error) {
      return fail(node(path), `${path.join('.')}: not a ${what}: ${(error as Error).message}`);
    }
  };
  const vmNode = node(['vm']);
  if (vmNode !== undefined) {
    if (!isMap(vmNode)) fail(vmNode, 'vm: must be a mapping, e.g. { memory: 128MiB, init: random }');
    for (const pair of (vmNode as { items: { key: unknown }[] }).items) {
      const key = String((pair.key as { value?: unknown }).value);
      if (!['memory', 'init'].includes(key)) fail(pair.key as Node, `vm: unknown key "${key}" (known: memory, init)`);
    }
  }
  const vmMemory = quantity(['vm', 'memory'], parseSize, 'size') ?? VM.memoryBytes;
  const vmInit = initOf(value(['vm', 'init']) ?? VM.init, (why) => fail(node(['vm', 'init']), `vm.init: ${why}`));

  const techniqueList = (path: (string | number)[]): TechniqueName[] | undefined => {
    const raw = value(path);
    if (raw === undefined) return undefined;
    const list = node(path);
    if (!isSeq(list) || list.items.length === 0) return fail(list, `${path.join('.')} must be a non-empty list`);
    const names = list.items.map((item) => {
      const name = String((item as { value?: unknown }).value);
      if (!(TECHNIQUE_NAMES as readonly string[]).includes(name)) {
        if (!name.includes('+')) {
          fail(
            item as Node,
            `unknown technique "${name}" (known: ${TECHNIQUE_NAMES.join(', ')}); with engine options: precopy or ` +
              'hybrid +options, e.g. precopy+compress, precopy+auto-converge, precopy+dirty-limit=20MB/s',
          );
        }
        try {
          techniqueCase(name);
        } catch (error) {
          fail(item as Node, `technique "${name}": ${(error as Error).message}`);
        }
      }
      return name as TechniqueName;
    });
    unique(names, (i) => fail(list.items[i] as Node, `technique "${names[i]}" is listed twice`));
    return names;
  };
  const techniques = techniqueList(['techniques']) ?? [...TECHNIQUE_NAMES];

  const workloadsNode = node(['workloads']);
  if (!isSeq(workloadsNode) || workloadsNode.items.length === 0 || workloadsNode.items.length > 32) {
    return fail(workloadsNode ?? root, 'workloads: must be a list of 1 to 32 workloads');
  }
  const workloads: WorkloadCase[] = workloadsNode.items.map((_, i) => {
    const path = ['workloads', i];
    const entry = node(path);
    if (!isMap(entry)) return fail(entry, `workloads[${i}] must be a mapping with name: and workload:`);
    for (const pair of entry.items) {
      const key = String((pair.key as { value?: unknown }).value);
      if (!['name', 'workload', 'memory', 'init', 'probe'].includes(key)) {
        fail(pair.key as Node, `workloads[${i}]: unknown key "${key}" (known: name, workload, memory, init, probe)`);
      }
    }
    const name = value([...path, 'name']);
    const workload = value([...path, 'workload']);
    if (typeof name !== 'string' || name === '') return fail(entry, `workloads[${i}] needs a name:`);
    if (typeof workload !== 'string') return fail(entry, `workloads[${i}] (${name}) needs a workload: spec`);
    const memoryBytes = quantity([...path, 'memory'], parseSize, 'size') ?? vmMemory;
    const init = initOf(value([...path, 'init']) ?? vmInit, (why) =>
      fail(node([...path, 'init']), `workloads[${i}].init: ${why}`),
    );
    const probeIntervalMs = quantity([...path, 'probe'], parseDuration, 'duration');
    if (probeIntervalMs !== undefined && !(probeIntervalMs >= 1)) {
      fail(node([...path, 'probe']), `workloads[${i}] (${name}): probe: must be at least 1ms`);
    }
    try {
      parseVmSpec({
        memory: memoryBytes,
        init,
        workload,
        seed: 1,
        ...(workload.startsWith('kv') ? { nic: '127.0.0.1:1' } : {}),
      });
    } catch (error) {
      fail(node([...path, 'workload']), `workloads[${i}] (${name}): ${(error as Error).message}`);
    }
    if (probeIntervalMs !== undefined && !/^kv(:|$)/.test(workload)) {
      fail(node([...path, 'probe']), `workloads[${i}] (${name}): probe: needs a kv workload (a service to probe)`);
    }
    return { name, workload, memoryBytes, init, ...(probeIntervalMs === undefined ? {} : { probeIntervalMs }) };
  });
  unique(
    workloads.map((w) => w.name),
    (i) => fail(node(['workloads', i, 'name']), 'a workload name is used twice'),
  );

  const linksNode = node(['links']);
  if (!isSeq(linksNode) || linksNode.items.length === 0 || linksNode.items.length > 16) {
    return fail(linksNode ?? root, 'links: must be a list of 1 to 16 links');
  }
  const links: Matrix['links'] = linksNode.items.map((_, i) => {
    const path = ['links', i];
    const entry = node(path);
    if (!isMap(entry)) return fail(entry, `links[${i}] must be a mapping with name:`);
    for (const pair of entry.items) {
      const key = String((pair.key as { value?: unknown }).value);
      if (!['name', 'profile', 'max-bandwidth', 'workloads', 'techniques'].includes(key)) {
        fail(
          pair.key as Node,
          `links[${i}]: unknown key "${key}" (known: name, profile, max-bandwidth, workloads, techniques)`,
        );
      }
    }
    const name = value([...path, 'name']);
    if (typeof name !== 'string' || name === '') return fail(entry, `links[${i}] needs a name:`);
    const profile = value([...path, 'profile']);
    if (profile !== undefined && !(typeof profile === 'string' && profile in PROFILES)) {
      fail(
        node([...path, 'profile']),
        `unknown profile ${JSON.stringify(profile)} (known: ${Object.keys(PROFILES).join(', ')})`,
      );
    }
    const maxBandwidthBps = quantity([...path, 'max-bandwidth'], parseRate, 'rate') ?? null;
    if (maxBandwidthBps !== null && !(maxBandwidthBps > 0)) {
      fail(node([...path, 'max-bandwidth']), `links[${i}] (${name}): max-bandwidth must be more than 0`);
    }
    const only: unknown = node([...path, 'workloads'])?.toJSON(); // a list is a YAMLSeq: as plain values
    if (only !== undefined) {
      const list = node([...path, 'workloads']);
      if (!isSeq(list)) fail(list, `links[${i}].workloads must be a list of workload names`);
      for (const [j, w] of (only as unknown[]).entries()) {
        if (!workloads.some((x) => x.name === w)) {
          fail(node([...path, 'workloads', j]), `links[${i}] (${name}): no workload named ${JSON.stringify(w)}`);
        }
      }
    }
    const linkTechniques = techniqueList([...path, 'techniques']);
    return {
      name,
      kind: profile === undefined ? 'loopback' : 'lab',
      ...(profile === undefined ? {} : { profile: profile as string }),
      maxBandwidthBps,
      ...(only === undefined ? {} : { workloads: (only as unknown[]).map(String) }),
      ...(linkTechniques ? { techniques: linkTechniques } : {}),
    };
  });
  unique(
    links.map((l) => l.name),
    (i) => fail(node(['links', i, 'name']), 'a link name is used twice'),
  );
  return { repeat: repeat as number, techniques, workloads, links };
}

/** An --init spec (random, zero, realistic, mixed:…), as written; `bad` says why not. */
function initOf(raw: unknown, bad: (why: string) => never): string {
  if (typeof raw !== 'string') return bad(`must be an --init spec such as random, zero or realistic`);
  try {
    parseInitSpec(raw);
  } catch (error) {
    return bad((error as Error).message);
  }
  return raw;
}

function unique(names: readonly string[], duplicate: (index: number) => never): void {
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (seen.has(name)) duplicate(i);
    seen.add(name);
  });
}
