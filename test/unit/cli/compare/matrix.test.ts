/**
 * `livemig compare`'s matrix (cli/compare/matrix.ts): a YAML file parsed into the matrix with its
 * defaults applied, every rejection ERR_INVALID_ARGUMENT naming the file and the line at fault;
 * the cells in run order; and the built-in default matrix holding the invariants the parser
 * enforces on a file (it goes through the parser itself, written out as YAML).
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseVmSpec } from '@livemig/shared/vm';
import { cellsOf, DEFAULT_MATRIX, parseMatrix, TECHNIQUE_NAMES, type Matrix } from '../../../../cli/compare/matrix.ts';
import { PROFILES } from '../../../../cli/lab/profiles.ts';

const MiB = 1024 * 1024;

/** Lines joined: line n of the file is `lines[n - 1]`. */
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

/** What parseMatrix throws for `text` (read as file m.yaml). */
function rejection(text: string): { code?: unknown; message: string } {
  try {
    parseMatrix(text, 'm.yaml');
  } catch (error) {
    return { code: (error as { code?: unknown }).code, message: (error as Error).message };
  }
  throw new Error(`parseMatrix accepted:\n${text}`);
}

describe('parseMatrix', () => {
  it('reads a full example: every key of the schema, workload overrides, link subsets and profiles', () => {
    const matrix = parseMatrix(
      yaml(
        'repeat: 2',
        'vm: { memory: 64MiB, init: zero }',
        'techniques: [precopy, postcopy, hybrid, auto:downtime, auto:total-time, auto:bytes]',
        'workloads:',
        '  - name: idle',
        '    workload: idle',
        '  - name: hot 40k',
        '    workload: hotset:wss=16MiB,rate=40000',
        '    memory: 128MiB',
        '    init: random',
        '  - name: kv',
        '    workload: kv',
        '    probe: 2ms',
        'links:',
        '  - name: loopback',
        '  - name: loopback 25 MB/s',
        '    max-bandwidth: 25MB/s',
        '    workloads: [idle, hot 40k]',
        '    techniques: [precopy]',
        '  - name: wan',
        '    profile: wan',
      ),
      'm.yaml',
    );
    expect(matrix).toStrictEqual({
      repeat: 2,
      techniques: ['precopy', 'postcopy', 'hybrid', 'auto:downtime', 'auto:total-time', 'auto:bytes'],
      workloads: [
        { name: 'idle', workload: 'idle', memoryBytes: 64 * MiB, init: 'zero' },
        { name: 'hot 40k', workload: 'hotset:wss=16MiB,rate=40000', memoryBytes: 128 * MiB, init: 'random' },
        { name: 'kv', workload: 'kv', memoryBytes: 64 * MiB, init: 'zero', probeIntervalMs: 2 },
      ],
      links: [
        { name: 'loopback', kind: 'loopback', maxBandwidthBps: null },
        {
          name: 'loopback 25 MB/s',
          kind: 'loopback',
          maxBandwidthBps: 25e6,
          workloads: ['idle', 'hot 40k'],
          techniques: ['precopy'],
        },
        { name: 'wan', kind: 'lab', profile: 'wan', maxBandwidthBps: null },
      ],
    });
  });

  it('applies the defaults: a 128 MiB VM of random pages, repeat 1, every technique', () => {
    const matrix = parseMatrix(yaml('workloads:', '  - name: idle', '    workload: idle', 'links:', '  - name: lo'));
    expect(matrix).toStrictEqual({
      repeat: 1,
      techniques: [...TECHNIQUE_NAMES],
      workloads: [{ name: 'idle', workload: 'idle', memoryBytes: 128 * MiB, init: 'random' }],
      links: [{ name: 'lo', kind: 'loopback', maxBandwidthBps: null }],
    });
    expect(TECHNIQUE_NAMES).toEqual([
      'precopy',
      'postcopy',
      'hybrid',
      'auto:downtime',
      'auto:total-time',
      'auto:bytes',
    ]);
  });

  it('vm: sets the default of every workload; a workload overrides memory and init on its own', () => {
    const matrix = parseMatrix(
      yaml(
        'vm: { memory: 32MiB, init: zero }',
        'workloads:',
        '  - { name: a, workload: idle }',
        '  - { name: b, workload: idle, memory: 48MiB }',
        '  - { name: c, workload: idle, init: random }',
        'links: [{ name: lo }]',
      ),
    );
    expect(matrix.workloads.map((w) => [w.name, w.memoryBytes / MiB, w.init])).toEqual([
      ['a', 32, 'zero'],
      ['b', 48, 'zero'],
      ['c', 32, 'random'],
    ]);
  });

  // Each: the file, the line the error must name, and what the message must say.
  const WORKLOAD = ['workloads:', '  - name: idle', '    workload: idle'];
  const LINK = ['links:', '  - name: lo'];
  it.each<[string, string[], number, RegExp]>([
    [
      'invalid YAML (a mapping key indented into the sequence above)',
      ['workloads:', '  - name: idle', '    workload: idle', '   links: x', ...LINK],
      4,
      /not valid YAML/,
    ],
    [
      'invalid YAML (a key given twice)',
      ['workloads:', '  - name: idle', '    workload: idle', '    workload: idle', ...LINK],
      4,
      /not valid YAML: Map keys must be unique/,
    ],
    [
      'an unknown top-level key',
      ['repeat: 1', ...WORKLOAD, 'technique: [precopy]', ...LINK],
      5,
      /unknown key "technique"/,
    ],
    [
      'an unknown technique',
      ['techniques:', '  - precopy', '  - warp', ...WORKLOAD, ...LINK],
      3,
      /unknown technique "warp" \(known: precopy, postcopy, hybrid, auto:downtime, auto:total-time, auto:bytes\)/,
    ],
    [
      "an unknown technique in a link's techniques:",
      [...WORKLOAD, ...LINK, '    techniques:', '      - precopy', '      - auto:fastest'],
      8,
      /unknown technique "auto:fastest"/,
    ],
    [
      'a workload spec the VM parser refuses (an unknown workload)',
      ['workloads:', '  - name: idle', '    workload: idle', '  - name: odd', '    workload: bogus:rate=1', ...LINK],
      5,
      /workloads\[1\] \(odd\): unknown workload "bogus"/,
    ],
    [
      "a workload spec the VM parser refuses (a hot set larger than the VM's memory)",
      ['vm: { memory: 32MiB }', 'workloads:', '  - name: big', '    workload: hotset:wss=64MiB,rate=1000', ...LINK],
      4,
      /workloads\[0\] \(big\): hotset: wss .* is larger than the VM's memory/,
    ],
    [
      'a duplicate workload name',
      [...WORKLOAD, '  - name: idle', '    workload: uniform:rate=100', ...LINK],
      4,
      /a workload name is used twice/,
    ],
    [
      'probe: on a workload that is not kv',
      [...WORKLOAD, '  - name: hot', '    workload: hotset:wss=4MiB,rate=1000', '    probe: 2ms', ...LINK],
      6,
      /workloads\[1\] \(hot\): probe: needs a kv workload/,
    ],
    [
      'an unknown profile',
      [...WORKLOAD, ...LINK, '  - name: far', '    profile: moon'],
      7,
      /unknown profile "moon" \(known: lan, wan, constrained\)/,
    ],
    [
      "a link's workloads: naming a workload that does not exist",
      [...WORKLOAD, ...LINK, '    workloads:', '      - idle', '      - hot 80k'],
      8,
      /links\[0\] \(lo\): no workload named "hot 80k"/,
    ],
    ['repeat: 0', [...WORKLOAD, ...LINK, 'repeat: 0'], 6, /repeat must be a whole number from 1 to 20, got 0/],
    ['an unknown key under vm:', ['vm:', '  memroy: 64MiB', ...WORKLOAD, ...LINK], 2, /vm: unknown key "memroy"/],
    ['vm: that is not a mapping', ['vm: 64MiB', ...WORKLOAD, ...LINK], 1, /vm: must be a mapping/],
    [
      'probe: 0ms',
      [...WORKLOAD, '  - name: kv', '    workload: kv', '    probe: 0ms', ...LINK],
      6,
      /workloads\[1\] \(kv\): probe: must be at least 1ms/,
    ],
    [
      'max-bandwidth: 0',
      [...WORKLOAD, ...LINK, '    max-bandwidth: 0'],
      6,
      /links\[0\] \(lo\): max-bandwidth must be more than 0/,
    ],
  ])('rejects %s, naming the line', (_what, lines, line, message) => {
    const error = rejection(yaml(...lines));
    expect(error.code, error.message).toBe('ERR_INVALID_ARGUMENT');
    expect(error.message.startsWith(`m.yaml:${line}: `), error.message).toBe(true);
    expect(error.message).toMatch(message);
  });

  it("names the file it was given (default: matrix) and a link's workloads: in flow style by its line", () => {
    const text = yaml(
      ...['workloads:', '  - name: idle', '    workload: idle'],
      'links:',
      '  - { name: lo, workloads: [nope] }',
    );
    expect(() => parseMatrix(text, 'dir/my matrix.yaml')).toThrow(/^dir\/my matrix\.yaml:5: /);
    expect(() => parseMatrix(text)).toThrow(/^matrix:5: links\[0\] \(lo\): no workload named "nope"/);
  });
});

describe('cellsOf', () => {
  const workload = (name: string): Matrix['workloads'][number] => ({
    name,
    workload: 'idle',
    memoryBytes: 32 * MiB,
    init: 'random',
  });
  const matrix: Matrix = {
    repeat: 2,
    techniques: ['precopy', 'postcopy', 'auto:bytes'],
    workloads: [workload('a'), workload('b'), workload('c')],
    links: [
      { name: 'lo', kind: 'loopback', maxBandwidthBps: null, workloads: ['c', 'a'] },
      { name: 'capped', kind: 'loopback', maxBandwidthBps: 25e6, techniques: ['auto:bytes', 'precopy'] },
      { name: 'wan', kind: 'lab', profile: 'wan', maxBandwidthBps: null, workloads: ['b'], techniques: ['postcopy'] },
    ],
  };

  it("orders link by link, then repeat, workload, technique (the matrix's order), honouring each link's subsets", () => {
    expect(cellsOf(matrix).map((c) => c.id)).toEqual([
      // lo: workloads a and c (in the matrix's order, not the subset's), every technique.
      'lo/a/precopy/1',
      'lo/a/postcopy/1',
      'lo/a/auto:bytes/1',
      'lo/c/precopy/1',
      'lo/c/postcopy/1',
      'lo/c/auto:bytes/1',
      'lo/a/precopy/2',
      'lo/a/postcopy/2',
      'lo/a/auto:bytes/2',
      'lo/c/precopy/2',
      'lo/c/postcopy/2',
      'lo/c/auto:bytes/2',
      // capped: every workload, techniques precopy and auto:bytes.
      'capped/a/precopy/1',
      'capped/a/auto:bytes/1',
      'capped/b/precopy/1',
      'capped/b/auto:bytes/1',
      'capped/c/precopy/1',
      'capped/c/auto:bytes/1',
      'capped/a/precopy/2',
      'capped/a/auto:bytes/2',
      'capped/b/precopy/2',
      'capped/b/auto:bytes/2',
      'capped/c/precopy/2',
      'capped/c/auto:bytes/2',
      // wan: one workload, one technique.
      'wan/b/postcopy/1',
      'wan/b/postcopy/2',
    ]);
  });

  it('each cell carries its technique, workload, repeat and the link without its subsets', () => {
    const cells = cellsOf(matrix);
    const wan = cells.find((c) => c.id === 'wan/b/postcopy/2');
    expect(wan).toStrictEqual({
      id: 'wan/b/postcopy/2',
      technique: 'postcopy',
      workload: workload('b'),
      link: { name: 'wan', kind: 'lab', profile: 'wan', maxBandwidthBps: null },
      repeat: 2,
    });
    for (const cell of cells) {
      expect(cell.link).not.toHaveProperty('workloads');
      expect(cell.link).not.toHaveProperty('techniques');
    }
  });

  it('runs only the links given (the runnable ones), in their order', () => {
    const cells = cellsOf(matrix, [matrix.links[2]!, matrix.links[0]!]);
    expect(cells.map((c) => c.id).slice(0, 3)).toEqual(['wan/b/postcopy/1', 'wan/b/postcopy/2', 'lo/a/precopy/1']);
    expect(cells).toHaveLength(2 + 12);
  });

  it('a matrix read from YAML gives the same cells as one written in code', () => {
    const parsed = parseMatrix(
      yaml(
        'repeat: 2',
        'vm: { memory: 32MiB }',
        'techniques: [precopy, postcopy, auto:bytes]',
        'workloads:',
        '  - { name: a, workload: idle }',
        '  - { name: b, workload: idle }',
        '  - { name: c, workload: idle }',
        'links:',
        '  - { name: lo, workloads: [c, a] }',
        '  - { name: capped, max-bandwidth: 25MB/s, techniques: [auto:bytes, precopy] }',
        '  - { name: wan, profile: wan, workloads: [b], techniques: [postcopy] }',
      ),
    );
    expect(cellsOf(parsed)).toStrictEqual(cellsOf(matrix));
  });
});

describe('DEFAULT_MATRIX', () => {
  /** The matrix as the YAML file that would describe it. */
  function asYaml(m: Matrix): string {
    return stringify({
      repeat: m.repeat,
      techniques: m.techniques,
      workloads: m.workloads.map((w) => ({
        name: w.name,
        workload: w.workload,
        memory: String(w.memoryBytes),
        init: w.init,
        ...(w.probeIntervalMs === undefined ? {} : { probe: `${w.probeIntervalMs}ms` }),
      })),
      links: m.links.map((l) => ({
        name: l.name,
        ...(l.profile === undefined ? {} : { profile: l.profile }),
        ...(l.maxBandwidthBps === null ? {} : { 'max-bandwidth': String(l.maxBandwidthBps) }),
        ...(l.workloads ? { workloads: l.workloads } : {}),
        ...(l.techniques ? { techniques: l.techniques } : {}),
      })),
    });
  }

  it('passes its own parser: written as YAML and read back, it is the same matrix', () => {
    expect(parseMatrix(asYaml(DEFAULT_MATRIX), 'default.yaml')).toStrictEqual(DEFAULT_MATRIX);
  });

  it('holds the invariants: unique names, real profiles, subsets of what the matrix has, VM specs that parse', () => {
    const { workloads, links, techniques } = DEFAULT_MATRIX;
    expect(new Set(workloads.map((w) => w.name)).size).toBe(workloads.length);
    expect(new Set(links.map((l) => l.name)).size).toBe(links.length);
    expect(techniques.every((t) => TECHNIQUE_NAMES.includes(t))).toBe(true);
    for (const link of links) {
      if (link.kind === 'lab') expect(Object.keys(PROFILES), link.name).toContain(link.profile);
      else expect(link.profile, link.name).toBeUndefined();
      for (const name of link.workloads ?? [])
        expect(
          workloads.map((w) => w.name),
          link.name,
        ).toContain(name);
      for (const t of link.techniques ?? []) expect(techniques, link.name).toContain(t);
    }
    for (const w of workloads) {
      const kv = /^kv(:|$)/.test(w.workload);
      expect(() =>
        parseVmSpec({
          memory: w.memoryBytes,
          init: w.init,
          workload: w.workload,
          seed: 1,
          ...(kv ? { nic: '127.0.0.1:1' } : {}),
        }),
      ).not.toThrow();
      if (w.probeIntervalMs !== undefined) expect(kv, w.name).toBe(true);
    }
    // Every link runs at least one cell.
    for (const link of links) expect(cellsOf(DEFAULT_MATRIX, [link]).length, link.name).toBeGreaterThan(0);
  });
});

describe('techniques with engine options (issue 17)', () => {
  const WORKLOAD = ['workloads:', '  - name: hot', '    workload: hotset:wss=4MiB,rate=1000'];
  const LINK = ['links:', '  - name: lo'];

  it('reads base+options names as written, at the top and in a link, and any --init', () => {
    const matrix = parseMatrix(
      yaml(
        'techniques: [precopy, precopy+compress, precopy+xbzrle+dedup, precopy+auto-converge, precopy+dirty-limit=20MB/s]',
        'vm: { memory: 32MiB, init: realistic }',
        ...WORKLOAD,
        '    init: mixed:zero=0.5,text=0.5',
        ...LINK,
        '    techniques: [precopy+compress=brotli, hybrid+auto-converge=30/10/90]',
      ),
      'm.yaml',
    );
    expect(matrix.techniques).toEqual([
      'precopy',
      'precopy+compress',
      'precopy+xbzrle+dedup',
      'precopy+auto-converge',
      'precopy+dirty-limit=20MB/s',
    ]);
    expect(matrix.links[0]!.techniques).toEqual(['precopy+compress=brotli', 'hybrid+auto-converge=30/10/90']);
    expect(matrix.workloads[0]!.init).toBe('mixed:zero=0.5,text=0.5');
    expect(parseMatrix(yaml('vm: { init: realistic }', ...WORKLOAD, ...LINK)).workloads[0]!.init).toBe('realistic');
  });

  it.each<[string, string[], number, RegExp]>([
    [
      'an unknown option',
      ['techniques:', '  - precopy', '  - precopy+zstd', ...WORKLOAD, ...LINK],
      3,
      /technique "precopy\+zstd": unknown option "zstd"/,
    ],
    [
      'both throttles',
      ['techniques:', '  - precopy+auto-converge+dirty-limit=20MB/s', ...WORKLOAD, ...LINK],
      2,
      /two ways to throttle/,
    ],
    [
      'a dirty-limit without a unit',
      ['techniques: [precopy+dirty-limit=20]', ...WORKLOAD, ...LINK],
      1,
      /with its unit/,
    ],
    [
      'options on a pure post-copy',
      [...WORKLOAD, ...LINK, '    techniques:', '      - postcopy+compress'],
      7,
      /a pure post-copy takes no options/,
    ],
    [
      'options on auto',
      ['techniques:', '  - auto:downtime+compress', ...WORKLOAD, ...LINK],
      2,
      /auto's objective is one of/,
    ],
    [
      'a technique listed twice',
      ['techniques:', '  - precopy+xbzrle', '  - precopy+xbzrle', ...WORKLOAD, ...LINK],
      3,
      /listed twice/,
    ],
    ['an --init that does not parse', ['vm: { init: lumpy }', ...WORKLOAD, ...LINK], 1, /vm\.init: /],
    [
      'an --init that does not parse, on a workload',
      [...WORKLOAD, '    init: mixed:zero=2', ...LINK],
      4,
      /workloads\[0\]\.init: /,
    ],
  ])('rejects %s, naming the line', (_what, lines, line, message) => {
    const error = rejection(yaml(...lines));
    expect(error.code, error.message).toBe('ERR_INVALID_ARGUMENT');
    expect(error.message.startsWith(`m.yaml:${line}: `), error.message).toBe(true);
    expect(error.message).toMatch(message);
  });

  it('the default matrix has none: its techniques and runtime stay as budgeted', () => {
    expect(DEFAULT_MATRIX.techniques).toEqual(['precopy', 'postcopy', 'hybrid', 'auto:downtime', 'auto:total-time']);
    for (const link of DEFAULT_MATRIX.links) {
      for (const t of link.techniques ?? []) expect(t).not.toContain('+');
    }
    expect(cellsOf(DEFAULT_MATRIX)).toHaveLength(5 * 5 + 2 * 2 * 3 + 5 * 5 + 3 * 4);
  });

  it('the example matrix (docs/compare-encodings.yaml) parses and runs each new technique', async () => {
    const { readFile } = await import('node:fs/promises');
    const file = new URL('../../../../docs/compare-encodings.yaml', import.meta.url);
    const matrix = parseMatrix(await readFile(file, 'utf8'), 'docs/compare-encodings.yaml');
    const names = cellsOf(matrix).map((c) => c.technique);
    for (const option of ['compress', 'xbzrle', 'dedup', 'auto-converge', 'dirty-limit=']) {
      expect(
        names.some((n) => n.includes(`+${option}`)),
        option,
      ).toBe(true);
    }
  });
});
