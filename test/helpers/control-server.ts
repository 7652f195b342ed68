/**
 * Real ControlServers on loopback (plaintext ws) and ControlClients of them, for one test file:
 * everything started is closed after each test.
 *
 *   const control = useControlServers({ 'query-vms': () => ({ vms: [] }) });
 *   const client = await control.connect(await control.start({ maxClients: 2 }));
 */
import { afterEach } from 'vitest';
import { silentLogger } from '@livemig/shared';
import { ControlClient, ControlServer, type CommandHandlers, type ControlServerOptions } from '@livemig/shared/control';

export function useControlServers(handlers: CommandHandlers) {
  const servers: ControlServer[] = [];
  const clients: ControlClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });
  return {
    /** A server with these options (silent by default); its ws:// URL. */
    async start(options: Partial<ControlServerOptions> = {}): Promise<string> {
      const server = await ControlServer.start(
        { host: '127.0.0.1', port: 0, logger: silentLogger(), ...options },
        handlers,
      );
      servers.push(server);
      return `ws://127.0.0.1:${server.address().port}`;
    },
    /** A client of `url`, closed after the test. */
    async connect(url: string): Promise<ControlClient> {
      const client = await ControlClient.connect(url);
      clients.push(client);
      return client;
    },
    /** Close this client after the test (one connected otherwise). */
    track(client: ControlClient): void {
      clients.push(client);
    },
  };
}
