/**
 * A technique with engine options, as one name (issue 17): `livemig compare`'s matrix names its
 * techniques this way, and the model's predictions are labelled with it. Pure.
 *
 *   technique := base ( '+' option )*          base: precopy | postcopy | hybrid
 *   option    := compress[=lz4|brotli|auto|off]          --compress (bare: lz4, every page through the fast codec)
 *              | compress-threads=N                      --compress-threads (1..16; with compress)
 *              | xbzrle[=on|off|auto]                    --xbzrle (bare: on)
 *              | xbzrle-cache=SIZE                       --xbzrle-cache, e.g. 64MiB (with xbzrle)
 *              | dedup[=on|off|auto]                     --dedup (bare: on)
 *              | auto-converge[=INITIAL/INCREMENT/MAX]   --auto-converge, its knobs in percent (bare: QEMU's 20/10/99)
 *              | dirty-limit=RATE                        --dirty-limit, a rate with its unit, e.g. 20MB/s
 *              | channels=N                              --channels, bulk channels (1..8; above 1 parallel, multifd)
 *
 * e.g. `precopy+compress`, `precopy+compress=brotli+xbzrle`, `hybrid+dedup`,
 * `precopy+auto-converge`, `precopy+auto-converge=30/20/95`, `precopy+dirty-limit=20MB/s`,
 * `precopy+channels=2`.
 * Each option at most once; auto-converge and dirty-limit not together (the engine refuses
 * both); a pure post-copy takes none (it pushes raw pages and has no rounds to throttle). An
 * option not given is the engine's default in a migration (compress auto, the rest off) and
 * not modelled in a prediction.
 */
import { MigrationError } from '../errors.ts';
import { formatBytes, formatRate, parseRate, parseSize } from '../units.ts';
import { AUTO_CONVERGE_DEFAULTS } from './throttle.ts';
import { MAX_CHANNELS } from '../multifd/partition.ts';
import { TECHNIQUES, type TechniqueOptions, type Technique } from './types.ts';

/** The option names, in the order a name is written back (formatTechnique). */
export const OPTION_NAMES = [
  'compress',
  'compress-threads',
  'xbzrle',
  'xbzrle-cache',
  'dedup',
  'auto-converge',
  'dirty-limit',
  'channels',
] as const;

export interface TechniqueSpec {
  base: Technique;
  options: TechniqueOptions;
}

const bad = (what: string): never => {
  throw new MigrationError('ERR_INVALID_ARGUMENT', what);
};

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  return (allowed as readonly string[]).includes(value)
    ? (value as T)
    : bad(`${what}: "${value}" is not one of ${allowed.join(', ')}`);
}

/** A units.ts parse, its error restated as ERR_INVALID_ARGUMENT (the matrix adds the line). */
function parsed<T>(parse: () => T, what: string): T {
  try {
    return parse();
  } catch (error) {
    return bad(`${what}: ${(error as Error).message}`);
  }
}

function percent(text: string, what: string): number {
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= 99 ? n : bad(`${what}: "${text}" is not a whole percent from 1 to 99`);
}

/** Parse `base+option+…`; throws ERR_INVALID_ARGUMENT saying what is wrong (the caller adds where). */
export function parseTechnique(name: string): TechniqueSpec {
  const [base = '', ...parts] = name.split('+');
  if (!(TECHNIQUES as readonly string[]).includes(base)) {
    bad(`"${base}" is not a technique (${TECHNIQUES.join(', ')}, each with +options)`);
  }
  const options: TechniqueOptions = {};
  const seen = new Set<string>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? undefined : part.slice(eq + 1);
    if (!(OPTION_NAMES as readonly string[]).includes(key)) {
      bad(`unknown option "${key}" in "${name}" (known: ${OPTION_NAMES.join(', ')})`);
    }
    if (seen.has(key)) bad(`option "${key}" given twice in "${name}"`);
    seen.add(key);
    if (value === '') bad(`option "${key}=" in "${name}" needs a value`);
    switch (key) {
      case 'compress':
        options.compress = oneOf(value ?? 'lz4', ['lz4', 'brotli', 'auto', 'off'] as const, 'compress');
        break;
      case 'compress-threads': {
        const n = Number(value);
        if (!(Number.isInteger(n) && n >= 1 && n <= 16))
          bad(`compress-threads: "${value}" is not a whole number from 1 to 16`);
        options.compressThreads = n;
        break;
      }
      case 'xbzrle':
        options.xbzrle = oneOf(value ?? 'on', ['on', 'off', 'auto'] as const, 'xbzrle');
        break;
      case 'xbzrle-cache':
        if (value === undefined) bad('xbzrle-cache needs a size, e.g. xbzrle-cache=64MiB');
        options.xbzrleCacheBytes = parsed(() => parseSize(value!), 'xbzrle-cache');
        break;
      case 'dedup':
        options.dedup = oneOf(value ?? 'on', ['on', 'off', 'auto'] as const, 'dedup');
        break;
      case 'auto-converge': {
        const d = AUTO_CONVERGE_DEFAULTS;
        const knobs = value === undefined ? [] : value.split('/');
        if (knobs.length > 3) bad(`auto-converge=${value}: give INITIAL/INCREMENT/MAX, percent (e.g. 20/10/99)`);
        const [initial, increment, max] = knobs.map((k, i) =>
          percent(k, `auto-converge ${['initial', 'increment', 'max'][i]}`),
        );
        options.throttle = {
          kind: 'auto-converge',
          initialPercent: initial ?? d.initialPercent,
          incrementPercent: increment ?? d.incrementPercent,
          maxPercent: max ?? d.maxPercent,
          triggerThresholdPercent: d.triggerThresholdPercent,
        };
        break;
      }
      case 'dirty-limit': {
        // A unit is required, as --dirty-limit requires one: "20" could be MB/s (QEMU's unit) or B/s.
        if (value === undefined || !/[a-z]/i.test(value))
          bad('dirty-limit needs a rate with its unit, e.g. dirty-limit=20MB/s');
        const limitBps = parsed(() => parseRate(value!), 'dirty-limit');
        if (!(limitBps > 0)) bad(`dirty-limit=${value}: the rate must be more than 0`);
        options.throttle = { kind: 'dirty-limit', limitBps, maxPercent: AUTO_CONVERGE_DEFAULTS.maxPercent };
        break;
      }
      case 'channels': {
        const n = Number(value);
        if (!(Number.isInteger(n) && n >= 1 && n <= MAX_CHANNELS))
          bad(`channels: "${value}" is not a whole number from 1 to ${MAX_CHANNELS}`);
        options.channels = n;
        break;
      }
    }
  }
  if (seen.has('auto-converge') && seen.has('dirty-limit')) {
    bad(`"${name}": auto-converge and dirty-limit are two ways to throttle; give one`);
  }
  if (
    seen.has('compress-threads') &&
    !(options.compress === 'lz4' || options.compress === 'brotli' || options.compress === 'auto')
  ) {
    bad(`"${name}": compress-threads needs compress`);
  }
  if (seen.has('xbzrle-cache') && !(options.xbzrle === 'on' || options.xbzrle === 'auto')) {
    bad(`"${name}": xbzrle-cache needs xbzrle`);
  }
  if (base === 'postcopy' && parts.length > 0) {
    bad(
      `"${name}": a pure post-copy takes no options (it pushes raw pages and has no pre-copy rounds to throttle); use hybrid`,
    );
  }
  return { base: base as Technique, options };
}

/** The name `parseTechnique` reads back to the same spec, options in OPTION_NAMES order. */
export function formatTechnique(spec: TechniqueSpec): string {
  const o = spec.options;
  const parts: string[] = [spec.base];
  if (o.compress !== undefined) parts.push(o.compress === 'lz4' ? 'compress' : `compress=${o.compress}`);
  if (o.compressThreads !== undefined) parts.push(`compress-threads=${o.compressThreads}`);
  if (o.xbzrle !== undefined) parts.push(o.xbzrle === 'on' ? 'xbzrle' : `xbzrle=${o.xbzrle}`);
  if (o.xbzrleCacheBytes !== undefined) parts.push(`xbzrle-cache=${o.xbzrleCacheBytes}B`);
  if (o.dedup !== undefined) parts.push(o.dedup === 'on' ? 'dedup' : `dedup=${o.dedup}`);
  const t = o.throttle;
  if (t?.kind === 'auto-converge') {
    const d = AUTO_CONVERGE_DEFAULTS;
    const defaults =
      t.initialPercent === d.initialPercent &&
      t.incrementPercent === d.incrementPercent &&
      t.maxPercent === d.maxPercent;
    parts.push(defaults ? 'auto-converge' : `auto-converge=${t.initialPercent}/${t.incrementPercent}/${t.maxPercent}`);
  }
  if (t?.kind === 'dirty-limit') parts.push(`dirty-limit=${t.limitBps}B/s`);
  if (o.channels !== undefined) parts.push(`channels=${o.channels}`);
  return parts.join('+');
}

/** Options in words, for a person ("compress lz4, auto-converge 20/10/99 %"); '' for none. */
export function describeOptions(o: TechniqueOptions | undefined): string {
  if (!o) return '';
  const words: string[] = [];
  if (o.compress !== undefined)
    words.push(`compress ${o.compress}${o.compressThreads ? ` ×${o.compressThreads}` : ''}`);
  if (o.xbzrle !== undefined)
    words.push(`xbzrle ${o.xbzrle}${o.xbzrleCacheBytes ? ` (${formatBytes(o.xbzrleCacheBytes)})` : ''}`);
  if (o.dedup !== undefined) words.push(`dedup ${o.dedup}`);
  if (o.throttle?.kind === 'auto-converge') {
    const t = o.throttle;
    words.push(`auto-converge ${t.initialPercent}/${t.incrementPercent}/${t.maxPercent} %`);
  }
  if (o.throttle?.kind === 'dirty-limit') words.push(`dirty-limit ${formatRate(o.throttle.limitBps)}`);
  if (o.channels !== undefined) words.push(o.channels === 1 ? 'one channel' : `${o.channels} parallel channels`);
  return words.join(', ');
}
