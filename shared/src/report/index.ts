/** The migration report: its types (a contract), its JSON schema, and its human rendering. */
export * from './types.ts';
export * from './schema.ts';
export * from './format.ts';
export * from './latency-histogram.ts';
export * from './threads.ts';
