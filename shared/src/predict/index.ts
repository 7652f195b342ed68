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
export { CHANNEL_SPEEDUP, channelsBandwidthBps, channelSpeedup, ONE_CHANNEL_BPS, withChannels } from './channels.ts';
export {
  activeEncodings,
  AUTO_COMPRESS_THREADS,
  COMPRESS_GAIN,
  compressThreadsFor,
  MODELLED_LEVELS,
  compressedPageRate,
  DEDUP_MAX_LINK_BPS,
  DEFAULT_COMPRESS_THREADS,
  DEFAULT_PAGE_FIGURES,
  DEFAULT_XBZRLE_CACHE_BYTES,
  DELTA_MAX_LINK_BPS,
  maxCompressThreads,
  SECOND_THREAD_MAX_LINK_BPS,
  pageFiguresFromReport,
  sendCost,
  type ActiveEncodings,
  type SendCost,
} from './encodings.ts';
export {
  AUTO_CONVERGE_DEFAULTS,
  cappedDirtyRate,
  dirtyLimitPercent,
  guestSpeed,
  HOT_ROUNDS_TO_START,
  nextThrottle,
  runFraction,
  throttledCurve,
  throttleRising,
  type ThrottleRound,
  type ThrottleState,
} from './throttle.ts';
export { codecFiguresOf, codecRatioOf, duplicateShare, samplePages, sampleCodecFigures } from './sample-pages.ts';
export { describeOptions, formatTechnique, OPTION_NAMES, parseTechnique, type TechniqueSpec } from './options.ts';
