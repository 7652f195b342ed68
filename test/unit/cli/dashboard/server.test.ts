/**
 * The dashboard's HTTP server on a real loopback port: the page and its Content-Security-Policy
 * (its own script and style only, nothing fetched from elsewhere), the event stream (the view at
 * once, again on change, throttled), and its bounds — browsers beyond the limit refused with 503,
 * a browser that does not read dropped, bodies and other methods refused, and requests for
 * another Host (DNS rebinding) or from another Origin refused.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DashboardServer, MAX_BUFFERED_BYTES } from '../../../../cli/dashboard/server.ts';
import { waitUntil } from '../../../helpers/wait.ts';

const servers: DashboardServer[] = [];
const requests: http.ClientRequest[] = [];
afterEach(async () => {
  for (const request of requests.splice(0)) request.destroy();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(options: Partial<Parameters<typeof DashboardServer.start>[0]> = {}) {
  let version = 0;
  const server = await DashboardServer.start({ host: '127.0.0.1', port: 0, view: () => ({ version }), ...options });
  servers.push(server);
  return {
    server,
    port: server.address().port,
    bump(): void {
      version += 1;
      server.changed();
    },
  };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request; resolves with the whole answer. */
function request(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    requests.push(req);
    req.on('error', reject);
    req.end(options.body);
  });
}

/** An open event stream: its status and the views received so far. */
async function follow(port: number, headers: Record<string, string> = {}) {
  const views: unknown[] = [];
  let status = 0;
  let res: http.IncomingMessage | undefined;
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/events', headers, agent: false }, (response) => {
      res = response;
      status = response.statusCode ?? 0;
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (frame.startsWith('data: ')) views.push(JSON.parse(frame.slice(6)));
        }
      });
      resolve();
    });
    requests.push(req);
    req.on('error', reject);
  });
  return { status: () => status, views, response: () => res! };
}

describe('the page', () => {
  it('is served with a CSP that allows its own script and style only, and it fetches nothing from elsewhere', async () => {
    const { port } = await start();
    const page = await request(port, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['x-frame-options']).toBe('DENY');
    const csp = page.headers['content-security-policy']!;
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/connect-src 'self'/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    const script = /<script>([\s\S]*?)<\/script>/.exec(page.body)![1]!;
    const style = /<style>([\s\S]*?)<\/style>/.exec(page.body)![1]!;
    expect(csp).toContain(`script-src ${hash(script)}`);
    expect(csp).toContain(`style-src ${hash(style)}`);
    // The only URL in the page is SVG's namespace, which is a name, not a fetch.
    expect(page.body.match(/https?:\/\/[^\s'"]+/g)).toEqual(['http://www.w3.org/2000/svg']);
    expect(page.body).not.toMatch(/\bsrc=|innerHTML/);
  });

  it('HEAD: the headers without the page; anything but GET/HEAD is 405; a path not served is 404', async () => {
    const { port } = await start();
    const head = await request(port, '/', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect((await request(port, '/', { method: 'POST' })).status).toBe(405);
    expect((await request(port, '/favicon.ico')).status).toBe(404);
    expect((await request(port, '/../etc/passwd')).status).toBe(404);
  });

  it('reads nothing a browser sends: a request with a body is refused, and the connection closed', async () => {
    const { port } = await start();
    // A raw socket: node's client would itself object to a server that answers before the body.
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 100\r\n\r\n${'x'.repeat(100)}`);
    await closed;
    expect(answer).toMatch(/^HTTP\/1.1 400 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
  });

  it('answers only requests addressed to a loopback name with its port, from its own origin', async () => {
    const { port } = await start();
    expect((await request(port, '/', { headers: { host: `localhost:${port}` } })).status).toBe(200);
    expect((await request(port, '/', { headers: { host: `[::1]:${port}` } })).status).toBe(200);
    const rebound = await request(port, '/', { headers: { host: `evil.example:${port}` } });
    expect(rebound.status).toBe(403);
    expect(rebound.body).toMatch(/not this dashboard's loopback address/);
    expect((await request(port, '/events', { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    expect((await request(port, '/', { headers: { host: `127.0.0.1:${port + 1}` } })).status).toBe(403);
    const foreign = await request(port, '/events', { headers: { origin: 'https://evil.example' } });
    expect(foreign.status).toBe(403);
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined();
    const own = await follow(port, { origin: `http://127.0.0.1:${port}` });
    expect(own.status()).toBe(200);
  });

  it('with anyHost (listening beyond loopback on purpose) any Host is answered', async () => {
    const { port } = await start({ anyHost: true });
    expect((await request(port, '/', { headers: { host: `dashboard.example:${port}` } })).status).toBe(200);
  });
});

describe('the event stream', () => {
  it('sends the view at once, then again when it changed — at most one per interval, the latest', async () => {
    const { port, bump } = await start();
    const stream = await follow(port);
    expect(stream.status()).toBe(200);
    expect(stream.response().headers['content-type']).toBe('text/event-stream; charset=utf-8');
    await waitUntil(() => stream.views.length === 1, { what: 'the first view' });
    expect(stream.views[0]).toEqual({ version: 0 });
    for (let i = 0; i < 10; i++) bump();
    await waitUntil(() => (stream.views.at(-1) as { version: number }).version === 10, { what: 'the latest view' });
    // The first change went at once, the nine after it in the interval as one.
    expect(stream.views).toEqual([{ version: 0 }, { version: 1 }, { version: 10 }]);
  });

  it('serves at most maxBrowsers streams: one more is refused with 503 until one leaves', async () => {
    const { server, port } = await start({ maxBrowsers: 2 });
    const first = await follow(port);
    await follow(port);
    await waitUntil(() => server.browsers === 2, { what: 'two browsers' });
    const third = await request(port, '/events');
    expect(third.status).toBe(503);
    expect(third.body).toMatch(/serves 2 browsers already/);
    // The page itself still loads: the limit is on streams.
    expect((await request(port, '/')).status).toBe(200);
    first.response().destroy();
    await waitUntil(() => server.browsers === 1, { what: 'one browser gone' });
    const again = await follow(port);
    expect(again.status()).toBe(200);
  });

  it('drops a browser that does not read once more than MAX_BUFFERED_BYTES wait for it', async () => {
    // A big view, so a few frames fill the socket buffers and then our queue.
    const big = 'x'.repeat(MAX_BUFFERED_BYTES / 2);
    const { server, port, bump } = await start({ view: () => ({ big, at: performance.now() }) });
    const stream = await follow(port);
    stream.response().pause();
    await waitUntil(() => server.browsers === 1, { what: 'the browser following' });
    await waitUntil(
      () => {
        bump();
        return server.browsers === 0;
      },
      { what: 'the browser dropped', intervalMs: 120, timeoutMs: 20_000 },
    );
  });

  it('close() ends every stream and frees the port', async () => {
    const { server, port } = await start();
    const stream = await follow(port);
    const ended = new Promise((resolve) => stream.response().on('close', resolve));
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    await ended;
    await expect(request(port, '/')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
