/**
 * `idle`: a halted guest that only takes timer ticks. Each step advances the step counter and
 * touches no memory, so the VM's memory never changes and it migrates in one round.
 */
import { R_STEP_HI, R_STEP_LO } from '../registers.ts';
import type { WorkloadDefinition } from './types.ts';

/** The idle workload. */
export const idle: WorkloadDefinition = {
  id: 1,
  name: 'idle',
  summary: 'a halted guest: timer ticks only, no memory writes',
  params: [
    {
      name: 'hz',
      kind: 'count',
      default: 1000,
      defaultText: '1000',
      description: 'timer ticks (steps) per second (0 = as fast as it can)',
    },
  ],
  writesPerStep: 0,
  stepsPerSecond: (params) => params.hz!,
  create({ regs }) {
    return {
      run(n) {
        const lo = regs[R_STEP_LO]! + n;
        regs[R_STEP_LO] = lo >>> 0;
        regs[R_STEP_HI] = (regs[R_STEP_HI]! + Math.floor(lo / 2 ** 32)) >>> 0;
      },
      nextPages: () => 0,
    };
  },
};
