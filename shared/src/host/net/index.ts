/** How a VM's network address follows it between hosts (address-mover.ts has the overview). */
export * from './address-mover.ts';
export * from './announce.ts';
export * from './loopback.ts';
export * from './macvlan.ts';
