/**
 * The ops routes (`/v1/admin/…`, admin only): queue depths, dead letters, redrives, purges,
 * subscription health and delivery rates. On AWS they run in a function of their own, the
 * only one allowed to read, move and purge the queues; the local API handler serves the same
 * routes with these same handlers.
 */
import type { AdmitDeps } from '../core/limits.ts';
import {
  cancelRedrive,
  listDeadLetters,
  listQueues,
  listRedrives,
  listSubscriptionsByHealth,
  type OpsDeps,
  purgeDeadLetters,
  redriveDeadLetters,
} from '../core/ops.ts';
import type { DeliveryRateSource } from '../core/ports.ts';
import {
  json,
  type Log,
  optionalJsonBody,
  parse,
  pathId,
  type RouteHandler,
  requireAdmin,
  routedHandler,
} from './http.ts';
import { OPERATIONS } from './operations.ts';
import type { Operation } from './routes.ts';

/** What the ops routes work on: the queues, the stores a dead letter is explained from, the rates. */
export interface OpsServices extends OpsDeps {
  rates: DeliveryRateSource;
}

export interface OpsApiDeps extends AdmitDeps {
  ops: OpsServices;
}

function queueOf(params: Record<string, string>): string {
  return pathId(OPERATIONS.listDeadLetters.params.queue, params.queue, 'queue');
}

export const OPS_HANDLERS = {
  async listQueues(deps, event) {
    requireAdmin(event);
    return json(200, { data: await listQueues(deps.ops) });
  },

  async listDeadLetters(deps, event, params) {
    requireAdmin(event);
    const queue = queueOf(params);
    const { limit } = parse(OPERATIONS.listDeadLetters.query, event.queryStringParameters ?? {}, 'query');
    return json(200, { data: await listDeadLetters(deps.ops, queue, limit) });
  },

  async purgeDeadLetters(deps, event, params) {
    requireAdmin(event);
    return json(200, await purgeDeadLetters(deps.ops, queueOf(params)));
  },

  async redriveDeadLetters(deps, event, params) {
    requireAdmin(event);
    const queue = queueOf(params);
    const body = parse(OPERATIONS.redriveDeadLetters.body, optionalJsonBody(event), 'body');
    const result = await redriveDeadLetters(deps.ops, queue, body);
    return result.dryRun ? json(200, { dryRun: true, ...result.plan }) : json(202, result.task);
  },

  async listRedrives(deps, event, params) {
    requireAdmin(event);
    return json(200, { data: await listRedrives(deps.ops, queueOf(params)) });
  },

  async cancelRedrive(deps, event, params) {
    requireAdmin(event);
    const taskId = pathId(OPERATIONS.cancelRedrive.params.taskId, params.taskId, 'redrive');
    return json(200, await cancelRedrive(deps.ops, queueOf(params), taskId));
  },

  async listSubscriptionHealth(deps, event) {
    requireAdmin(event);
    const { status, ...query } = parse(
      OPERATIONS.listSubscriptionHealth.query,
      event.queryStringParameters ?? {},
      'query',
    );
    const page = await listSubscriptionsByHealth(deps.ops, status, query);
    return json(200, { data: page.items, next: page.next });
  },

  async getDeliveryRates(deps, event) {
    requireAdmin(event);
    const { minutes } = parse(OPERATIONS.getDeliveryRates.query, event.queryStringParameters ?? {}, 'query');
    return json(200, { data: await deps.ops.rates.lastMinutes(minutes) });
  },
} satisfies Partial<Record<Operation, RouteHandler<OpsApiDeps>>>;

/** The ops function's handler: the ops routes, and 404 for any other. */
export function createOpsHandler(deps: OpsApiDeps, log?: Log) {
  return routedHandler(deps, OPS_HANDLERS, log);
}
