/**
 * Workload spec strings: `name[:param=value,…]`, e.g. `hotset:wss=64MiB,rate=20000`,
 * `uniform:rate=0`, `ab`. Parsing checks the name and every parameter against the registry and
 * the VM's memory size, fills in defaults, and returns the canonical form (every parameter, in
 * registry order, sizes in the largest exact binary unit) that reports and the register file
 * use, so two spellings of the same workload compare equal.
 */
import { MigrationError } from '../errors.ts';
import { parseSize } from '../units.ts';
import { WORKLOADS, findWorkload, type WorkloadDefinition, type WorkloadParams } from './workloads/index.ts';

/** A parsed workload spec. */
export interface WorkloadSpec {
  /** The registry entry. */
  definition: WorkloadDefinition;
  /** Every parameter, defaults filled in. */
  params: WorkloadParams;
  /** Canonical string, e.g. "hotset:wss=64MiB,rate=20000". */
  canonical: string;
}

/** Parses and validates a workload spec for a VM of `memoryBytes`. Throws ERR_INVALID_WORKLOAD. */
export function parseWorkloadSpec(text: string, memoryBytes: number): WorkloadSpec {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  const name = (colon < 0 ? trimmed : trimmed.slice(0, colon)).trim().toLowerCase();
  const definition = findWorkload(name);
  if (!definition) {
    throw new MigrationError('ERR_INVALID_WORKLOAD', `unknown workload "${name}" in "${text}". ${workloadSummary()}`);
  }
  const given = new Map<string, string>();
  const rest = colon < 0 ? '' : trimmed.slice(colon + 1).trim();
  for (const part of rest === '' ? [] : rest.split(',')) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (!definition.params.some((p) => p.name === key)) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `workload ${name} has no parameter "${key}" (it takes: ${paramList(definition)})`,
      );
    }
    if (value === '')
      throw new MigrationError('ERR_INVALID_WORKLOAD', `workload ${name}: parameter ${key} needs a value (${key}=…)`);
    if (given.has(key))
      throw new MigrationError('ERR_INVALID_WORKLOAD', `workload ${name}: parameter ${key} given twice`);
    given.set(key, value);
  }
  const params: Record<string, number> = {};
  for (const param of definition.params) {
    const raw = given.get(param.name);
    if (raw === undefined) {
      params[param.name] = typeof param.default === 'function' ? param.default(memoryBytes) : param.default;
    } else if (param.kind === 'size') {
      try {
        params[param.name] = parseSize(raw);
      } catch (error) {
        throw new MigrationError(
          'ERR_INVALID_WORKLOAD',
          `workload ${name}: ${param.name}=${raw} is not a size (e.g. 64MiB)`,
          {
            cause: error,
          },
        );
      }
    } else {
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        throw new MigrationError(
          'ERR_INVALID_WORKLOAD',
          `workload ${name}: ${param.name}=${raw} must be a non-negative whole number`,
        );
      }
      params[param.name] = Number(raw);
    }
  }
  definition.validate?.(params, memoryBytes);
  return { definition, params, canonical: formatWorkloadSpec(definition, params) };
}

/** The canonical spec string for a workload and its (complete) parameters. */
export function formatWorkloadSpec(definition: WorkloadDefinition, params: WorkloadParams): string {
  if (definition.params.length === 0) return definition.name;
  const parts = definition.params.map((p) => {
    const value = params[p.name] ?? 0;
    return `${p.name}=${p.kind === 'size' ? formatSizeSpec(value) : String(value)}`;
  });
  return `${definition.name}:${parts.join(',')}`;
}

/** A size in the largest binary unit that divides it exactly: 67108864 → "64MiB", 4097 → "4097". */
export function formatSizeSpec(bytes: number): string {
  for (const [unit, factor] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

/** One line naming every workload and its parameters, for error messages. */
export function workloadSummary(): string {
  return `Known workloads: ${WORKLOADS.map((w) => `${w.name} (${paramList(w)})`).join(', ')}; see livemig run-vm --help.`;
}

/** The registry as help text: one block per workload with its parameters and defaults. */
export function workloadHelp(): string {
  const lines = ['Workloads (--workload name[:param=value,…]):'];
  for (const w of WORKLOADS) {
    lines.push(`  ${w.name.padEnd(8)} ${w.summary}`);
    for (const p of w.params) {
      lines.push(`  ${''.padEnd(8)}   ${`${p.name}=`.padEnd(6)} ${p.description} (default ${p.defaultText})`);
    }
  }
  lines.push('  e.g. hotset:wss=64MiB,rate=20000   uniform:rate=0   ab');
  return lines.join('\n');
}

function paramList(definition: WorkloadDefinition): string {
  return definition.params.length ? definition.params.map((p) => p.name).join(', ') : 'no parameters';
}
