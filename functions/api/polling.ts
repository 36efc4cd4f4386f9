/**
 * Polling, served on AWS by a function of its own: a long poll spends most of its time waiting,
 * and Lambda bills that time by the function's memory, so the routes that poll run in a small
 * function (128 MB) that needs only the event log, the consumers and the request limits. The API handler
 * serves the same routes with these same handlers, so both runtimes answer alike.
 */
import { readConsumer } from '../core/consumers.ts';
import { listEvents } from '../core/events.ts';
import { type AdmitDeps, admitLongPoll } from '../core/limits.ts';
import type { Clock, ConsumerStore, EventLog } from '../core/ports.ts';
import { json, type Log, parse, partnerOf, pathId, type RouteHandler, routedHandler } from './http.ts';
import { OPERATIONS } from './operations.ts';
import type { Operation } from './routes.ts';

export interface PollDeps extends AdmitDeps {
  events: EventLog;
  consumers: ConsumerStore;
  clock: Clock;
  /** Days an event is kept: a consumer's position older than this is refused (410). */
  retentionDays: number;
}

export const POLL_HANDLERS = {
  async listEvents(deps, event) {
    const partnerId = partnerOf(event);
    const { wait, ...query } = parse(OPERATIONS.listEvents.query, event.queryStringParameters ?? {}, 'query');
    return json(200, await listEvents(deps, partnerId, query, wait, () => admitLongPoll(deps, partnerId)));
  },

  async readConsumer(deps, event, params) {
    const partnerId = partnerOf(event);
    const name = pathId(OPERATIONS.readConsumer.params.name, params.name, 'consumer');
    const { wait, ...query } = parse(
      OPERATIONS.readConsumer.query,
      event.queryStringParameters ?? {},
      'query',
    );
    return json(
      200,
      await readConsumer(deps, partnerId, name, query, wait, () => admitLongPoll(deps, partnerId)),
    );
  },
} satisfies Partial<Record<Operation, RouteHandler<PollDeps>>>;

/** The polling function's handler: the polling routes, and 404 for any other. */
export function createPollHandler(deps: PollDeps, log?: Log) {
  return routedHandler(deps, POLL_HANDLERS, log);
}
