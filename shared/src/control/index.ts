/** The control channel (QMP-like JSON over ws): message types, the agent's server, the client. */
export * from './messages.ts';
export * from './server.ts';
export * from './client.ts';
export * from './rate-limit.ts';
