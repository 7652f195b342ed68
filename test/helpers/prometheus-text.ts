/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests that scrape
 * an agent: it throws, naming the line, on anything a Prometheus server would reject or that the
 * format forbids — a sample before its family's TYPE or outside it, a HELP or TYPE given twice,
 * a bad metric or label name, a bad escape, a value that is not a number, histogram buckets that
 * are not cumulative or whose +Inf bucket differs from _count.
 *
 *   const families = parsePrometheusText(await (await fetch(url)).text());
 *   value(families, 'livemig_vms', { state: 'running' })  // 1
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name (e.g. x_bucket, x_sum, x_count for a histogram x). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string | undefined;
  type: MetricType;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

/** Parse an exposition into its families, by name; throws on any violation of the format. */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  /** Families whose samples have ended (another family's began): they may not come back. */
  const closed = new Set<string>();
  /** Families that had their TYPE line. */
  const typed = new Set<string>();
  let current: MetricFamily | undefined;
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('the exposition must end with a newline');
  lines.forEach((line, index) => {
    const where = `line ${index + 1} (${JSON.stringify(line.slice(0, 80))})`;
    const fail = (why: string): never => {
      throw new Error(`${where}: ${why}`);
    };
    if (line === '') return;
    const meta = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
    if (meta) {
      const [, keyword, name, rest = ''] = meta as unknown as [string, 'HELP' | 'TYPE', string, string?];
      if (!METRIC_NAME.test(name)) fail(`bad metric name ${name}`);
      if (closed.has(name)) fail(`${name} appears again after other families`);
      let family = families.get(name);
      if (family && family !== current) fail(`${name} is not contiguous`);
      if (!family) {
        if (current) closed.add(current.name);
        family = { name, help: undefined, type: 'untyped', samples: [] };
        families.set(name, family);
        current = family;
      }
      if (keyword === 'HELP') {
        if (family.help !== undefined) fail(`a second HELP for ${name}`);
        family.help = unescape(rest, false, fail);
      } else {
        if (typed.has(name)) fail(`a second TYPE for ${name}`);
        if (family.samples.length > 0) fail(`TYPE for ${name} after its samples`);
        if (!(TYPES as readonly string[]).includes(rest)) fail(`unknown type "${rest}"`);
        family.type = rest as MetricType;
        typed.add(name);
      }
      return;
    }
    if (line.startsWith('#')) return; // a comment
    const sample = parseSample(line, fail);
    const family = current && belongsTo(sample.name, current) ? current : undefined;
    if (!family) {
      if (families.has(sample.name) || closed.has(sample.name)) fail(`${sample.name} outside its family`);
      // An untyped family with no metadata.
      if (current) closed.add(current.name);
      current = { name: sample.name, help: undefined, type: 'untyped', samples: [sample] };
      families.set(sample.name, current);
      return;
    }
    if (family.type === 'histogram' && sample.name === `${family.name}_bucket` && sample.labels.le === undefined) {
      fail('a histogram bucket without le');
    }
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

/** The value of the sample of `family` (or of its sub-series `name`) with exactly these labels. */
export function value(
  families: Map<string, MetricFamily>,
  family: string,
  labels: Record<string, string> = {},
  name = family,
): number | undefined {
  const found = families.get(family)?.samples.find((s) => s.name === name && sameLabels(s.labels, labels));
  return found?.value;
}

/** A histogram's count, sum and cumulative buckets (by le) for one label set. */
export function histogram(
  families: Map<string, MetricFamily>,
  family: string,
  labels: Record<string, string> = {},
): { count: number; sum: number; buckets: Array<{ le: number; count: number }> } {
  const f = families.get(family);
  if (f?.type !== 'histogram') throw new Error(`${family} is not a histogram`);
  const count = value(families, family, labels, `${family}_count`);
  const sum = value(families, family, labels, `${family}_sum`);
  if (count === undefined || sum === undefined) throw new Error(`${family}${JSON.stringify(labels)}: no such series`);
  const buckets = f.samples
    .filter((s) => s.name === `${family}_bucket` && sameLabels(withoutLe(s.labels), labels))
    .map((s) => ({ le: Number(s.labels.le === '+Inf' ? Infinity : s.labels.le), count: s.value }));
  return { count, sum, buckets };
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function withoutLe(labels: Record<string, string>): Record<string, string> {
  const rest = { ...labels };
  delete rest.le;
  return rest;
}

function belongsTo(sample: string, family: MetricFamily): boolean {
  if (sample === family.name) return family.type !== 'histogram';
  const suffixes =
    family.type === 'histogram' ? ['_bucket', '_sum', '_count'] : family.type === 'summary' ? ['_sum', '_count'] : [];
  return suffixes.some((suffix) => sample === family.name + suffix);
}

/** `name{a="x",b="y"} value [timestamp]` */
function parseSample(line: string, fail: (why: string) => never): Sample {
  const head = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (!head) return fail('not a sample line');
  const name = head[1]!;
  let at = name.length;
  const labels: Record<string, string> = {};
  if (line[at] === '{') {
    at += 1;
    while (line[at] !== '}') {
      const label = /^([^=\s]+)="/.exec(line.slice(at));
      if (!label) return fail('bad label');
      const labelName = label[1]!;
      if (!LABEL_NAME.test(labelName)) fail(`bad label name ${labelName}`);
      if (Object.hasOwn(labels, labelName)) fail(`label ${labelName} twice`);
      at += label[0].length;
      let raw = '';
      while (at < line.length && line[at] !== '"') {
        if (line[at] === '\\') raw += line[at++];
        raw += line[at++] ?? '';
      }
      if (line[at] !== '"') return fail('unterminated label value');
      labels[labelName] = unescape(raw, true, fail);
      at += 1;
      if (line[at] === ',') at += 1;
      else if (line[at] !== '}') return fail('expected , or } after a label');
    }
    at += 1;
  }
  const rest = /^ +(\S+)(?: +(-?\d+))?$/.exec(line.slice(at));
  if (!rest) return fail('expected " value [timestamp]"');
  return { name, labels, value: parseValue(rest[1]!, fail) };
}

/** A float as Prometheus reads one (Go's ParseFloat: NaN and Inf in any case, e.g. prom-client's "Nan"). */
function parseValue(text: string, fail: (why: string) => never): number {
  if (/^nan$/i.test(text)) return Number.NaN;
  const infinite = /^([+-]?)inf(inity)?$/i.exec(text);
  if (infinite) return infinite[1] === '-' ? -Infinity : Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return fail(`bad value ${text}`);
  return Number(text);
}

/** HELP text escapes \\ and \n; label values also \". */
function unescape(raw: string, quotes: boolean, fail: (why: string) => never): string {
  return raw.replace(/\\(.?)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    if (c === '"' && quotes) return '"';
    return fail(`bad escape \\${c}`);
  });
}

function checkHistogram(family: MetricFamily): void {
  const series = new Map<string, { buckets: Array<{ le: number; count: number }>; count?: number }>();
  const keyOf = (labels: Record<string, string>): string => JSON.stringify(Object.entries(withoutLe(labels)).sort());
  for (const s of family.samples) {
    const entry = series.get(keyOf(s.labels)) ?? { buckets: [] };
    series.set(keyOf(s.labels), entry);
    if (s.name.endsWith('_bucket')) {
      entry.buckets.push({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value });
    } else if (s.name.endsWith('_count')) entry.count = s.value;
  }
  for (const [key, { buckets, count }] of series) {
    const where = `${family.name}${key}`;
    if (buckets.at(-1)?.le !== Infinity) throw new Error(`${where}: no +Inf bucket last`);
    buckets.forEach((b, i) => {
      if (Number.isNaN(b.le)) throw new Error(`${where}: bad le`);
      const previous = buckets[i - 1];
      if (previous && (b.le <= previous.le || b.count < previous.count)) {
        throw new Error(`${where}: buckets not increasing and cumulative at le=${b.le}`);
      }
    });
    if (count !== buckets.at(-1)!.count)
      throw new Error(`${where}: +Inf bucket ${buckets.at(-1)!.count} ≠ count ${count}`);
  }
}
