/** The in-guest key-value service's wire format (the service itself arrives with the virtual NIC). */
export * from './protocol.ts';
