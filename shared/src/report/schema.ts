/**
 * JSON Schema (draft 2020-12 subset) of the schema-1 report, for programs that consume
 * `--json` output and for our tests. Extra fields are allowed, contract fields are required; an
 * extra field the schema describes (`storage`, `dirtyRate`, `auto`, `throttle`, `encodings`,
 * `threads`, `prefault`, `channels`) is checked whole
 * when present.
 */
import { MIGRATION_MODES, STORAGE_MODES } from '../protocol/message-types.ts';
import { OBJECTIVES, TECHNIQUES } from '../predict/types.ts';

const num = { type: 'number' } as const;
const str = { type: 'string' } as const;
/** A guest write-latency sample (StorageReport.writeLatencyMs), or null: none measured. */
const WRITE_LATENCY = {
  oneOf: [
    { type: 'null' },
    { type: 'object', required: ['count', 'p50', 'p99'], properties: { count: num, p50: num, p99: num } },
  ],
} as const;
/** A throttle, percent of the vCPU's time taken away. */
const PERCENT = { type: 'number', minimum: 0, maximum: 100 } as const;
const NUM_OR_NULL = { type: ['number', 'null'] } as const;
/** A non-negative duration, ms. */
const MS = { type: 'number', minimum: 0 } as const;
/** One side's threads (report/threads.ts SideThreads). */
const SIDE_THREADS = {
  type: 'object',
  required: ['wallMs', 'cpuMs', 'threads'],
  properties: {
    wallMs: MS,
    cpuMs: MS,
    threads: {
      type: 'array',
      maxItems: 32,
      items: {
        type: 'object',
        required: ['name', 'cpuMs', 'wallMs'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 32 },
          cpuMs: { type: ['number', 'null'], minimum: 0 },
          wallMs: MS,
        },
      },
    },
  },
} as const;
/** What one bulk channel carried (ChannelFigures). */
const CHANNEL_FIGURES = {
  type: 'object',
  required: ['pages', 'bytes', 'wireBytes'],
  properties: {
    pages: { type: 'integer', minimum: 0 },
    bytes: { type: 'integer', minimum: 0 },
    wireBytes: { type: 'integer', minimum: 0 },
  },
} as const;
/** An instant as Date.toISOString() writes it (UTC). */
const ISO_TIME = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$' } as const;

export const REPORT_JSON_SCHEMA = {
  $id: 'https://livemig.invalid/schemas/report-1.json',
  type: 'object',
  required: [
    'schema',
    'migrationId',
    'agents',
    'mode',
    'outcome',
    'error',
    'vm',
    'times',
    'bytes',
    'pages',
    'rounds',
    'verify',
    'network',
    'security',
  ],
  properties: {
    schema: { const: 'livemig.report/1' },
    migrationId: str,
    agents: {
      type: 'object',
      required: ['source', 'dest'],
      properties: { source: str, dest: { type: ['string', 'null'] } },
    },
    mode: { enum: MIGRATION_MODES },
    outcome: { enum: ['completed', 'failed', 'cancelled'] },
    error: {
      oneOf: [
        { type: 'null' },
        { type: 'object', required: ['code', 'message'], properties: { code: str, message: str } },
      ],
    },
    vm: {
      type: 'object',
      required: ['memoryBytes', 'pageSize', 'workload'],
      properties: { memoryBytes: num, pageSize: num, workload: str },
    },
    times: {
      type: 'object',
      required: ['startedAt', 'endedAt', 'totalMs', 'downtimeMs', 'setupMs'],
      properties: {
        startedAt: ISO_TIME,
        endedAt: ISO_TIME,
        totalMs: num,
        downtimeMs: { type: ['number', 'null'] },
        setupMs: num,
        downtimeNote: str,
      },
    },
    bytes: { type: 'object', required: ['wire', 'pagePayload'], properties: { wire: num, pagePayload: num } },
    pages: {
      type: 'object',
      required: ['total', 'sent', 'zero', 'resent', 'faulted'],
      properties: { total: num, sent: num, zero: num, resent: num, faulted: num },
    },
    rounds: {
      type: 'array',
      items: {
        type: 'object',
        required: ['index', 'pages', 'bytes', 'ms', 'bandwidthBps', 'dirtyAfter'],
        properties: {
          index: num,
          pages: num,
          bytes: num,
          ms: num,
          bandwidthBps: num,
          dirtyAfter: num,
          cpuThrottlePercent: PERCENT,
          guestStepsPerSec: { type: 'number', minimum: 0 },
        },
      },
    },
    verify: {
      type: 'object',
      required: ['sourceDigest', 'destDigest', 'match'],
      properties: {
        sourceDigest: { type: ['string', 'null'] },
        destDigest: { type: ['string', 'null'] },
        match: { type: ['boolean', 'null'] },
        sections: {
          type: 'object',
          additionalProperties: {
            type: 'object',
            required: ['source', 'dest', 'match'],
            properties: {
              source: { type: ['string', 'null'] },
              dest: { type: ['string', 'null'] },
              match: { type: 'boolean' },
            },
          },
        },
      },
    },
    security: {
      oneOf: [
        { type: 'null' },
        {
          type: 'object',
          required: ['tls', 'cipher', 'sourceName', 'destName', 'ticket'],
          properties: { tls: str, cipher: str, sourceName: str, destName: str, ticket: { type: 'boolean' } },
        },
      ],
    },
    record: {
      type: 'object',
      required: ['record', 'signature', 'countersignature'],
      properties: {
        record: { type: 'object', required: ['schema', 'migrationId', 'outcome'], properties: { schema: str } },
        signature: { type: ['object', 'null'] },
        countersignature: {
          type: 'object',
          required: ['status'],
          properties: { status: { enum: ['signed', 'refused', 'missing'] } },
        },
      },
    },
    storage: {
      type: 'object',
      required: [
        'mode',
        'sizeBytes',
        'allocatedBytes',
        'wireBytes',
        'blocksCopied',
        'blocksResent',
        'blocksMirrored',
        'blocksFetched',
        'blocksPushed',
        'rounds',
        'writeLatencyMs',
      ],
      properties: {
        mode: { enum: STORAGE_MODES },
        sizeBytes: num,
        allocatedBytes: num,
        wireBytes: num,
        blocksCopied: num,
        blocksResent: num,
        blocksMirrored: num,
        blocksFetched: num,
        blocksPushed: num,
        rounds: num,
        writeLatencyMs: {
          type: 'object',
          required: ['before', 'during'],
          properties: { before: WRITE_LATENCY, during: WRITE_LATENCY },
        },
        note: str,
      },
    },
    dirtyRate: {
      type: 'object',
      required: ['measurement', 'curve'],
      properties: {
        measurement: {
          oneOf: [
            { type: 'null' },
            {
              type: 'object',
              required: ['dirtyRateMBps', 'standardErrorMBps', 'pagesSampled', 'pagesChanged', 'windowMs'],
              properties: {
                dirtyRateMBps: num,
                standardErrorMBps: num,
                pagesSampled: num,
                pagesChanged: num,
                windowMs: num,
              },
            },
          ],
        },
        curve: {
          oneOf: [
            { type: 'null' },
            {
              type: 'object',
              required: ['rateBps', 'wssBytes'],
              properties: { rateBps: num, wssBytes: { type: ['number', 'null'] } },
            },
          ],
        },
        note: str,
      },
    },
    auto: {
      type: 'object',
      required: ['objective', 'maxDowntimeMs', 'chosen', 'why', 'decidedAtMs', 'inputs', 'predictions'],
      properties: {
        objective: { enum: OBJECTIVES },
        maxDowntimeMs: { type: ['number', 'null'] },
        chosen: { enum: TECHNIQUES },
        why: str,
        decidedAtMs: num,
        inputs: { type: 'object', required: ['memoryBytes', 'dirty', 'link'] },
        predictions: {
          type: 'array',
          items: {
            type: 'object',
            required: ['technique', 'rounds', 'totalMs', 'downtimeMs', 'wireBytes', 'switchover'],
            properties: { technique: { enum: TECHNIQUES }, totalMs: num, downtimeMs: num, wireBytes: num, rounds: num },
          },
        },
      },
    },
    encodings: {
      type: 'object',
      required: ['xbzrle', 'dedup', 'compression', 'encodeMs', 'decisions'],
      properties: {
        xbzrle: {
          oneOf: [
            { type: 'null' },
            {
              type: 'object',
              required: [
                'mode',
                'cacheBytes',
                'cacheHits',
                'cacheMisses',
                'cacheOverflows',
                'pages',
                'bytes',
                'bytesSaved',
              ],
              properties: {
                mode: { enum: ['auto', 'on', 'off'] },
                cacheBytes: num,
                cacheHits: num,
                cacheMisses: num,
                cacheOverflows: num,
                pages: num,
                bytes: num,
                bytesSaved: num,
              },
            },
          ],
        },
        dedup: {
          oneOf: [
            { type: 'null' },
            {
              type: 'object',
              required: ['mode', 'pages'],
              properties: {
                mode: { enum: ['auto', 'on', 'off'] },
                pages: num,
                host: {
                  type: 'object',
                  required: ['offered', 'pages', 'tableBytes', 'buildMs'],
                  properties: { offered: num, pages: num, tableBytes: num, buildMs: num },
                },
              },
            },
          ],
        },
        compression: {
          oneOf: [
            { type: 'null' },
            {
              type: 'object',
              required: ['mode', 'threads', 'pages', 'inputBytes', 'outputBytes', 'incompressibleBlocks', 'busyMs'],
              properties: {
                mode: { enum: ['auto', 'off', 'lz4', 'brotli'] },
                threads: num,
                pages: num,
                inputBytes: num,
                outputBytes: num,
                incompressibleBlocks: num,
                busyMs: { type: 'array', items: num },
              },
            },
          ],
        },
        encodeMs: num,
        decisions: { type: 'array', maxItems: 32, items: { type: 'string' } },
      },
    },
    channels: {
      type: 'object',
      required: ['asked', 'count', 'perChannel'],
      properties: {
        asked: { type: 'integer', minimum: 1 },
        count: { type: 'integer', minimum: 1 },
        note: str,
        perChannel: { type: 'array', minItems: 1, maxItems: 8, items: CHANNEL_FIGURES },
        main: CHANNEL_FIGURES,
      },
    },
    threads: {
      type: 'object',
      required: ['source', 'dest'],
      properties: { source: SIDE_THREADS, dest: { oneOf: [{ type: 'null' }, SIDE_THREADS] } },
    },
    prefault: {
      type: 'object',
      required: ['pages', 'touched', 'startMs', 'ms', 'firstPassMs', 'offCriticalPath'],
      properties: {
        pages: { type: 'integer', minimum: 0 },
        touched: { type: 'integer', minimum: 0 },
        startMs: MS,
        ms: { type: ['number', 'null'], minimum: 0 },
        firstPassMs: { type: ['number', 'null'], minimum: 0 },
        offCriticalPath: { type: ['boolean', 'null'] },
      },
    },
    throttle: {
      type: 'object',
      required: [
        'technique',
        'maxPercent',
        'peakPercent',
        'peakRound',
        'throttledRounds',
        'unthrottledStepsPerSec',
        'throttledStepsPerSec',
        'speedWhileThrottled',
        'speedDuringPrecopy',
        'throttledDirtyRateBps',
        'maxThrottledRoundDirtyRateBps',
      ],
      properties: {
        technique: { enum: ['auto-converge', 'dirty-limit'] },
        maxPercent: PERCENT,
        initialPercent: PERCENT,
        incrementPercent: PERCENT,
        triggerThresholdPercent: PERCENT,
        dirtyLimitBps: { type: 'number', exclusiveMinimum: 0 },
        peakPercent: PERCENT,
        peakRound: NUM_OR_NULL,
        throttledRounds: num,
        unthrottledStepsPerSec: NUM_OR_NULL,
        throttledStepsPerSec: NUM_OR_NULL,
        speedWhileThrottled: NUM_OR_NULL,
        speedDuringPrecopy: NUM_OR_NULL,
        throttledDirtyRateBps: NUM_OR_NULL,
        maxThrottledRoundDirtyRateBps: NUM_OR_NULL,
      },
    },
    network: {
      oneOf: [
        { type: 'null' },
        {
          type: 'object',
          required: ['downtimeMs', 'lostReplies', 'lostWrites'],
          properties: {
            downtimeMs: num,
            lostReplies: num,
            lostWrites: num,
            address: str,
            addressMode: { enum: ['loopback', 'macvlan'] },
            requests: num,
            intervalMs: num,
            switchoverGapMs: num,
          },
        },
      ],
    },
  },
} as const;
