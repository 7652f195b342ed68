/**
 * The workload registry: every workload the toy VM can run, with its parameters and a one-line
 * description. `livemig run-vm --help` and the error for a bad spec are generated from this table,
 * so adding a workload here is all it takes to offer it.
 */
import { ab } from './ab.ts';
import { hotset } from './hotset.ts';
import { disk } from './disk.ts';
import { idle } from './idle.ts';
import { kv } from './kv.ts';
import { sweep } from './sweep.ts';
import { uniform } from './uniform.ts';
import type { WorkloadDefinition } from './types.ts';

export type { WorkloadDefinition, WorkloadEnv, WorkloadParam, WorkloadParams, WorkloadProgram } from './types.ts';

/** All workloads, in the order --help lists them. */
export const WORKLOADS: readonly WorkloadDefinition[] = [idle, uniform, hotset, sweep, ab, kv, disk];

/** The workload called `name`, or undefined. */
export function findWorkload(name: string): WorkloadDefinition | undefined {
  return WORKLOADS.find((w) => w.name === name);
}
