/**
 * The ops commands against a dispatcher's admin API over HTTP: the local runtime by default,
 * at its address and with the admin token its data directory keeps.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeadLetterView, RedrivePlan, SubscriptionHealthView } from '../../functions/core/ops.ts';
import type { QueueInfo, RedriveTask } from '../../functions/core/ports.ts';
import { BackendError, type CreatedPartnerView, type OpsBackend } from './backend.ts';

export interface HttpTarget {
  url: string;
  token: string;
}

/**
 * Where the local runtime answers and its admin token, unless given: `--url`, else
 * DISPATCHER_URL, else the address `npm start` listens on (HOST and PORT); `--token`, else
 * DISPATCHER_ADMIN_TOKEN, else the token kept in the data directory (DISPATCHER_DATA_DIR).
 */
export function localTarget(
  options: { url?: string; token?: string },
  env: Record<string, string | undefined> = process.env,
): HttpTarget {
  const host = env.HOST ?? '127.0.0.1';
  const url =
    options.url ??
    env.DISPATCHER_URL ??
    `http://${host.includes(':') ? `[${host}]` : host}:${env.PORT ?? '3000'}`;
  let token = options.token ?? env.DISPATCHER_ADMIN_TOKEN;
  if (token === undefined) {
    const file = join(env.DISPATCHER_DATA_DIR ?? '.data', 'admin-token');
    if (!existsSync(file)) {
      throw new BackendError(
        `no admin token: pass --token, set DISPATCHER_ADMIN_TOKEN, or run this where the dispatcher's data directory is (${file} not found)`,
      );
    }
    token = readFileSync(file, 'utf8').trim();
  }
  return { url: url.replace(/\/+$/, ''), token };
}

interface ProblemBody {
  detail?: string;
  errors?: { field: string; message: string }[];
}

/** The admin API's routes, one method each. */
export function httpBackend(target: HttpTarget): OpsBackend {
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${target.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${target.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      const cause =
        error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      throw new BackendError(
        `no dispatcher answers at ${target.url} (${cause}): start one with npm start, or pass --url`,
      );
    }
    const text = await response.text();
    if (!response.ok) {
      let problem: ProblemBody = {};
      try {
        problem = JSON.parse(text) as ProblemBody;
      } catch {
        // Not problem+json: the status says it.
      }
      // Fields the detail does not already name.
      const fields = (problem.errors ?? [])
        .map((e) => `${e.field}: ${e.message}`)
        .filter((text) => !(problem.detail ?? '').includes(text));
      throw new BackendError(
        `${response.status}: ${problem.detail ?? (text || response.statusText)}${fields.length > 0 ? ` (${fields.join('; ')})` : ''}`,
        response.status,
      );
    }
    return (text === '' ? {} : JSON.parse(text)) as T;
  }
  const dlq = (queue: string) => `/v1/admin/dlq/${encodeURIComponent(queue)}`;

  return {
    target: target.url,
    async queues() {
      return (await call<{ data: QueueInfo[] }>('GET', '/v1/admin/queues')).data;
    },
    async deadLetters(queue, limit) {
      return (await call<{ data: DeadLetterView[] }>('GET', `${dlq(queue)}/messages?limit=${limit}`)).data;
    },
    async redrive(queue, request) {
      const answer = await call<RedriveTask | ({ dryRun: true } & RedrivePlan)>(
        'POST',
        `${dlq(queue)}/redrive`,
        request,
      );
      if ('dryRun' in answer) {
        const { dryRun: _, ...plan } = answer;
        return { dryRun: true, plan };
      }
      return { dryRun: false, task: answer };
    },
    async redrives(queue) {
      return (await call<{ data: RedriveTask[] }>('GET', `${dlq(queue)}/redrives`)).data;
    },
    cancelRedrive(queue, taskId) {
      return call<RedriveTask>('DELETE', `${dlq(queue)}/redrives/${encodeURIComponent(taskId)}`);
    },
    purge(queue) {
      return call<{ queue: string; purged: number | null }>('DELETE', `${dlq(queue)}/messages`);
    },
    async subscriptions(status, query) {
      const params = new URLSearchParams({ status, limit: String(query.limit) });
      if (query.after !== undefined) params.set('after', query.after);
      const page = await call<{ data: SubscriptionHealthView[]; next: string | null }>(
        'GET',
        `/v1/admin/subscriptions?${params}`,
      );
      return { items: page.data, next: page.next };
    },
    createPartner(name) {
      return call<CreatedPartnerView>('POST', '/v1/partners', { name });
    },
    publish(event) {
      return call<{ id: string; created: boolean }>('POST', '/v1/events', event);
    },
    async close() {},
  };
}
