/**
 * The flooding clients of cli/control-flood.ts in a process of their own (floodControlApart):
 * argv[2] is a FloodApartSpec as JSON. Tells its parent { type: 'settled' } once the flood has
 * settled; on { type: 'stop' } it stops, answers { type: 'tally', tally } and exits. A parent
 * that goes away ends it too (the IPC channel closes).
 */
import { ControlClient } from '@livemig/shared/control';
import { loadPki } from '@livemig/shared/security';
import { floodControl, type FloodApartSpec } from './control-flood.ts';

const spec = JSON.parse(process.argv[2]!) as FloodApartSpec;
const connect = async (): Promise<ControlClient> => {
  const { ca, cert, key } = await loadPki(spec.pkiDir, spec.name);
  return ControlClient.connect(spec.control, { tls: { ca, cert, key }, expectName: spec.agentName });
};
const flood = await floodControl(connect, spec.vm, { clients: spec.clients });
process.send!({ type: 'settled' });
process.on('message', (message: { type?: string }) => {
  if (message.type !== 'stop') return;
  void flood.stop().then((tally) => process.send!({ type: 'tally', tally }, () => process.exit(0)));
});
process.on('disconnect', () => process.exit(0));
