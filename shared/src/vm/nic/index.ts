/**
 * The virtual NIC: its guest-memory layout (the contract with the guest's driver, the kv
 * workload), the host-side device model, and IPv4 helpers for the backend.
 */
export * from './layout.ts';
export { ipv4ToU32, u32ToIpv4 } from './ipv4.ts';
export { NicDevice } from './nic-device.ts';
export type { NicAddress, NicCounters, NicDeviceComponents, NicIndices, NicState } from './nic-device.ts';
