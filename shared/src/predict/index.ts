export * from './types.ts';
export { dirtiedIn, fitDirtyCurve } from './dirty-curve.ts';
export {
  DEFAULT_OVERHEADS,
  overheadsFromIdle,
  PAGE_OVERHEAD_BYTES,
  predict,
  predictAll,
  type Overheads,
} from './model.ts';
export { choose } from './choose.ts';
