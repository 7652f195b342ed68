/** Hosting VMs by name: shared by both daemons. */
export * from './vm-host.ts';
export * from './vm-state.ts';
export * from './host-commands.ts';
export * from './vm-digests.ts';
export { NicBackend } from './net/nic-backend.ts';
