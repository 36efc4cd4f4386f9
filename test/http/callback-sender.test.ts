/**
 * The callback sender against real HTTP receivers on 127.0.0.1: every way a partner's
 * server can answer, or fail to, ends as a result the dispatcher can act on.
 */
import type { lookup as dnsLookup, LookupAddress } from 'node:dns';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  HttpCallbackSender,
  MAX_RESPONSE_BYTES,
  parseRetryAfter,
  RESPONSE_EXCERPT_BYTES,
} from '../../functions/adapters/http/callback-sender.ts';
import type { CallbackRequest } from '../../functions/core/ports.ts';

const servers: Server[] = [];
const open = new HttpCallbackSender({ allowPrivateTargets: true });
const strict = new HttpCallbackSender({ allowPrivateTargets: false });

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
afterAll(async () => {
  await open.close();
  await strict.close();
});

async function serve(listener: RequestListener): Promise<string> {
  const server = createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
}

function post(url: string, overrides: Partial<CallbackRequest> = {}): CallbackRequest {
  return {
    url,
    headers: { 'content-type': 'application/json' },
    body: '{"id":"evt_1"}',
    timeoutMs: 1000,
    ...overrides,
  };
}

describe('HttpCallbackSender', () => {
  describe('answers', () => {
    it('returns the status code and an excerpt of the body, and sends the headers and body as given', async () => {
      let received: { headers: Record<string, unknown>; body: string } | undefined;
      const url = await serve(async (req, res) => {
        let body = '';
        for await (const chunk of req) body += chunk;
        received = { headers: req.headers, body };
        res.writeHead(200).end('thanks');
      });

      const result = await open.send(
        post(url, { headers: { 'webhook-id': 'dlv_1', 'content-type': 'application/json' } }),
      );

      expect(result).toMatchObject({ statusCode: 200, responseExcerpt: 'thanks' });
      expect(result.error).toBeUndefined();
      expect(received?.headers['webhook-id']).toBe('dlv_1');
      expect(received?.body).toBe('{"id":"evt_1"}');
    });

    it('sends the body with its content-length rather than chunked', async () => {
      let headers: Record<string, unknown> = {};
      const url = await serve((req, res) => {
        headers = req.headers;
        req.resume().on('end', () => res.writeHead(204).end());
      });
      expect((await open.send(post(url))).statusCode).toBe(204);
      expect(headers['content-length']).toBe(String(Buffer.byteLength('{"id":"evt_1"}')));
      expect(headers['transfer-encoding']).toBeUndefined();
    });

    it('keeps at most the excerpt’s bytes of a long body', async () => {
      const url = await serve((_req, res) => res.writeHead(500).end('x'.repeat(5000)));
      const result = await open.send(post(url));
      expect(result.statusCode).toBe(500);
      expect(result.responseExcerpt).toHaveLength(RESPONSE_EXCERPT_BYTES);
    });

    it('stops reading an oversized response and says so, keeping the status', async () => {
      const url = await serve((_req, res) => {
        res.writeHead(200);
        res.end(Buffer.alloc(MAX_RESPONSE_BYTES * 4, 'y'));
      });
      const result = await open.send(post(url));
      expect(result.statusCode).toBe(200);
      expect(result.errorMessage).toMatch(/not read/);
    });

    it('does not follow a redirect', async () => {
      let followed = false;
      const target = await serve((_req, res) => {
        followed = true;
        res.writeHead(200).end();
      });
      const url = await serve((_req, res) => res.writeHead(302, { location: target }).end());
      const result = await open.send(post(url));
      expect(result.statusCode).toBe(302);
      expect(followed).toBe(false);
    });

    it.each([429, 503])('reads Retry-After on a %i', async (status) => {
      const url = await serve((_req, res) => res.writeHead(status, { 'retry-after': '120' }).end());
      expect(await open.send(post(url))).toMatchObject({ statusCode: status, retryAfterSeconds: 120 });
    });

    it('ignores Retry-After on other statuses', async () => {
      const url = await serve((_req, res) => res.writeHead(500, { 'retry-after': '120' }).end());
      expect((await open.send(post(url))).retryAfterSeconds).toBeUndefined();
    });
  });

  describe('failures', () => {
    it('reports a receiver that never answers as a timeout, within the timeout', async () => {
      const url = await serve(() => {});
      const result = await open.send(post(url, { timeoutMs: 200 }));
      expect(result.error).toBe('timeout');
      expect(result.statusCode).toBeUndefined();
      expect(result.durationMs).toBeGreaterThanOrEqual(190);
      expect(result.durationMs).toBeLessThan(600);
    });

    it('reports a receiver that sends headers and then stalls as a timeout', async () => {
      const url = await serve((_req, res) => {
        res.writeHead(200);
        res.write('partial');
      });
      const result = await open.send(post(url, { timeoutMs: 200 }));
      expect(result.error).toBe('timeout');
      expect(result.durationMs).toBeLessThan(600);
    });

    it('counts the body against the same deadline: a body trickled without end is a timeout', async () => {
      const trickles: NodeJS.Timeout[] = [];
      const url = await serve((_req, res) => {
        res.writeHead(200);
        trickles.push(setInterval(() => res.write('.'), 20));
      });
      try {
        const result = await open.send(post(url, { timeoutMs: 300 }));
        expect(result.error).toBe('timeout');
        expect(result.durationMs).toBeLessThan(800);
      } finally {
        for (const trickle of trickles) clearInterval(trickle);
      }
    });

    it('reports a reset connection as a connection error', async () => {
      const url = await serve((req) => req.socket.destroy());
      expect((await open.send(post(url))).error).toBe('connection');
    });

    it('reports a refused connection as a connection error', async () => {
      const url = await serve((_req, res) => res.end());
      const server = servers.pop();
      server?.closeAllConnections();
      await new Promise((resolve) => server?.close(resolve));
      expect((await open.send(post(url))).error).toBe('connection');
    });
  });

  describe('connections', () => {
    /** A receiver that counts the connections it accepts, and how many are open at once. */
    async function counting(listener: RequestListener) {
      const url = await serve(listener);
      const counts = { accepted: 0, open: 0, mostOpen: 0 };
      servers.at(-1)?.on('connection', (socket) => {
        counts.accepted++;
        counts.mostOpen = Math.max(counts.mostOpen, ++counts.open);
        socket.on('close', () => counts.open--);
      });
      return { url, counts };
    }

    it('reuses a kept-alive connection for the next callback to the same origin', async () => {
      const { url, counts } = await counting((_req, res) => res.writeHead(200).end('ok'));
      for (let i = 0; i < 3; i++) expect((await open.send(post(url))).statusCode).toBe(200);
      expect(counts.accepted).toBe(1);
    });

    it('opens at most connectionsPerOrigin sockets to one origin and queues the rest', async () => {
      const { url, counts } = await counting((_req, res) => {
        setTimeout(() => res.writeHead(200).end(), 30);
      });
      const pair = new HttpCallbackSender({ allowPrivateTargets: true, connectionsPerOrigin: 2 });
      try {
        const results = await Promise.all(Array.from({ length: 6 }, () => pair.send(post(url))));
        expect(results.map((result) => result.statusCode)).toEqual(Array(6).fill(200));
        expect(counts.mostOpen).toBe(2);
      } finally {
        await pair.close();
      }
    });

    it('does not return a connection whose body was abandoned to the pool', async () => {
      const { url, counts } = await counting((req, res) => {
        if (req.url?.endsWith('big')) res.writeHead(200).end(Buffer.alloc(MAX_RESPONSE_BYTES * 4, 'y'));
        else res.writeHead(200).end('ok');
      });
      expect((await open.send(post(`${url}?big`))).errorMessage).toMatch(/not read/);
      expect((await open.send(post(url))).statusCode).toBe(200);
      expect(counts.accepted).toBe(2);
    });

    it('closes its pooled connections on close', async () => {
      const { url, counts } = await counting((_req, res) => res.writeHead(200).end());
      const closing = new HttpCallbackSender({ allowPrivateTargets: true });
      expect((await closing.send(post(url))).statusCode).toBe(200);
      expect(counts.open).toBe(1);
      await closing.close();
      await expect.poll(() => counts.open).toBe(0);
    });
  });

  describe('target policy at delivery time', () => {
    it.each([
      'http://127.0.0.1:9/hooks',
      'https://127.0.0.1:9/hooks',
      'https://localhost:9/hooks',
      'https://[::1]:9/hooks',
      'https://10.0.0.1/hooks',
      'https://172.16.5.4/hooks',
      'https://192.168.1.1/hooks',
      'https://169.254.169.254/latest/meta-data/',
      'https://[fd00:ec2::254]/',
      'https://0.0.0.0/hooks',
      'https://2130706433/hooks',
      'https://0177.0.0.1/hooks',
      'https://0x7f.1/hooks',
      'https://[::ffff:127.0.0.1]/hooks',
      'https://[::ffff:a9fe:a9fe]/hooks',
      'https://100.64.0.1/hooks',
      'https://[fe80::1]/hooks',
    ])('refuses %s without connecting', async (url) => {
      const result = await strict.send(post(url));
      expect(result.error).toBe('forbidden_target');
      expect(result.statusCode).toBeUndefined();
    });

    it('checks the addresses a host name resolves to on the connection itself, and connects to them', async () => {
      const url = await serve((_req, res) => res.writeHead(200).end());
      const port = new URL(url).port;
      // A resolver under the test's control: hooks.test resolves to loopback, where the receiver is.
      const lookup = ((_host: string, _options: object, callback: (e: null, a: LookupAddress[]) => void) =>
        callback(null, [{ address: '127.0.0.1', family: 4 }])) as unknown as typeof dnsLookup;
      const strictWithDns = new HttpCallbackSender({ allowPrivateTargets: false, lookup });
      const openWithDns = new HttpCallbackSender({ allowPrivateTargets: true, lookup });
      try {
        const refused = await strictWithDns.send(post(`https://hooks.test:${port}/hooks`));
        expect(refused.error).toBe('forbidden_target');
        expect(refused.errorMessage).toMatch(/hooks\.test.*127\.0\.0\.1/);
        // Allowed, the connection goes to the very address the lookup returned.
        expect((await openWithDns.send(post(`http://hooks.test:${port}/hooks`))).statusCode).toBe(200);
      } finally {
        await strictWithDns.close();
        await openWithDns.close();
      }
    });

    it('refuses a metadata address even when private targets are allowed', async () => {
      expect((await open.send(post('http://169.254.169.254/latest/meta-data/'))).error).toBe(
        'forbidden_target',
      );
    });
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-25T12:00:00Z');

  it('reads delta-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120);
  });

  it('reads an HTTP date as the seconds until it', () => {
    expect(parseRetryAfter('Wed, 25 Nov 2026 12:01:30 GMT', now)).toBe(90);
  });

  it('treats a date in the past as no wait', () => {
    expect(parseRetryAfter('Wed, 25 Nov 2026 11:00:00 GMT', now)).toBe(0);
  });

  it('ignores an absent or unreadable value', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });
});
