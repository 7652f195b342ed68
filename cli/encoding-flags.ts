/**
 * The page-encoding flags `migrate` and `demo` share (issue 17), as QEMU users know them:
 * `--xbzrle` (QEMU's xbzrle capability) with `--xbzrle-cache` (xbzrle-cache-size), `--dedup`,
 * `--compress` (multifd-compression, but chosen per batch from measurements by default) with
 * `--compress-threads`. The agent checks the values again (encoding-params.ts).
 */
import type { Command } from 'commander';
import { COMPRESSION_CODECS } from '@livemig/shared/codec';
import type { MigrateParams } from '@livemig/shared/control';
import { intInRangeFlag, oneOf, sizeFlag } from './options.ts';

export interface EncodingFlags {
  xbzrle?: 'auto' | 'on' | 'off';
  xbzrleCache?: number;
  dedup?: 'auto' | 'on' | 'off';
  compress?: 'auto' | 'off' | (typeof COMPRESSION_CODECS)[number];
  compressThreads?: number;
}

const MODES = ['auto', 'on', 'off'] as const;
const COMPRESS = ['auto', 'off', ...COMPRESSION_CODECS] as const;

export function addEncodingOptions(command: Command): Command {
  return command
    .option(
      '--xbzrle <mode>',
      'XBZRLE deltas of re-sent pages against the last version sent (QEMU xbzrle): auto | on | off; auto uses them on links slower than 400 MB/s (default off)',
      oneOf(MODES),
    )
    .option(
      '--xbzrle-cache <size>',
      "the source's cache of sent pages for --xbzrle, e.g. 64MiB (QEMU xbzrle-cache-size; default 64MiB)",
      sizeFlag,
    )
    .option(
      '--dedup <mode>',
      'send a page whose content the destination already got as a reference (SHA-256): auto | on | off; auto below 250 MB/s (default off)',
      oneOf(MODES),
    )
    .option(
      '--compress <codec>',
      `compress pages in worker threads: ${COMPRESS.join(' | ')}; auto picks a codec per batch when the link, not the CPU, is the bottleneck, and none on a fast link (default auto)`,
      oneOf(COMPRESS),
    )
    .option(
      '--compress-threads <n>',
      'worker threads compressing, fixed (default: one, and a second where the codec, not the link, is the limit)',
      intInRangeFlag(1, 16),
    );
}

/** The flags given, as MigrateParams fields (absent ones left to the agent's defaults). */
export function encodingParams(flags: EncodingFlags): Partial<MigrateParams> {
  return {
    ...(flags.xbzrle === undefined ? {} : { xbzrle: flags.xbzrle }),
    ...(flags.xbzrleCache === undefined ? {} : { xbzrleCacheBytes: flags.xbzrleCache }),
    ...(flags.dedup === undefined ? {} : { dedup: flags.dedup }),
    ...(flags.compress === undefined ? {} : { compress: flags.compress }),
    ...(flags.compressThreads === undefined ? {} : { compressThreads: flags.compressThreads }),
  };
}
