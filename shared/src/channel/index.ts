/**
 * A migration's data connection as the state machines see it: PeerChannel (ordered receive,
 * backpressured send, sticky first error), the destination's PageApplier (Pages bytes straight
 * into guest memory + the page digest ledger), and connectPeer / listenForPeers (handshake).
 */
export * from './peer-channel.ts';
export * from './framed-peer-channel.ts';
export * from './page-applier.ts';
export * from './connect.ts';
export * from './tls.ts';
export { msg, MsgType, messageName } from '../protocol/index.ts';
