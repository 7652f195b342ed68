/**
 * Every message of the data channel, from one import: the types (message-types.ts), the
 * MESSAGE_SPEC table and its lookups (message-spec.ts) and the `msg.*` factories
 * (message-factories.ts). Modules inside the protocol import the part they need directly.
 */
export * from './message-types.ts';
export * from './message-spec.ts';
export * from './message-factories.ts';
