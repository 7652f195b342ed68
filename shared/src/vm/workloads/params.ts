/**
 * Parameter descriptors shared by several workloads (today: the write rate), so `rate` means
 * the same thing, with the same wording, everywhere.
 */
import type { WorkloadParam } from './types.ts';

/** The `rate` parameter: guest page writes per second, 0 = as fast as the vCPU can. */
export function rateParam(defaultRate: number): WorkloadParam {
  return {
    name: 'rate',
    kind: 'count',
    default: defaultRate,
    defaultText: String(defaultRate),
    description: 'guest page writes per second, paced by wall clock (0 = as fast as it can)',
  };
}
