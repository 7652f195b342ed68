/**
 * The VM states belong to the hosting layer (host/vm-state.ts); the control channel re-exports
 * them, so every import path gives the same types (checked by tsc; the assertions are type-level).
 */
import { describe, expectTypeOf, it } from 'vitest';
import type { VmInfo as ControlVmInfo, VmState as ControlVmState } from '@livemig/shared/control';
import type { VmInfo as HostVmInfo, VmState as HostVmState } from '@livemig/shared/host';
import type { VmInfo, VmState } from '../../../../shared/src/control/messages.ts';
import type { AddressMode } from '../../../../shared/src/host/net/address-mover.ts';

describe('VmState and VmInfo', () => {
  it('are the same types from host and from control', () => {
    expectTypeOf<ControlVmState>().toEqualTypeOf<HostVmState>();
    expectTypeOf<ControlVmInfo>().toEqualTypeOf<HostVmInfo>();
    expectTypeOf<VmState>().toEqualTypeOf<HostVmState>();
    expectTypeOf<VmInfo>().toEqualTypeOf<HostVmInfo>();
    expectTypeOf<HostVmState>().toEqualTypeOf<'running' | 'paused' | 'migrating-out' | 'incoming' | 'migrated'>();
    expectTypeOf<NonNullable<HostVmInfo['nic']>['mode']>().toEqualTypeOf<AddressMode>();
  });
});
